package main

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"github.com/avocet-mqtt/avocet/bridge"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/session"
)

// bridgeStopTimeout bounds the stop of one bridge.
const bridgeStopTimeout = 5 * time.Second

// bridgeSet is the running bridges, by name. Only serve's goroutine uses it.
type bridgeSet struct {
	b       *broker.Broker
	st      session.Store
	log     *slog.Logger
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
	s.running[c.Name] = br
	s.log.Info("bridge started", "bridge", c.Name, "address", []string(c.Addresses))
	return nil
}

func (s *bridgeSet) stop(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), bridgeStopTimeout)
	defer cancel()
	if err := s.running[name].Stop(ctx); err != nil {
		s.log.Error("bridge stop failed", "bridge", name, "err", err)
	}
	delete(s.running, name)
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
