package broker

// Integration test of a subscriber that does not read.

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// A subscriber that never reads fills its socket buffers and its bounded queue;
// messages for it are dropped and counted, and a fast subscriber of the same
// messages still gets every one, in order.
func TestSlowSubscriberDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxQueued = 20 })
	slow := dialRawSmallBuffer(t, b.addr)
	if ack := slow.connect(&mqtt.Connect{Version: mqtt.Version311, ClientID: "slow", CleanStart: true}, nil); ack.ReasonCode != mqtt.Success {
		t.Fatal(ack.ReasonCode)
	}
	// QoS 0: no inflight window holds messages back, so the queue only fills
	// when the broker's writes to the socket block.
	slow.subscribe(nil, mqtt.Subscription{Filter: "slow/t", QoS: 0})
	// From here on, slow reads nothing.

	h, got := collect()
	fast := paho3(t, b.addr, "fast", nil)
	wait(t, fast.Subscribe("slow/t", 1, h))
	pub := paho3(t, b.addr, "slow-pub", nil)

	const n = 200
	body := bytes.Repeat([]byte("x"), 64<<10) // 12.8 MB in all, more than socket buffers hold
	// The publisher goes at the pace of the fast subscriber, so that only the
	// slow one falls behind.
	for i := range n {
		want := fmt.Sprintf("%04d", i)
		wait(t, pub.Publish("slow/t", 1, false, append([]byte(want), body...)))
		if m := next3(t, got); string(m.Payload()[:4]) != want {
			t.Fatalf("fast subscriber got message %s, want %s", m.Payload()[:4], want)
		}
	}
	if d := b.Stats().MessagesDropped.Load(); d == 0 {
		t.Error("no message counted as dropped for the slow subscriber")
	} else {
		t.Logf("dropped %d", d)
	}
}

// A publisher faster than a subscriber waits for it rather than overflowing the
// subscriber's queue: every message arrives, in order, and none is dropped.
func TestPublisherPacedBySlowSubscriber(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxQueued = 20; o.MaxInflight = 5 })
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "paced-sub", nil)
	sub.subscribe(nil, mqtt.Subscription{Filter: "pace/t", QoS: 1})
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "paced-pub", nil)

	// The whole burst is in the publisher's socket before the subscriber reads:
	// without pacing the broker would read it at once and drop all but 25. The
	// publisher leaves its PUBACKs unread.
	const n = 500
	var burst []byte
	for i := range n {
		p := &mqtt.Publish{Topic: "pace/t", QoS: 1, PacketID: uint16(i + 1), Payload: []byte(fmt.Sprintf("%04d", i))}
		burst, _ = p.Encode(burst, mqtt.Version311)
	}
	pub.write(burst)
	time.Sleep(100 * time.Millisecond) // pacing, not synchronisation: the broker's queue fills meanwhile

	for i := range n {
		m := sub.expectPublish()
		if want := fmt.Sprintf("%04d", i); string(m.Payload) != want {
			t.Fatalf("got message %s, want %s", m.Payload, want)
		}
		sub.send(&mqtt.Puback{PacketID: m.PacketID})
	}
	st := b.Stats()
	if d := st.DroppedQueueFull.Load(); d != 0 {
		t.Errorf("%d messages dropped", d)
	}
	if st.PublishersPaced.Load() == 0 {
		t.Error("the publisher was never held back")
	}
	if s := st.PaceStalls.Load(); s != 0 {
		t.Errorf("%d waits timed out", s)
	}
}

// A subscriber that takes nothing holds a publisher back once, for the pace
// limit; its queue then drops by its policy and the publisher goes on.
func TestStuckSubscriberStallsPublisherOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxQueued = 20; o.MaxInflight = 5 })
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "stuck-sub", nil)
	sub.subscribe(nil, mqtt.Subscription{Filter: "stuck/t", QoS: 1})
	// From here on, sub reads nothing and acknowledges nothing.
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "stuck-pub", nil)
	start := time.Now()
	for i := range 100 {
		if code := pub.publish(&mqtt.Publish{Topic: "stuck/t", QoS: 1, Payload: []byte(fmt.Sprint(i))}); code != mqtt.Success {
			t.Fatalf("PUBACK %v", code)
		}
	}
	if d := time.Since(start); d > paceLimit*3 {
		t.Errorf("100 messages took %v with a stuck subscriber", d)
	}
	st := b.Stats()
	if s := st.PaceStalls.Load(); s != 1 {
		t.Errorf("%d stalls, want 1", s)
	}
	if d := st.DroppedQueueFull.Load(); d != 100-20-5 {
		t.Errorf("%d dropped, want %d", d, 100-20-5)
	}
}
