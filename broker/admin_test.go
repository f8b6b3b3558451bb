package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func TestAdminSessionsDisconnectDeleteTrace(t *testing.T) {
	b := startBroker(t, nil)
	var mu sync.Mutex
	var traced []string
	stop := b.Trace("watched", func(e TraceEvent) {
		mu.Lock()
		dir := "out"
		if e.Inbound {
			dir = "in"
		}
		traced = append(traced, dir+" "+e.Packet.Type().String())
		mu.Unlock()
	})
	defer stop()

	c, _ := rawConnect(t, b.addr, mqtt.Version5, "watched", func(cp *mqtt.Connect) {
		cp.CleanStart = false
		cp.Properties.SessionExpiry = 600
		cp.Properties.Set(mqtt.PropSessionExpiry)
		cp.UsernameFlag, cp.Username = true, "ops"
	})
	c.subscribe(nil, mqtt.Subscription{Filter: "a/#", QoS: 1})
	c.publish(&mqtt.Publish{QoS: 1, Topic: "a/b", Payload: []byte("x")})
	c.expectPublish()

	list := b.Sessions()
	if len(list) != 1 || !list[0].Online || list[0].Username != "ops" || list[0].Subscriptions != 1 || !list[0].Persistent {
		t.Fatalf("Sessions() = %+v", list)
	}
	if _, subs, ok := b.Session("watched"); !ok || len(subs) != 1 || subs[0].Filter != "a/#" {
		t.Fatalf("Session() = %v %v", subs, ok)
	}
	eventually(t, "trace of SUBSCRIBE, PUBLISH both ways and acknowledgements", func() bool {
		mu.Lock()
		defer mu.Unlock()
		want := map[string]bool{"in SUBSCRIBE": false, "out SUBACK": false, "in PUBLISH": false, "out PUBLISH": false, "out PUBACK": false}
		for _, e := range traced {
			if _, ok := want[e]; ok {
				want[e] = true
			}
		}
		for _, ok := range want {
			if !ok {
				return false
			}
		}
		return true
	})

	if !b.Disconnect("watched") {
		t.Fatal("Disconnect of a connected client reported false")
	}
	c.expectDisconnect(mqtt.AdministrativeAction, 5*time.Second)
	eventually(t, "offline", func() bool { s, _, _ := b.Session("watched"); return !s.Online })
	if !b.DeleteSession("watched") {
		t.Fatal("DeleteSession reported false")
	}
	if _, _, ok := b.Session("watched"); ok || b.Tree().SubscriptionCount() != 0 {
		t.Fatal("the deleted session or its subscriptions remain")
	}
}

func TestDrainLetsInflightFinishThenDisconnects(t *testing.T) {
	b := startBroker(t, nil)
	sub, _ := rawConnect(t, b.addr, mqtt.Version5, "slow-acker", nil)
	sub.subscribe(nil, mqtt.Subscription{Filter: "d/#", QoS: 1})
	pub, _ := rawConnect(t, b.addr, mqtt.Version5, "pub", nil)
	pub.publish(&mqtt.Publish{QoS: 1, Topic: "d/x", Payload: []byte("owed")})
	p := sub.expectPublish() // inflight until acknowledged

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.Drain(ctx)
	}()
	pub.expectDisconnect(mqtt.ServerShuttingDown, 5*time.Second) // nothing inflight: goes at once
	if ack := dialRaw(t, b.addr).connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "newcomer", CleanStart: true}, nil); ack.ReasonCode != mqtt.ServerUnavailable {
		t.Fatalf("CONNECT while draining: %v", ack.ReasonCode)
	}
	sub.expectNothing(200 * time.Millisecond) // still owes a PUBACK, so it stays
	sub.send(&mqtt.Puback{PacketID: p.PacketID})
	sub.expectDisconnect(mqtt.ServerShuttingDown, 5*time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEnhancedAuthenticationRefused(t *testing.T) {
	b := startBroker(t, nil)
	ack := dialRaw(t, b.addr).connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "scram", CleanStart: true}, func(cp *mqtt.Connect) {
		cp.Properties.AuthMethod = "SCRAM-SHA-1"
		cp.Properties.Set(mqtt.PropAuthMethod)
	})
	if ack.ReasonCode != mqtt.BadAuthenticationMethod {
		t.Fatalf("CONNACK %v, want bad authentication method", ack.ReasonCode)
	}
}
