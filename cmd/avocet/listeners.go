package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/listener"
)

// listenerSet runs the configured listeners and lets the admin API stop and start
// them one by one. It implements admin.Listeners.
type listenerSet struct {
	b      *broker.Broker
	log    *slog.Logger
	certs  *listenerCerts
	stdout io.Writer

	mu      sync.Mutex
	entries []*listenerEntry // in configuration order; guarded by mu
	wg      sync.WaitGroup   // the Serve goroutines
}

// listenerEntry is one configured listener and, while it runs, its socket.
type listenerEntry struct {
	cfg                config.Listener
	l                  listener.Listener // nil while stopped
	accepted, rejected int64             // of the runs before the current one
}

func newListenerSet(b *broker.Broker, cfg *config.Config, certs *listenerCerts, log *slog.Logger, stdout io.Writer) *listenerSet {
	s := &listenerSet{b: b, log: log, certs: certs, stdout: stdout}
	for _, lc := range cfg.Listeners {
		s.entries = append(s.entries, &listenerEntry{cfg: lc})
	}
	return s
}

// startAll binds every listener; on failure it closes those it bound.
func (s *listenerSet) startAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if err := s.startLocked(e); err != nil {
			s.closeLocked()
			return err
		}
	}
	return nil
}

func (s *listenerSet) startLocked(e *listenerEntry) error {
	if e.l != nil {
		return nil
	}
	lc := e.cfg
	tc, err := s.certs.serverTLS(lc)
	if err != nil {
		return err
	}
	l, err := listener.Listen(listener.Config{Name: lc.Name, Kind: string(lc.Kind), Address: lc.Address,
		Path: lc.Path, TLS: tc, MaxConnections: lc.MaxConnections, ProxyProtocol: lc.ProxyProtocol})
	if err != nil {
		return err
	}
	e.l = l
	fmt.Fprintf(s.stdout, "listening %s %s\n", lc.Kind, l.Addr())
	s.log.Info("listening", "listener", lc.Name, "kind", string(lc.Kind), "address", l.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.b.Serve(limitAccepts(l, lc.ConnectionRate), lc.Name); err != nil {
			s.log.Error("listener failed", "listener", lc.Name, "err", err)
		}
	}()
	return nil
}

func (s *listenerSet) stopLocked(e *listenerEntry) {
	if e.l == nil {
		return
	}
	st := e.l.Stats()
	_ = e.l.Close()
	e.accepted += st.Accepted
	e.rejected += st.Rejected
	e.l = nil
	s.log.Info("listener stopped", "listener", e.cfg.Name)
}

func (s *listenerSet) closeLocked() {
	for _, e := range s.entries {
		s.stopLocked(e)
	}
}

// closeAll stops every listener and waits for their accept loops.
func (s *listenerSet) closeAll() {
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *listenerSet) find(name string) (*listenerEntry, error) {
	for _, e := range s.entries {
		if e.cfg.Name == name {
			return e, nil
		}
	}
	return nil, fmt.Errorf("listener %q: %w", name, admin.ErrNotFound)
}

// List implements admin.Listeners.
func (s *listenerSet) List() []admin.ListenerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]admin.ListenerInfo, 0, len(s.entries))
	for _, e := range s.entries {
		li := admin.ListenerInfo{Name: e.cfg.Name, Kind: string(e.cfg.Kind), Address: e.cfg.Address,
			Accepted: e.accepted, Rejected: e.rejected}
		if e.l != nil {
			st := e.l.Stats()
			li.Running = true
			li.Address = e.l.Addr().String()
			li.Connections = st.Current
			li.Accepted += st.Accepted
			li.Rejected += st.Rejected
		}
		out = append(out, li)
	}
	return out
}

// Stop implements admin.Listeners.
func (s *listenerSet) Stop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(name)
	if err != nil {
		return err
	}
	s.stopLocked(e)
	return nil
}

// Start implements admin.Listeners.
func (s *listenerSet) Start(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(name)
	if err != nil {
		return err
	}
	return s.startLocked(e)
}

// drainer empties the broker for a rolling restart: the listeners stop and the
// clients are drained as on shutdown, but the process stays. It implements
// admin.Drainer.
type drainer struct {
	ls *listenerSet
	b  *broker.Broker
}

// Drain implements admin.Drainer.
func (d drainer) Drain(ctx context.Context) error {
	d.ls.closeAll()
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	return d.b.Drain(ctx)
}
