package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/retain"
	"github.com/avocet-mqtt/avocet/store"
)

// durableBroker is a broker on a BuntDB store in dir that the test can stop and
// start again on the same files.
type durableBroker struct {
	*Broker
	addr string
	stop func()
}

func startDurable(t *testing.T, dir string) *durableBroker {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir, Fsync: store.Always})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := retain.New(db.Retained(), retain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, addr, stopBroker := runBroker(t, func(o *Options) {
		o.SessionStore = db
		o.Retained = ret
	})
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopBroker()
			if err := db.Close(); err != nil {
				t.Errorf("store close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &durableBroker{Broker: b, addr: addr, stop: stop}
}

// TestRestartKeepsSessionsQueuesAndRetained: messages published to an offline
// persistent session, its subscriptions and retained messages survive a restart
// of the broker on the same data directory, and come back once, in order.
func TestRestartKeepsSessionsQueuesAndRetained(t *testing.T) {
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		t.Run("v="+v.String(), func(t *testing.T) {
			dir := t.TempDir()
			b := startDurable(t, dir)
			persistent := func(cp *mqtt.Connect) {
				cp.CleanStart = false
				if v == mqtt.Version5 {
					cp.Properties.SessionExpiry = 3600
					cp.Properties.Set(mqtt.PropSessionExpiry)
				}
			}
			sub, _ := rawConnect(t, b.addr, v, "keeper", persistent)
			codes := sub.subscribe(nil, mqtt.Subscription{Filter: "owed/1", QoS: 1}, mqtt.Subscription{Filter: "owed/2", QoS: 2})
			if codes[0] != mqtt.GrantedQoS1 || codes[1] != mqtt.GrantedQoS2 {
				t.Fatalf("SUBACK %v", codes)
			}
			sub.send(&mqtt.Disconnect{})
			sub.expectClosed(5 * time.Second)
			eventually(t, "session offline", func() bool { return !b.online("keeper") })

			pub, _ := rawConnect(t, b.addr, v, "pub", nil)
			const n = 20
			for i := range n {
				q := mqtt.QoS(1 + i%2)
				pub.publish(&mqtt.Publish{QoS: q, Topic: fmt.Sprintf("owed/%d", q), Payload: []byte(fmt.Sprint(i))})
			}
			pub.publish(&mqtt.Publish{QoS: 1, Retain: true, Topic: "kept/r", Payload: []byte("retained")})
			pub.close()
			b.stop()

			b = startDurable(t, dir)
			sub = dialRaw(t, b.addr)
			ack := sub.connect(&mqtt.Connect{Version: v, ClientID: "keeper"}, persistent)
			if ack.ReasonCode != mqtt.Success || !ack.SessionPresent {
				t.Fatalf("reconnect after restart: %v, session present %v", ack.ReasonCode, ack.SessionPresent)
			}
			for i := range n {
				p := sub.expectPublish()
				if string(p.Payload) != fmt.Sprint(i) || p.QoS != mqtt.QoS(1+i%2) {
					t.Fatalf("message %d: got %q at %v", i, p.Payload, p.QoS)
				}
				if p.QoS == mqtt.AtLeastOnce {
					sub.send(&mqtt.Puback{PacketID: p.PacketID})
				} else {
					sub.send(&mqtt.Pubrec{PacketID: p.PacketID})
					sub.readType(mqtt.PUBREL)
					sub.send(&mqtt.Pubcomp{PacketID: p.PacketID})
				}
			}
			// The subscriptions came back too: a new message arrives, nothing else before it.
			pub, _ = rawConnect(t, b.addr, v, "pub", nil)
			pub.publish(&mqtt.Publish{QoS: 1, Topic: "owed/1", Payload: []byte("after")})
			if p := sub.expectPublish(); string(p.Payload) != "after" {
				t.Fatalf("after restart got %q, want the new message only once", p.Payload)
			}
			late, _ := rawConnect(t, b.addr, v, "late", nil)
			late.subscribe(nil, mqtt.Subscription{Filter: "kept/#", QoS: 1})
			if p := late.expectPublish(); string(p.Payload) != "retained" || !p.Retain {
				t.Fatalf("retained after restart: %q retain=%v", p.Payload, p.Retain)
			}
		})
	}
}

// TestRestartResendsInflightWithSameIDs: a QoS 2 message sent and not
// acknowledged before a restart is sent again with its packet identifier and DUP,
// and one whose PUBREC was received gets only its PUBREL again, so the client
// never takes it for a new message.
func TestRestartResendsInflightWithSameIDs(t *testing.T) {
	dir := t.TempDir()
	b := startDurable(t, dir)
	persistent := func(cp *mqtt.Connect) { cp.CleanStart = false }
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "q2", persistent)
	sub.subscribe(nil, mqtt.Subscription{Filter: "x/#", QoS: 2})
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "pub", nil)
	pub.publish(&mqtt.Publish{QoS: 2, Topic: "x/a", Payload: []byte("a")})
	pub.publish(&mqtt.Publish{QoS: 2, Topic: "x/b", Payload: []byte("b")})
	first := sub.expectPublish()
	second := sub.expectPublish()
	sub.send(&mqtt.Pubrec{PacketID: first.PacketID}) // first: PUBREC sent; second: nothing
	sub.readType(mqtt.PUBREL)
	sub.close()
	pub.close()
	eventually(t, "session offline", func() bool { return !b.online("q2") })
	b.stop()

	b = startDurable(t, dir)
	sub = dialRaw(t, b.addr)
	if ack := sub.connect(&mqtt.Connect{Version: mqtt.Version311, ClientID: "q2"}, persistent); !ack.SessionPresent {
		t.Fatal("session lost in the restart")
	}
	rel, ok := sub.read().(*mqtt.Pubrel)
	if !ok || rel.PacketID != first.PacketID {
		t.Fatalf("want PUBREL %d first, got %#v", first.PacketID, rel)
	}
	again := sub.expectPublish()
	if again.PacketID != second.PacketID || !again.Dup || string(again.Payload) != "b" {
		t.Fatalf("resent %#v, want packet %d with DUP", again, second.PacketID)
	}
}
