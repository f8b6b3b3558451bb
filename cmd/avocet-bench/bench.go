package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// bench is one run of a scenario. Its fields are set before any connection
// starts and are read-only afterwards, except res, which only the scenario's
// goroutine uses, and the atomics.
type bench struct {
	cfg    *config
	runID  uint32 // in every payload header, to tell this run's messages from others
	tag    string // random part of client identifiers
	start  time.Time
	stderr io.Writer
	res    *Result

	// measureFrom is the bench time from which messages count for latency; it is
	// set before the publishers start.
	measureFrom atomic.Int64
	phase       atomic.Pointer[string] // shown in progress lines
	nofile      uint64                 // the open file limit after raising it
}

// now returns the monotonic nanoseconds since the run started.
func (b *bench) now() int64 { return int64(time.Since(b.start)) }

func (b *bench) clientID(role string, n int) string {
	return fmt.Sprintf("bench-%s-%s-%d-%s", b.cfg.scenario, role, n, b.tag)
}

func (b *bench) note(format string, args ...any) {
	b.res.Notes = append(b.res.Notes, fmt.Sprintf(format, args...))
}

func (b *bench) setPhase(p string) { b.phase.Store(&p) }

// runScenario runs cfg's scenario. It returns the result, with an error if the
// run failed after it started measuring, or only an error if it could not start.
func runScenario(ctx context.Context, cfg config, stderr io.Writer) (*Result, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	b := &bench{
		cfg:    &cfg,
		runID:  binary.LittleEndian.Uint32(rnd[:4]),
		tag:    hex.EncodeToString(rnd[4:]),
		start:  time.Now(),
		stderr: stderr,
	}
	b.res = &Result{
		Scenario: cfg.scenario,
		Broker:   cfg.addr,
		Version:  cfg.version.String(),
		QoS:      int(cfg.qos),
		Size:     cfg.size,
		Rate:     cfg.rate,
		Started:  b.start.UTC().Round(time.Millisecond),
	}
	if cfg.subAddr != cfg.addr {
		b.res.SubBroker = cfg.subAddr
	}
	b.setPhase("connect")
	need := uint64(64)
	switch cfg.scenario {
	case "connections":
		need += uint64(cfg.conns)
	case "fanin":
		need += uint64(cfg.pubs) + 1
	case "fanout":
		need += uint64(cfg.subs) + 1
	case "pairs":
		need += 2 * uint64(cfg.pairs)
	}
	nofile, err := raiseNofile(need)
	if err != nil {
		fmt.Fprintf(stderr, "avocet-bench: %v\n", err)
	}
	b.nofile = nofile
	if cfg.pid > 0 {
		before, err := readRSS(cfg.pid)
		if err != nil {
			return nil, err
		}
		b.res.Memory = &Memory{PID: cfg.pid, BeforeKiB: before}
	}
	var measured bool
	switch cfg.scenario {
	case "connections":
		measured, err = b.connections(ctx)
	case "retained":
		measured, err = b.retained(ctx)
	case "persistent":
		measured, err = b.persistent(ctx)
	default:
		measured, err = b.throughput(ctx)
	}
	if m := b.res.Memory; m != nil && m.AfterKiB == 0 {
		if after, rerr := readRSS(cfg.pid); rerr == nil {
			m.AfterKiB = after
		} else {
			b.note("%v", rerr)
		}
	}
	if !measured {
		return nil, err
	}
	return b.res, err
}

// progress prints a line to stderr every second until the returned function is
// called (once or more). counts returns the running totals whose rates are
// shown.
func (b *bench) progress(sentLabel, deliveredLabel string, counts func() (sent, delivered int64)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		lastT := time.Now()
		lastS, lastD := counts()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s, d := counts()
				dt := now.Sub(lastT).Seconds()
				fmt.Fprintf(b.stderr, "%-11s %6.1fs  %s %12s  %s %12s  %s\n", b.cfg.scenario, time.Since(b.start).Seconds(),
					sentLabel, num(float64(s-lastS)/dt), deliveredLabel, num(float64(d-lastD)/dt), *b.phase.Load())
				lastT, lastS, lastD = now, s, d
			}
		}
	})
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
}

// forEach calls fn(i) for i from 0 to n-1, at most conc at a time. It stops
// starting calls after the first error or when ctx ends, and returns that error.
func forEach(ctx context.Context, n, conc int, fn func(i int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	failed := make(chan struct{})
	fail := func(err error) {
		once.Do(func() {
			first = err
			close(failed)
		})
	}
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-failed:
			break loop
		case <-ctx.Done():
			fail(ctx.Err())
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return first
}

// waitQuiet polls until done holds, or counter has not moved for idle. It
// reports whether done held.
func waitQuiet(idle time.Duration, done func() bool, counter func() int64) bool {
	last, lastMove := counter(), time.Now()
	for !done() {
		time.Sleep(2 * time.Millisecond)
		if c := counter(); c != last {
			last, lastMove = c, time.Now()
		} else if time.Since(lastMove) > idle {
			return done()
		}
	}
	return true
}

// idle returns how long to wait for deliveries that have stopped coming.
func (b *bench) idle() time.Duration {
	switch {
	case b.cfg.idle > 0:
		return b.cfg.idle
	case b.cfg.qos == mqtt.AtMostOnce:
		return 2 * time.Second
	}
	return 5 * time.Second
}

// keepAlive sends PINGREQ on every client every interval until the returned
// function is called (once or more); it lets runs outlast the keep alive of
// their connections.
func keepAlive(clients []*client, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, c := range clients {
					if c != nil {
						_ = c.ping()
					}
				}
			}
		}
	})
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
}

// latencyOf summarizes h in microseconds.
func latencyOf(h *histogram) *Latency {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return &Latency{
		Count: h.n,
		P50:   us(h.quantile(0.50)),
		P90:   us(h.quantile(0.90)),
		P99:   us(h.quantile(0.99)),
		P999:  us(h.quantile(0.999)),
		Max:   us(h.max),
	}
}

// checkErrors adds a note for each client whose connection ended other than by the
// tool's own close, and returns how many there were.
func (b *bench) checkErrors(role string, clients []*client) int {
	n := 0
	for _, c := range clients {
		if c != nil && c.err != nil {
			if n < 5 {
				b.note("%s %s: %v", role, c.id, c.err)
			}
			n++
		}
	}
	if n > 5 {
		b.note("%d %s connections ended early in all", n, role)
	}
	return n
}
