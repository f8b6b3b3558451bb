package broker

// Integration test of a subscriber that does not read.

import (
	"bytes"
	"fmt"
	"testing"

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
