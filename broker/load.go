package broker

import (
	"fmt"
	"time"

	"github.com/avocet-mqtt/avocet/session"
)

// loadSessions reads the persistent sessions of the session store into the broker:
// each comes back offline with its subscriptions, queued and inflight messages,
// and the rest of its expiry interval. Sessions that expired while the broker was
// down are removed.
func (b *Broker) loadSessions() error {
	start := time.Now()
	limits := b.sessionLimits()
	var loaded, messages, subs, expired int
	b.mu.Lock()
	defer b.mu.Unlock()
	err := session.Load(b.opts.SessionStore, limits, start, func(l *session.Loaded) error {
		ok, err := b.installLocked(l, start)
		switch {
		case err != nil:
			return err
		case !ok:
			expired++
			return nil
		}
		subs += len(l.Subscriptions)
		loaded++
		messages += l.Session.Queued() + l.Session.InflightCount()
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: load sessions: %w", err)
	}
	b.log.Info("sessions loaded", "sessions", loaded, "subscriptions", subs, "messages", messages,
		"expired", expired, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
