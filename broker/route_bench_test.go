package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

type countingReceiver struct{ n int }

func (r *countingReceiver) Deliver(*mqtt.Message, mqtt.QoS, bool, []uint32) bool {
	r.n++
	return false
}

// BenchmarkRoute measures routing one message to its subscribers: the match, the
// choice of recipients and the hand-over, without the network.
func BenchmarkRoute(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("target=receiver/subs=%d", subs), func(b *testing.B) {
			br := startBroker(b, nil)
			rcv := &countingReceiver{}
			for i := range subs {
				id := fmt.Sprintf("r%d", i)
				br.AttachReceiver(id, rcv)
				if _, err := br.Subscribe(id, "fleet/+/telemetry", SubscriptionOptions{QoS: 1}); err != nil {
					b.Fatal(err)
				}
			}
			m := &mqtt.Message{Topic: "fleet/d1/telemetry", Payload: make([]byte, 64), QoS: 1}
			b.ReportAllocs()
			for b.Loop() {
				br.route(m, nil)
			}
			if rcv.n < subs {
				b.Fatalf("delivered %d", rcv.n)
			}
		})
		b.Run(fmt.Sprintf("target=session/subs=%d", subs), func(b *testing.B) {
			br := startBroker(b, nil)
			var sessions []*clientSession
			for i := range subs {
				id := fmt.Sprintf("s%d", i)
				cs := br.newSession(id)
				cs.conn.Store(&conn{}) // online, so that QoS 0 is queued too
				br.mu.Lock()
				br.sessions[id] = cs
				br.mu.Unlock()
				sessions = append(sessions, cs)
				if _, err := br.Subscribe(id, "fleet/+/telemetry", SubscriptionOptions{QoS: 0}); err != nil {
					b.Fatal(err)
				}
			}
			m := &mqtt.Message{Topic: "fleet/d1/telemetry", Payload: make([]byte, 64)}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				br.route(m, nil)
				for _, cs := range sessions {
					if _, _, ok := cs.s.Next(10, now, nil); !ok {
						b.Fatal("nothing queued")
					}
				}
			}
		})
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race (go test -run RouteDoesNot ./broker)")
	}
	br := startBroker(t, nil)
	rcv := &countingReceiver{}
	for i := range 10 {
		id := fmt.Sprintf("r%d", i)
		br.AttachReceiver(id, rcv)
		if _, err := br.Subscribe(id, "a/+", SubscriptionOptions{QoS: 1, SubscriptionID: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	m := &mqtt.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}
	br.route(m, nil) // warm the match cache and the pooled result
	if n := testing.AllocsPerRun(200, func() { br.route(m, nil) }); n != 0 {
		t.Fatalf("routing allocates %.1f times per message", n)
	}
}
