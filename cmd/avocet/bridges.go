package main

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/avocet-mqtt/avocet/bridge"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/session"
)

// bridgeStopTimeout bounds the stop of one bridge.
const bridgeStopTimeout = 5 * time.Second

// bridgeSet is the running bridges, by name. Only serve's goroutine starts,
// stops and reloads them; statuses may be called from any goroutine.
type bridgeSet struct {
	b   *broker.Broker
	st  session.Store
	log *slog.Logger

	// mu guards running against statuses: serve's goroutine, its only
	// writer, holds it to change the map and reads it without.
	mu      sync.Mutex
	running map[string]*bridge.Bridge
}

// startBridges starts every bridge of cfgs. A bridge that cannot start is
// an error, and the bridges started before it are stopped.
func startBridges(cfgs []config.Bridge, b *broker.Broker, st session.Store, log *slog.Logger) (*bridgeSet, error) {
	s := &bridgeSet{b: b, st: st, log: log, running: map[string]*bridge.Bridge{}}
	for _, c := range cfgs {
		if err := s.start(c); err != nil {
			s.stopAll()
			return nil, err
		}
	}
	return s, nil
}

func (s *bridgeSet) start(c config.Bridge) error {
	br, err := bridge.New(c, s.b, s.st, s.log)
	if err != nil {
		return err
	}
	if err := br.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.running[c.Name] = br
	s.mu.Unlock()
	s.log.Info("bridge started", "bridge", c.Name, "address", []string(c.Addresses))
	return nil
}

func (s *bridgeSet) stop(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), bridgeStopTimeout)
	defer cancel()
	if err := s.running[name].Stop(ctx); err != nil {
		s.log.Error("bridge stop failed", "bridge", name, "err", err)
	}
	s.mu.Lock()
	delete(s.running, name)
	s.mu.Unlock()
}

// statuses returns the status of every running bridge, for the admin
// server. It holds the set's lock only to copy the map, so that a reload
// stopping a bridge does not hold it up.
func (s *bridgeSet) statuses() []bridge.Status {
	s.mu.Lock()
	running := make([]*bridge.Bridge, 0, len(s.running))
	for _, br := range s.running {
		running = append(running, br)
	}
	s.mu.Unlock()
	out := make([]bridge.Status, 0, len(running))
	for _, br := range running {
		out = append(out, br.Status())
	}
	return out
}

// stopAll stops every bridge; their queues stay in the store.
func (s *bridgeSet) stopAll() {
	for name := range s.running {
		s.stop(name)
	}
}

// reload makes the running bridges those of cfgs, compared by name: removed
// ones stop, new ones start, changed ones restart with their queue.
func (s *bridgeSet) reload(cfgs []config.Bridge) {
	want := map[string]config.Bridge{}
	for _, c := range cfgs {
		want[c.Name] = c
	}
	for name, br := range s.running {
		if c, ok := want[name]; !ok || !reflect.DeepEqual(c, br.Config()) {
			s.stop(name)
			s.log.Info("bridge stopped by reload", "bridge", name)
		}
	}
	for _, c := range cfgs {
		if _, ok := s.running[c.Name]; ok {
			continue
		}
		if err := s.start(c); err != nil {
			s.log.Error("bridge not started", "bridge", c.Name, "err", err)
		}
	}
}
