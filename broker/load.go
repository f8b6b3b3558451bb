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
		s := l.Session
		cs := &clientSession{id: s.ID(), s: s}
		user := s.Username()
		cs.username.Store(&user)
		exp := s.Expiry()
		var left time.Duration
		if exp != session.NeverExpire {
			left = l.Offline.Add(time.Duration(exp) * time.Second).Sub(start)
			if exp == 0 || left <= 0 {
				for _, sub := range l.Subscriptions {
					s.DeleteSubscription(sub.Filter)
				}
				s.Purge()
				expired++
				return nil
			}
		}
		for _, sub := range l.Subscriptions {
			o := sub.Options
			opts := SubscriptionOptions{QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished,
				RetainHandling: o.RetainHandling, SubscriptionID: sub.SubscriptionID}
			if _, err := b.tree.Subscribe(s.ID(), sub.Filter, opts); err != nil {
				return fmt.Errorf("session %q: subscription %q: %w", s.ID(), sub.Filter, err)
			}
			subs++
		}
		s.SaveMeta(l.Offline)
		b.sessions[s.ID()] = cs
		if exp != session.NeverExpire {
			b.expireLocked(cs, left)
		}
		loaded++
		messages += s.Queued() + s.InflightCount()
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: load sessions: %w", err)
	}
	b.log.Info("sessions loaded", "sessions", loaded, "subscriptions", subs, "messages", messages,
		"expired", expired, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
