package broker

import (
	"strconv"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// sysLoop publishes the $SYS topics every SysInterval, as retained messages, in
// the spirit of Mosquitto's and VerneMQ's.
func (b *Broker) sysLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.SysInterval)
	defer t.Stop()
	b.publishSys()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			b.publishSys()
		}
	}
}

// SysTopics returns the current $SYS topics and their values.
func (b *Broker) SysTopics() map[string]string {
	s := &b.stats
	b.mu.RLock()
	sessions := len(b.sessions)
	b.mu.RUnlock()
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	connected := s.ClientsConnected.Load()
	return map[string]string{
		"$SYS/broker/version":                 "avocet " + b.opts.Version,
		"$SYS/broker/uptime":                  strconv.FormatInt(int64(time.Since(b.start)/time.Second), 10) + " seconds",
		"$SYS/broker/clients/connected":       i(connected),
		"$SYS/broker/clients/disconnected":    i(int64(sessions) - connected),
		"$SYS/broker/clients/total":           i(int64(sessions)),
		"$SYS/broker/connections/total":       i(s.ConnectionsTotal.Load()),
		"$SYS/broker/messages/received":       i(s.MessagesReceived.Load()),
		"$SYS/broker/messages/sent":           i(s.MessagesSent.Load()),
		"$SYS/broker/messages/dropped":        i(s.MessagesDropped.Load()),
		"$SYS/broker/messages/expired":        i(s.MessagesExpired.Load()),
		"$SYS/broker/bytes/received":          i(s.BytesReceived.Load()),
		"$SYS/broker/bytes/sent":              i(s.BytesSent.Load()),
		"$SYS/broker/subscriptions/count":     i(int64(b.tree.SubscriptionCount())),
		"$SYS/broker/retained messages/count": i(int64(b.ret.Len())),
		"$SYS/broker/retained messages/bytes": i(b.ret.Bytes()),
	}
}

func (b *Broker) publishSys() {
	for topic, value := range b.SysTopics() {
		b.Publish(&mqtt.Message{Topic: topic, Payload: []byte(value), Retain: true})
	}
}
