package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// dialClient connects a client with the given clean start flag and returns it
// with the CONNACK.
func dialClient(t *testing.T, addr string, id string, clean bool) (*mqttClient, *mqtt.Connack) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := &mqttClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: mqtt.Version311}
	c.r.Version = mqtt.Version311
	c.send(&mqtt.Connect{Version: mqtt.Version311, CleanStart: clean, ClientID: id, KeepAlive: 60})
	ack, ok := c.read().(*mqtt.Connack)
	if !ok || ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNACK: %#v", ack)
	}
	return c, ack
}

// TestCrashLosesNoAcknowledgedMessage runs the broker as a child process with
// fsync "always" under a steady QoS 1 load to an offline persistent session, kills
// it with SIGKILL at a random moment (or stops it with SIGTERM), starts it again on
// the same data directory, and checks that every message the publisher got a
// PUBACK for reaches the subscriber.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills broker processes")
	}
	// Three crashes at random moments, then a graceful stop (SIGTERM: drain,
	// flush, exit), which must lose nothing either.
	for round, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGKILL, syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(fmt.Sprintf("round=%d/signal=%s", round, sig), func(t *testing.T) {
			dir := t.TempDir()
			// No queue limit: every acknowledged message must be kept, none dropped by policy.
			cfg := withStore(testConfig+"max_queued_messages = 0\n", dir) + "fsync = \"always\"\n"
			cmd, addrs := startAvocet(t, cfg)

			sub, _ := dialClient(t, addrs["tcp"], "durable-sub", false)
			sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "load/#", QoS: 1}}})
			if _, ok := sub.read().(*mqtt.Suback); !ok {
				t.Fatal("no SUBACK")
			}
			sub.send(&mqtt.Disconnect{})
			sub.nc.Close()

			pub, _ := dialClient(t, addrs["tcp"], "load-pub", true)
			acked := map[int]bool{}
			acks := make(chan int, 1<<16)
			go func() { // read PUBACKs until the broker dies
				for {
					p, err := pub.r.ReadPacket()
					if err != nil {
						close(acks)
						return
					}
					if a, ok := p.(*mqtt.Puback); ok {
						acks <- int(a.PacketID)
					}
				}
			}()
			killAt := time.Now().Add(time.Duration(200+rand.IntN(600)) * time.Millisecond)
			sent := map[uint16]int{} // packet id -> message number, while unacknowledged
			next := 0
			killed := false
		load:
			for {
				if !killed && time.Now().After(killAt) {
					_ = cmd.Process.Signal(sig)
					killed = true
				}
				if !killed && len(sent) < 100 {
					id := uint16(next%60000 + 1)
					b, _ := (&mqtt.Publish{QoS: 1, PacketID: id, Topic: "load/x", Payload: []byte(strconv.Itoa(next))}).Encode(nil, mqtt.Version311)
					if _, err := pub.nc.Write(b); err == nil {
						sent[id] = next
						next++
					}
				}
				select {
				case id, ok := <-acks:
					if !ok {
						break load
					}
					acked[sent[uint16(id)]] = true
					delete(sent, uint16(id))
				default:
					if killed || len(sent) >= 100 {
						select {
						case id, ok := <-acks:
							if !ok {
								break load
							}
							acked[sent[uint16(id)]] = true
							delete(sent, uint16(id))
						case <-time.After(10 * time.Second):
							t.Fatal("no PUBACK for 10s")
						}
					}
				}
			}
			_ = cmd.Wait()
			if len(acked) == 0 {
				t.Fatal("the publisher got no PUBACK before the kill")
			}

			_, addrs = startAvocet(t, cfg)
			sub, ack := dialClient(t, addrs["tcp"], "durable-sub", false)
			if !ack.SessionPresent {
				t.Fatal("the persistent session did not survive the crash")
			}
			got := map[int]bool{}
			for missing := len(acked); missing > 0; {
				_ = sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				p, err := sub.r.ReadPacket()
				if err != nil {
					break
				}
				m, ok := p.(*mqtt.Publish)
				if !ok {
					continue
				}
				sub.send(&mqtt.Puback{PacketID: m.PacketID})
				n, _ := strconv.Atoi(string(m.Payload))
				if acked[n] && !got[n] {
					missing--
				}
				got[n] = true
			}
			lost := 0
			for n := range acked {
				if !got[n] {
					lost++
				}
			}
			t.Logf("killed after %d acknowledged messages (%d sent); %d delivered after restart; lost %d",
				len(acked), next, len(got), lost)
			if lost != 0 {
				t.Fatalf("%d acknowledged messages lost in the crash", lost)
			}
		})
	}
}
