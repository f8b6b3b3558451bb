package broker

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// An idle TCP connection holds no goroutine: its reader parks in the poller and
// its writer runs only while something is queued. Parked connections still
// answer, take messages, and end cleanly when the broker closes.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park only on Linux")
	}
	b, addr, stop := runBroker(t, nil)
	defer stop()
	const n = 100
	before := runtime.NumGoroutine()
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i], _ = rawConnect(t, addr, mqtt.Version5, "idle-"+strconv.Itoa(i), func(cp *mqtt.Connect) { cp.KeepAlive = 60 })
	}
	sub := clients[0]
	if codes := sub.subscribe(nil, mqtt.Subscription{Filter: "idle/#", QoS: 1}); codes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK %v", codes)
	}
	eventually(t, "idle connections to give up their goroutines", func() bool {
		return runtime.NumGoroutine() < before+n/10
	})

	// Woken by a packet: every one answers PINGREQ.
	for _, c := range clients {
		c.send(&mqtt.Pingreq{})
	}
	for i, c := range clients {
		if p := c.read(); p.Type() != mqtt.PINGRESP {
			t.Fatalf("client %d: got %v, want PINGRESP", i, p.Type())
		}
	}
	// Woken by a message: the parked subscriber's writer starts for it.
	eventually(t, "the connections to park again", func() bool {
		return runtime.NumGoroutine() < before+n/10
	})
	pub := clients[n-1]
	if code := pub.publish(&mqtt.Publish{Topic: "idle/x", QoS: 1, Payload: []byte("wake")}); code != mqtt.Success {
		t.Fatalf("PUBACK %v", code)
	}
	if m := sub.expectPublish(); string(m.Payload) != "wake" {
		t.Fatalf("got %q", m.Payload)
	}
	sub.send(&mqtt.Puback{PacketID: 1})

	// A parked connection whose client goes away ends.
	eventually(t, "the connections to park again", func() bool {
		return runtime.NumGoroutine() < before+n/10
	})
	clients[1].close()
	eventually(t, "the closed connection to end", func() bool {
		return b.Stats().ClientsConnected.Load() == n-1
	})

	// Closing the broker wakes the parked readers: every client gets DISCONNECT
	// 0x8B and Close returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Close(ctx) }()
	for _, c := range clients[2 : n-1] {
		c.expectDisconnect(mqtt.ServerShuttingDown, 5*time.Second)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
