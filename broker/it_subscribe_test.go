package broker

// Integration tests of SUBSCRIBE and UNSUBSCRIBE: reason codes, subscription
// options, subscription identifiers, overlapping subscriptions and the quota.

import (
	"slices"
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// [MQTT-3.9.3-1]: one SUBACK reason code per filter, in order; an invalid filter
// gets 0x80 in 3.1.1 and 0x8F (Topic Filter invalid) in 5.0, and the valid ones
// beside it are granted.
func TestSubackReasonCodePerFilter(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, tc := range []struct {
		v       mqtt.Version
		invalid mqtt.ReasonCode
	}{
		{mqtt.Version311, mqtt.UnspecifiedError},
		{mqtt.Version5, mqtt.TopicFilterInvalid},
	} {
		c, _ := rawConnect(t, b.addr, tc.v, "suback-"+tc.v.String(), nil)
		got := c.subscribe(nil,
			mqtt.Subscription{Filter: "codes/+", QoS: 1},
			mqtt.Subscription{Filter: "codes/#/b", QoS: 1},
			mqtt.Subscription{Filter: "codes/c", QoS: 2},
			mqtt.Subscription{Filter: "codes/d+", QoS: 0},
			mqtt.Subscription{Filter: "codes/e", QoS: 0},
		)
		want := []mqtt.ReasonCode{mqtt.GrantedQoS1, tc.invalid, mqtt.GrantedQoS2, tc.invalid, mqtt.GrantedQoS0}
		if !slices.Equal(got, want) {
			t.Errorf("%v: SUBACK %v, want %v", tc.v, got, want)
		}
		// The granted ones work.
		c.publish(&mqtt.Publish{Topic: "codes/c", QoS: 1, Payload: []byte("x")})
		p := c.expectPublish()
		if p.Topic != "codes/c" || p.QoS != 1 {
			t.Errorf("%v: got %s", tc.v, describePacket(p))
		}
		c.send(&mqtt.Puback{PacketID: p.PacketID})
	}
}

// UNSUBACK: 5.0 answers 0x11 (No subscription existed) for a filter the client
// was not subscribed to and 0x00 for one it was [MQTT-3.11.3-1]; 3.1.1 answers
// with the packet identifier [MQTT-3.10.4-4].
func TestUnsuback(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "unsub5", nil)
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "unsub/a", QoS: 1})
	ctx, cancel := testContext()
	defer cancel()
	ua, err := c.Unsubscribe(ctx, &pahov5.Unsubscribe{Topics: []string{"unsub/a", "unsub/none"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x00, 0x11}; !slices.Equal(ua.Reasons, want) {
		t.Errorf("UNSUBACK %x, want %x", ua.Reasons, want)
	}
	if pr := c.pub(t, &pahov5.Publish{Topic: "unsub/a", QoS: 1, Payload: []byte("x")}); pr.ReasonCode != byte(mqtt.NoMatchingSubscribers) {
		t.Errorf("after UNSUBSCRIBE: PUBACK 0x%02x, want 0x10", pr.ReasonCode)
	}

	r, _ := rawConnect(t, b.addr, mqtt.Version311, "unsub3", nil)
	r.subscribe(nil, mqtt.Subscription{Filter: "unsub/b", QoS: 0})
	r.send(&mqtt.Unsubscribe{PacketID: 77, Filters: []string{"unsub/b", "unsub/none"}})
	if ack := r.read(); ack.Type() != mqtt.UNSUBACK || ack.(*mqtt.Unsuback).PacketID != 77 {
		t.Fatalf("got %v, want UNSUBACK 77", ack.Type())
	}
	if code := r.publish(&mqtt.Publish{Topic: "unsub/b", QoS: 1, Payload: []byte("x")}); code != mqtt.Success {
		t.Fatal(code)
	}
	// The message was routed before its PUBACK was queued; a copy for r would
	// follow it at once.
	r.expectNothing(quiet)
}

// [MQTT-3.8.3-3]: with No Local the client does not get its own messages back,
// but gets the others'.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "nolocal", nil)
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "nolocal/t", QoS: 1, NoLocal: true})
	other := connect5(t, b.addr, "nolocal-other", nil)
	other.sub(t, nil, pahov5.SubscribeOptions{Topic: "nolocal/t", QoS: 1})

	// The own message is routed before its PUBACK, so before the other's.
	c.pub(t, &pahov5.Publish{Topic: "nolocal/t", QoS: 1, Payload: []byte("own")})
	other.pub(t, &pahov5.Publish{Topic: "nolocal/t", QoS: 1, Payload: []byte("other's")})
	if m := c.next(t); string(m.Payload) != "other's" {
		t.Fatalf("No Local subscriber got %q first, want the other's message", m.Payload)
	}
	// A subscription without No Local gets its own messages.
	for _, want := range []string{"own", "other's"} {
		if m := other.next(t); string(m.Payload) != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
	}
}

// Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]: a forwarded retained
// message keeps RETAIN only for subscriptions that asked; a 3.1.1 subscriber gets
// RETAIN 0 [MQTT-3.3.1-9]; at subscription time retained messages carry RETAIN 1
// whatever the option.
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	rap := connect5(t, b.addr, "rap", nil)
	rap.sub(t, nil, pahov5.SubscribeOptions{Topic: "rap/t", QoS: 1, RetainAsPublished: true})
	plain := connect5(t, b.addr, "rap-not", nil)
	plain.sub(t, nil, pahov5.SubscribeOptions{Topic: "rap/t", QoS: 1})
	h, got3 := collect()
	v3 := paho3(t, b.addr, "rap-3", nil)
	wait(t, v3.Subscribe("rap/t", 1, h))

	pub := connect5(t, b.addr, "rap-pub", nil)
	pub.pub(t, &pahov5.Publish{Topic: "rap/t", QoS: 1, Retain: true, Payload: []byte("r")})
	if m := rap.next(t); !m.Retain {
		t.Error("Retain As Published: RETAIN 0")
	}
	if m := plain.next(t); m.Retain {
		t.Error("without Retain As Published: RETAIN 1")
	}
	if m := next3(t, got3); m.Retained() {
		t.Error("3.1.1 subscriber: RETAIN 1 on a forwarded message")
	}

	late := connect5(t, b.addr, "rap-late", nil)
	late.sub(t, nil, pahov5.SubscribeOptions{Topic: "rap/t", QoS: 1})
	if m := late.next(t); !m.Retain || string(m.Payload) != "r" {
		t.Errorf("retained message at subscription: retain %v payload %q", m.Retain, m.Payload)
	}
}

// Retain Handling (MQTT 5.0 section 3.8.3.1): 0 sends retained messages on every
// SUBSCRIBE [MQTT-3.3.1-9] [MQTT-3.8.4-3], 1 only when the subscription is new
// [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	pub := connect5(t, b.addr, "rh-pub", nil)
	pub.pub(t, &pahov5.Publish{Topic: "rh/t", QoS: 1, Retain: true, Payload: []byte("kept")})

	retained := func(c *client5) int {
		t.Helper()
		n := 0
		for _, m := range c.flush(t, "rh/t") {
			if !m.Retain || string(m.Payload) != "kept" {
				t.Fatalf("got retain %v payload %q", m.Retain, m.Payload)
			}
			n++
		}
		return n
	}
	for _, tc := range []struct {
		handling    byte
		first, next int
	}{
		{0, 1, 1},
		{1, 1, 0},
		{2, 0, 0},
	} {
		c := connect5(t, b.addr, "rh-"+string(rune('0'+tc.handling)), nil)
		opts := pahov5.SubscribeOptions{Topic: "rh/t", QoS: 1, RetainHandling: tc.handling}
		c.sub(t, nil, opts)
		if n := retained(c); n != tc.first {
			t.Errorf("retain handling %d, new subscription: %d retained messages, want %d", tc.handling, n, tc.first)
		}
		c.sub(t, nil, opts)
		if n := retained(c); n != tc.next {
			t.Errorf("retain handling %d, existing subscription: %d retained messages, want %d", tc.handling, n, tc.next)
		}
	}
}

// The Subscription Identifier of a SUBSCRIBE comes with every message the
// subscription matches [MQTT-3.3.4-3]; replacing the subscription
// replaces it, and a subscription without one gives none.
func TestSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "subid", nil)
	c.sub(t, &pahov5.SubscribeProperties{SubscriptionIdentifier: intP(42)}, pahov5.SubscribeOptions{Topic: "subid/+", QoS: 1})
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "nosubid/t", QoS: 1})
	pub := connect5(t, b.addr, "subid-pub", nil)

	check := func(topic string, want int) {
		t.Helper()
		pub.pub(t, &pahov5.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		m := c.next(t)
		var got int
		if m.Properties != nil && m.Properties.SubscriptionIdentifier != nil {
			got = *m.Properties.SubscriptionIdentifier
		}
		if got != want {
			t.Errorf("%s: subscription identifier %d, want %d", topic, got, want)
		}
	}
	check("subid/a", 42)
	check("nosubid/t", 0)
	c.sub(t, &pahov5.SubscribeProperties{SubscriptionIdentifier: intP(7)}, pahov5.SubscribeOptions{Topic: "subid/+", QoS: 1})
	check("subid/b", 7)
}

// A message matching several subscriptions of one client is delivered once, with
// the highest QoS of them [MQTT-3.3.4-2] (3.1.1: [MQTT-3.3.5-1]) and, in 5.0,
// every matching subscription identifier [MQTT-3.3.4-3] (the broker sends one copy).
func TestOverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	pub := paho3(t, b.addr, "overlap-pub", nil)

	c5, _ := rawConnect(t, b.addr, mqtt.Version5, "overlap5", nil)
	c5.subscribe(&mqtt.Properties{SubscriptionIDs: []uint32{1}}, mqtt.Subscription{Filter: "overlap/+", QoS: 0})
	c5.subscribe(&mqtt.Properties{SubscriptionIDs: []uint32{2}}, mqtt.Subscription{Filter: "overlap/#", QoS: 2})
	c5.subscribe(nil, mqtt.Subscription{Filter: "overlap/x", QoS: 1})
	c3, _ := rawConnect(t, b.addr, mqtt.Version311, "overlap3", nil)
	c3.subscribe(nil, mqtt.Subscription{Filter: "overlap/+", QoS: 1}, mqtt.Subscription{Filter: "overlap/#", QoS: 2})

	wait(t, pub.Publish("overlap/x", 2, false, "once"))
	for _, c := range []*rawClient{c5, c3} {
		// A marker topic of its own: the filters above match each other's.
		mk := "overlap-marker/" + c.v.String()
		c.subscribe(nil, mqtt.Subscription{Filter: mk, QoS: 0})
		p := c.expectPublish()
		if p.QoS != 2 || string(p.Payload) != "once" {
			t.Fatalf("%v: got %s, want QoS 2", c.v, describePacket(p))
		}
		if c.v == mqtt.Version5 {
			ids := slices.Sorted(slices.Values(p.Properties.SubscriptionIDs))
			if !slices.Equal(ids, []uint32{1, 2}) {
				t.Errorf("subscription identifiers %v, want [1 2]", p.Properties.SubscriptionIDs)
			}
		}
		c.send(&mqtt.Pubrec{PacketID: p.PacketID})
		c.readType(mqtt.PUBREL)
		c.send(&mqtt.Pubcomp{PacketID: p.PacketID})
		if before := c.flush(mk); len(before) != 0 {
			t.Errorf("%v: a second copy: %s", c.v, describePackets(before))
		}
	}
}

// MaxSubscriptions bounds a client's subscriptions: the filters beyond it get
// 0x97 (Quota exceeded) in 5.0 and 0x80 in 3.1.1; replacing an existing
// subscription is allowed, and unsubscribing makes room.
func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxSubscriptions = 2 })
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "quota", nil)
	got := c.subscribe(nil,
		mqtt.Subscription{Filter: "quota/a", QoS: 0},
		mqtt.Subscription{Filter: "quota/b", QoS: 1},
		mqtt.Subscription{Filter: "quota/c", QoS: 0})
	if want := []mqtt.ReasonCode{0, 1, mqtt.QuotaExceeded}; !slices.Equal(got, want) {
		t.Errorf("SUBACK %v, want %v", got, want)
	}
	if got := c.subscribe(nil, mqtt.Subscription{Filter: "quota/a", QoS: 2}); !slices.Equal(got, []mqtt.ReasonCode{2}) {
		t.Errorf("replacing a subscription: SUBACK %v, want [2]", got)
	}
	if got := c.subscribe(nil, mqtt.Subscription{Filter: "quota/d", QoS: 0}); !slices.Equal(got, []mqtt.ReasonCode{mqtt.QuotaExceeded}) {
		t.Errorf("third filter: SUBACK %v, want [0x97]", got)
	}
	c.send(&mqtt.Unsubscribe{PacketID: c.id(), Filters: []string{"quota/b"}})
	c.readType(mqtt.UNSUBACK)
	if got := c.subscribe(nil, mqtt.Subscription{Filter: "quota/d", QoS: 0}); !slices.Equal(got, []mqtt.ReasonCode{0}) {
		t.Errorf("after UNSUBSCRIBE: SUBACK %v, want [0]", got)
	}

	c3, _ := rawConnect(t, b.addr, mqtt.Version311, "quota3", nil)
	got = c3.subscribe(nil,
		mqtt.Subscription{Filter: "quota/a", QoS: 0},
		mqtt.Subscription{Filter: "quota/b", QoS: 1},
		mqtt.Subscription{Filter: "quota/c", QoS: 0})
	if want := []mqtt.ReasonCode{0, 1, mqtt.UnspecifiedError}; !slices.Equal(got, want) {
		t.Errorf("3.1.1: SUBACK %v, want %v", got, want)
	}
}

func intP(v int) *int { return &v }
