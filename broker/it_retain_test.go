package broker

// Integration tests of retained messages: set, replace, clear, delivery on
// subscription, and none for shared subscriptions.

import (
	"testing"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// [MQTT-3.3.1-5] a retained message is stored and sent to new subscribers with
// RETAIN 1 [MQTT-3.3.1-8]; [MQTT-3.3.1-7] a new one replaces it; [MQTT-3.3.1-10]
// (3.1.1; 5.0 [MQTT-3.3.1-6]) an empty one clears it, and is itself forwarded to
// current subscribers.
func TestRetainedSetReplaceClear(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	pub := paho3(t, b.addr, "ret-pub", nil)

	// subscribe returns the retained messages a new 5.0 subscriber to retain/# gets.
	n := 0
	subscribe := func() []*pahov5.Publish {
		t.Helper()
		n++
		c := connect5(t, b.addr, "ret-sub-"+string(rune('0'+n)), nil)
		c.sub(t, nil, pahov5.SubscribeOptions{Topic: "retain/#", QoS: 1})
		return c.flush(t, "retain/marker")
	}

	wait(t, pub.Publish("retain/t", 1, true, "v1"))
	got := subscribe()
	if len(got) != 1 || string(got[0].Payload) != "v1" || !got[0].Retain || got[0].Topic != "retain/t" {
		t.Fatalf("after set: got %v, want v1 with RETAIN", payloadsOf(got))
	}

	live := connect5(t, b.addr, "ret-live", nil)
	live.sub(t, nil, pahov5.SubscribeOptions{Topic: "retain/t", QoS: 1})
	if m := live.next(t); string(m.Payload) != "v1" {
		t.Fatalf("got %q", m.Payload)
	}
	wait(t, pub.Publish("retain/t", 1, true, "v2"))
	if m := live.next(t); string(m.Payload) != "v2" {
		t.Fatalf("live subscriber got %q, want v2", m.Payload)
	}
	got = subscribe()
	if len(got) != 1 || string(got[0].Payload) != "v2" || !got[0].Retain {
		t.Fatalf("after replace: got %v, want v2 only", payloadsOf(got))
	}
	// A 3.1.1 subscriber gets it with RETAIN too [MQTT-3.3.1-6] (3.1.1).
	h, got3 := collect()
	s3 := paho3(t, b.addr, "ret-sub3", nil)
	wait(t, s3.Subscribe("retain/t", 1, h))
	if m := next3(t, got3); string(m.Payload()) != "v2" || !m.Retained() {
		t.Fatalf("3.1.1 subscriber: got %q retained %v", m.Payload(), m.Retained())
	}

	wait(t, pub.Publish("retain/t", 1, true, []byte{}))
	if m := live.next(t); len(m.Payload) != 0 {
		t.Fatalf("live subscriber got %q, want the empty message", m.Payload)
	}
	if got = subscribe(); len(got) != 0 {
		t.Fatalf("after clear: got %v, want nothing", payloadsOf(got))
	}
}

// MQTT 5.0 section 4.8.2: retained messages are not sent to a shared
// subscription when it is made.
func TestRetainedNotOnSharedSubscription(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	pub := connect5(t, b.addr, "ret-shared-pub", nil)
	pub.pub(t, &pahov5.Publish{Topic: "retshared/t", QoS: 1, Retain: true, Payload: []byte("kept")})

	c := connect5(t, b.addr, "ret-shared", nil)
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "$share/g/retshared/t", QoS: 1})
	if got := c.flush(t, "retshared/t"); len(got) != 0 {
		t.Fatalf("shared subscription got retained %v", payloadsOf(got))
	}
	// The same filter without $share gets it.
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "retshared/t", QoS: 1})
	if m := c.next(t); string(m.Payload) != "kept" || !m.Retain {
		t.Fatalf("got %q retain %v", m.Payload, m.Retain)
	}
}

func payloadsOf(ms []*pahov5.Publish) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Topic+"="+string(m.Payload))
	}
	return s
}
