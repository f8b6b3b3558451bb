package broker

import "time"

// Limits are the options that may change while the broker runs (on SIGHUP, say).
// A change applies to what happens after it: a new connection, a new packet.
type Limits struct {
	MaxKeepAlive        uint16
	ServerKeepAlive     uint16
	MaxConnections      int
	MaxTopicLevels      int
	MaxSubscriptions    int
	MaxPublishRate      int
	MaxPublishBytesRate int64
	ThrottleLimit       time.Duration
}

// limitsOf takes the changeable part of o.
func limitsOf(o *Options) *Limits {
	return &Limits{MaxKeepAlive: o.MaxKeepAlive, ServerKeepAlive: o.ServerKeepAlive, MaxConnections: o.MaxConnections,
		MaxTopicLevels: o.MaxTopicLevels, MaxSubscriptions: o.MaxSubscriptions, MaxPublishRate: o.MaxPublishRate,
		MaxPublishBytesRate: o.MaxPublishBytesRate, ThrottleLimit: o.ThrottleLimit}
}

// SetLimits replaces the changeable limits; safe to call at any time. A
// MaxKeepAlive of 0 keeps 65535.
func (b *Broker) SetLimits(l Limits) {
	if l.MaxKeepAlive == 0 {
		l.MaxKeepAlive = 65535
	}
	b.limits.Store(&l)
}

// CurrentLimits returns the limits in force.
func (b *Broker) CurrentLimits() Limits { return *b.limits.Load() }
