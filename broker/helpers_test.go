package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// testBroker is a broker serving a TCP listener on loopback for one test.
type testBroker struct {
	*Broker
	addr string
}

// startBroker starts a broker with opts (DefaultOptions when nil is passed through
// mod) on 127.0.0.1:0 and stops it when the test ends.
func startBroker(t testing.TB, mod func(*Options)) *testBroker {
	t.Helper()
	b, addr, stop := runBroker(t, mod)
	t.Cleanup(stop)
	return &testBroker{Broker: b, addr: addr}
}

// runBroker starts a broker with the test options changed by mod, serving
// 127.0.0.1:0, and returns it with its address and a function that stops it
// (safe to call more than once).
func runBroker(t testing.TB, mod func(*Options)) (*Broker, string, func()) {
	t.Helper()
	opts := DefaultOptions()
	opts.SysInterval = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Serve(ln, "tcp"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = ln.Close()
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return b, ln.Addr().String(), stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eventually polls cond until it holds or the time runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
