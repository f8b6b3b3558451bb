package main

import (
	"net"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
)

// acceptLimiter takes at most rate new connections a second from a listener, after
// a burst of one second's worth. Connections over the rate are not refused: they
// wait their turn in the kernel's accept queue, which slows a flood down without
// turning away the devices of a fleet reconnecting at once; when that queue is
// full the kernel itself refuses more.
type acceptLimiter struct {
	broker.Listener
	interval time.Duration // between two connections at the limit
	next     time.Time     // when the next connection may come in without waiting
}

// limitAccepts wraps l so that it accepts at most rate connections a second; a
// rate of 0 returns l unchanged.
func limitAccepts(l broker.Listener, rate int) broker.Listener {
	if rate <= 0 {
		return l
	}
	return &acceptLimiter{Listener: l, interval: time.Second / time.Duration(rate)}
}

// Accept waits for the rate to allow another connection, then accepts it. It is
// called from one goroutine, the broker's accept loop.
func (a *acceptLimiter) Accept() (net.Conn, error) {
	now := time.Now()
	if earliest := now.Add(-time.Second); a.next.Before(earliest) {
		a.next = earliest // the unused part of the last second is the burst
	}
	if wait := a.next.Sub(now); wait > 0 {
		time.Sleep(wait)
	}
	a.next = a.next.Add(a.interval)
	return a.Listener.Accept()
}
