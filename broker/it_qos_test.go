package broker

// Integration tests of the QoS flows: every QoS in both directions with both
// libraries, exactly once, the inflight window, persistent sessions and resending.

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// QoS 0, 1 and 2 from a 3.1.1 and a 5.0 publisher to a 3.1.1 and a 5.0 subscriber.
func TestQoSAllLevelsBothLibraries(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	h3, got3 := collect()
	s3 := paho3(t, b.addr, "qos-sub3", nil)
	wait(t, s3.Subscribe("qos/#", 2, h3))
	s5 := connect5(t, b.addr, "qos-sub5", nil)
	s5.sub(t, nil, pahov5.SubscribeOptions{Topic: "qos/#", QoS: 2})
	p3 := paho3(t, b.addr, "qos-pub3", nil)
	p5 := connect5(t, b.addr, "qos-pub5", nil)

	for _, from := range []string{"3", "5"} {
		for q := byte(0); q <= 2; q++ {
			topic := fmt.Sprintf("qos/%s/%d", from, q)
			payload := []byte("payload " + topic)
			if from == "3" {
				wait(t, p3.Publish(topic, q, false, payload))
			} else if pr := p5.pub(t, &pahov5.Publish{Topic: topic, QoS: q, Payload: payload}); pr.ReasonCode != 0 {
				t.Fatalf("%s: reason code 0x%02x", topic, pr.ReasonCode)
			}
			m3 := next3(t, got3)
			if m3.Topic() != topic || m3.Qos() != q || string(m3.Payload()) != string(payload) {
				t.Errorf("3.1.1 subscriber: got %q QoS %d %q, want %q QoS %d", m3.Topic(), m3.Qos(), m3.Payload(), topic, q)
			}
			m5 := s5.next(t)
			if m5.Topic != topic || m5.QoS != q || string(m5.Payload) != string(payload) {
				t.Errorf("5.0 subscriber: got %q QoS %d %q, want %q QoS %d", m5.Topic, m5.QoS, m5.Payload, topic, q)
			}
		}
	}
}

// [MQTT-4.3.3-9] (5.0; 3.1.1 section 4.3.3): a QoS 2 PUBLISH sent again with the
// same packet identifier before PUBREL is acknowledged again but delivered once.
// After PUBREL the identifier starts a new message.
func TestQoS2ExactlyOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		topic := "once/" + v.String()
		h, got := collect()
		sub := paho3(t, b.addr, "once-sub-"+v.String(), nil)
		wait(t, sub.Subscribe(topic, 2, h))

		c, _ := rawConnect(t, b.addr, v, "once-pub-"+v.String(), nil)
		for i, dup := range []bool{false, true, true} {
			c.send(&mqtt.Publish{QoS: 2, PacketID: 7, Dup: dup, Topic: topic, Payload: []byte("once")})
			rec := c.readType(mqtt.PUBREC).(*mqtt.Pubrec)
			if rec.PacketID != 7 || rec.ReasonCode.IsError() {
				t.Fatalf("%v: PUBREC %d for sending %d: id %d code %v", v, i, i, rec.PacketID, rec.ReasonCode)
			}
		}
		c.send(&mqtt.Pubrel{PacketID: 7})
		if comp := c.readType(mqtt.PUBCOMP).(*mqtt.Pubcomp); comp.PacketID != 7 || comp.ReasonCode != mqtt.Success {
			t.Fatalf("%v: PUBCOMP id %d code %v", v, comp.PacketID, comp.ReasonCode)
		}
		// The identifier is free again: a new message with it is a new message.
		c.publish(&mqtt.Publish{QoS: 2, PacketID: 7, Topic: topic, Payload: []byte("again")})
		c.publish(&mqtt.Publish{Topic: topic, Payload: []byte("end")})

		for _, want := range []string{"once", "again", "end"} {
			if m := next3(t, got); string(m.Payload()) != want {
				t.Fatalf("%v: got %q, want %q (a duplicate delivered?)", v, m.Payload(), want)
			}
		}
	}
}

// The outbound window: no more than MaxInflight (3.1.1) or the client's Receive
// Maximum (5.0, [MQTT-3.3.4-7]) QoS 1 messages are unacknowledged at once; each
// PUBACK lets the next one go.
func TestInflightWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    mqtt.Version
		opts func(*Options)
		mod  func(*mqtt.Connect)
	}{
		{"MaxInflight", mqtt.Version311, func(o *Options) { o.MaxInflight = 2 }, nil},
		{"ReceiveMaximum", mqtt.Version5, nil, func(cp *mqtt.Connect) {
			cp.Properties.ReceiveMaximum = 2
			cp.Properties.Set(mqtt.PropReceiveMaximum)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, tc.opts)
			sub, _ := rawConnect(t, b.addr, tc.v, "window", tc.mod)
			sub.subscribe(nil, mqtt.Subscription{Filter: "window/t", QoS: 1})
			pub := paho3(t, b.addr, "window-pub", nil)
			for i := range 5 {
				wait(t, pub.Publish("window/t", 1, false, strconv.Itoa(i)))
			}
			// Every message was routed before its PUBACK reached the publisher:
			// what the window allows is on its way.
			var ids []uint16
			recv := func(want int) {
				t.Helper()
				p := sub.expectPublish()
				if string(p.Payload) != strconv.Itoa(want) || p.QoS != 1 {
					t.Fatalf("got %s, want message %d", describePacket(p), want)
				}
				ids = append(ids, p.PacketID)
			}
			recv(0)
			recv(1)
			sub.expectNothing(quiet) // the window is full
			sub.send(&mqtt.Puback{PacketID: ids[0]})
			recv(2)
			sub.expectNothing(quiet)
			sub.send(&mqtt.Puback{PacketID: ids[1]})
			sub.send(&mqtt.Puback{PacketID: ids[2]})
			recv(3)
			recv(4)
			sub.expectNothing(quiet)
		})
	}
}

// A 3.1.1 session with clean session 0 keeps its subscriptions and QoS 1
// messages while offline, and delivers them in order on reconnection with
// session present [MQTT-3.2.2-2].
func TestPersistentSession311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	h, got := collect()
	sub, present := paho3Session(t, b.addr, "persist3", false, h)
	if present {
		t.Fatal("first connection: session present")
	}
	wait(t, sub.Subscribe("persist/3", 1, h))
	sub.Disconnect(100)
	eventually(t, "subscriber offline", func() bool { return b.Stats().ClientsConnected.Load() == 0 })

	pub := paho3(t, b.addr, "persist3-pub", nil)
	for i := range 5 {
		wait(t, pub.Publish("persist/3", 1, false, strconv.Itoa(i)))
	}
	wait(t, pub.Publish("persist/3", 1, false, "last"))

	_, present = paho3Session(t, b.addr, "persist3", false, h)
	if !present {
		t.Fatal("reconnection with clean session 0: session not present")
	}
	for _, want := range []string{"0", "1", "2", "3", "4", "last"} {
		if m := next3(t, got); string(m.Payload()) != want {
			t.Fatalf("got %q, want %q", m.Payload(), want)
		}
	}
}

// A 5.0 session with an expiry interval keeps its subscriptions and messages while
// offline and delivers them in order on reconnection with clean start 0.
func TestPersistentSession5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	persistent := func(cp *pahov5.Connect) {
		cp.Properties = &pahov5.ConnectProperties{SessionExpiryInterval: u32(60)}
	}
	sub := connect5(t, b.addr, "persist5", persistent)
	sub.sub(t, nil, pahov5.SubscribeOptions{Topic: "persist/5", QoS: 2})
	if err := sub.Disconnect(&pahov5.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "subscriber offline", func() bool { return b.Stats().ClientsConnected.Load() == 0 })

	pub := connect5(t, b.addr, "persist5-pub", nil)
	for i := range 6 {
		pr := pub.pub(t, &pahov5.Publish{Topic: "persist/5", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))})
		if pr.ReasonCode != 0 {
			t.Fatalf("publish %d: reason 0x%02x", i, pr.ReasonCode)
		}
	}

	sub = connect5(t, b.addr, "persist5", func(cp *pahov5.Connect) { persistent(cp); cp.CleanStart = false })
	if !sub.ack.SessionPresent {
		t.Fatal("reconnection with clean start 0: session not present")
	}
	for i := range 6 {
		m := sub.next(t)
		if string(m.Payload) != strconv.Itoa(i) || m.QoS != byte(1+i%2) {
			t.Fatalf("got %q QoS %d, want %d QoS %d", m.Payload, m.QoS, i, 1+i%2)
		}
	}
}

// [MQTT-4.4.0-1]: on reconnection with clean session 0 the broker sends again the
// unacknowledged PUBLISH packets, with their packet identifiers and DUP set
// [MQTT-3.3.1-1], and the PUBREL packets, in their original order.
func TestResendUnacknowledged(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	persistent := func(cp *mqtt.Connect) { cp.CleanStart = false }
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "resend", persistent)
	sub.subscribe(nil, mqtt.Subscription{Filter: "resend/t", QoS: 2})

	pub := paho3(t, b.addr, "resend-pub", nil)
	wait(t, pub.Publish("resend/t", 1, false, "a"))
	wait(t, pub.Publish("resend/t", 2, false, "b"))
	wait(t, pub.Publish("resend/t", 2, false, "c"))
	var first []*mqtt.Publish
	for _, want := range []string{"a", "b", "c"} {
		p := sub.expectPublish()
		if string(p.Payload) != want || p.Dup {
			t.Fatalf("got %s, want %q without DUP", describePacket(p), want)
		}
		first = append(first, p)
	}
	sub.send(&mqtt.Pubrec{PacketID: first[2].PacketID})
	if rel := sub.read(); rel.Type() != mqtt.PUBREL || rel.(*mqtt.Pubrel).PacketID != first[2].PacketID {
		t.Fatalf("got %v, want PUBREL %d", rel.Type(), first[2].PacketID)
	}
	sub.close() // nothing acknowledged but the PUBREC

	sub = dialRaw(t, b.addr)
	ack := sub.connect(&mqtt.Connect{Version: mqtt.Version311, ClientID: "resend"}, nil)
	if ack.ReasonCode != mqtt.Success || !ack.SessionPresent {
		t.Fatalf("reconnection: CONNACK %v present %v", ack.ReasonCode, ack.SessionPresent)
	}
	for _, want := range first[:2] {
		p := sub.expectPublish()
		if !p.Dup || p.PacketID != want.PacketID || string(p.Payload) != string(want.Payload) || p.QoS != want.QoS {
			t.Fatalf("resent %s, want %s with DUP", describePacket(p), describePacket(want))
		}
	}
	if rel := sub.read(); rel.Type() != mqtt.PUBREL || rel.(*mqtt.Pubrel).PacketID != first[2].PacketID {
		t.Fatalf("got %v, want PUBREL %d again", rel.Type(), first[2].PacketID)
	}
	sub.send(&mqtt.Puback{PacketID: first[0].PacketID})
	sub.send(&mqtt.Pubrec{PacketID: first[1].PacketID})
	if rel := sub.read(); rel.Type() != mqtt.PUBREL || rel.(*mqtt.Pubrel).PacketID != first[1].PacketID {
		t.Fatalf("got %v, want PUBREL %d", rel.Type(), first[1].PacketID)
	}
	sub.send(&mqtt.Pubcomp{PacketID: first[1].PacketID})
	sub.send(&mqtt.Pubcomp{PacketID: first[2].PacketID})
	// Everything is complete: nothing more is resent on the next connection.
	if before := sub.flush("resend/t"); len(before) != 0 {
		t.Fatalf("got %s", describePackets(before))
	}
	sub.close()
	sub = dialRaw(t, b.addr)
	if ack := sub.connect(&mqtt.Connect{Version: mqtt.Version311, ClientID: "resend"}, nil); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	if before := sub.flush("resend/t"); len(before) != 0 {
		t.Fatalf("resent after completion: %s", describePackets(before))
	}
}
