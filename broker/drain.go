package broker

import (
	"context"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Drain empties the broker of its clients for a restart: no new CONNECT is taken
// (CONNACK server unavailable: 3.x return code 3, 5.0 reason 0x88), and each
// connected client is given until ctx is done to finish its inflight QoS 1 and 2
// messages, then is disconnected (5.0 clients get DISCONNECT 0x8B, server
// shutting down). Persistent sessions stay, with what they
// are owed, for the clients to resume here or elsewhere. Drain returns once every
// client is gone. The listeners are the caller's to close first.
func (b *Broker) Drain(ctx context.Context) error {
	b.draining.Store(true)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		b.mu.RLock()
		conns := make([]*conn, 0, len(b.conns))
		for c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.RUnlock()
		if len(conns) == 0 {
			return nil
		}
		late := ctx.Err() != nil
		for _, c := range conns {
			cs := c.cs
			if late || cs == nil || cs.s.InflightCount() == 0 && c.pendingAcks.Load() == 0 {
				c.kick(mqtt.ServerShuttingDown)
			}
		}
		select {
		case <-t.C:
		case <-b.ctx.Done():
			return nil
		}
	}
}

// Draining reports whether Drain was called: the broker takes no new clients.
func (b *Broker) Draining() bool { return b.draining.Load() }
