package main

import (
	"net"
	"testing"
	"time"
)

// fakeListener hands out n pipe connections as fast as they are asked for.
type fakeListener struct{ n int }

func (f *fakeListener) Accept() (net.Conn, error) {
	if f.n == 0 {
		return nil, net.ErrClosed
	}
	f.n--
	a, b := net.Pipe()
	_ = b.Close()
	return a, nil
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestAcceptLimiter(t *testing.T) {
	l := limitAccepts(&fakeListener{n: 150}, 100)
	start := time.Now()
	accepted := 0
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		_ = c.Close()
		accepted++
	}
	// A burst of one second's worth (100), then one each 10 ms: 50 more take 0.5 s.
	if took := time.Since(start); accepted != 150 || took < 400*time.Millisecond || took > 5*time.Second {
		t.Fatalf("accepted %d in %v at 100/s", accepted, took)
	}
	if _, ok := limitAccepts(&fakeListener{}, 0).(*fakeListener); !ok {
		t.Fatal("a rate of 0 should leave the listener alone")
	}
}
