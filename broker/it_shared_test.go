package broker

// Integration tests of shared subscriptions (MQTT 5.0 section 4.8.2): each
// message goes to one member, chosen by the configured strategy.

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// split takes n messages from the two members together and returns the payloads
// each got.
func split(t *testing.T, n int, a, b *client5) (ga, gb []string) {
	t.Helper()
	deadline := time.After(itTimeout)
	for len(ga)+len(gb) < n {
		select {
		case m := <-a.msgs:
			ga = append(ga, string(m.Payload))
		case m := <-b.msgs:
			gb = append(gb, string(m.Payload))
		case <-deadline:
			t.Fatalf("received %d of %d messages: %v %v", len(ga)+len(gb), n, ga, gb)
		}
	}
	return ga, gb
}

// checkOnce fails unless got holds the payloads 0 to n-1, each once.
func checkOnce(t *testing.T, n int, got ...[]string) {
	t.Helper()
	all := slices.Sorted(slices.Values(slices.Concat(got...)))
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("messages received %v, want each of 0 to %d once", all, n-1)
	}
}

// sharedGroup connects two 5.0 members of $share/g/<topic> and a publisher.
func sharedGroup(t *testing.T, b *testBroker, topic string) (m1, m2, pub *client5) {
	t.Helper()
	m1 = connect5(t, b.addr, topic+"-m1", nil)
	m1.sub(t, nil, pahov5.SubscribeOptions{Topic: "$share/g/" + topic, QoS: 1})
	m2 = connect5(t, b.addr, topic+"-m2", nil)
	m2.sub(t, nil, pahov5.SubscribeOptions{Topic: "$share/g/" + topic, QoS: 1})
	pub = connect5(t, b.addr, topic+"-pub", nil)
	return m1, m2, pub
}

func publishN(t *testing.T, pub *client5, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		pub.pub(t, &pahov5.Publish{Topic: topic, QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
}

// Round robin: members in turn, so two members get half of the messages each.
// One member is a 3.1.1 client.
func TestSharedRoundRobin(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.SharedStrategy = RoundRobin })
	m1 := connect5(t, b.addr, "rr-m1", nil)
	m1.sub(t, nil, pahov5.SubscribeOptions{Topic: "$share/g/shared/rr", QoS: 1})
	h, got3 := collect()
	m2 := paho3(t, b.addr, "rr-m2", nil)
	wait(t, m2.Subscribe("$share/g/shared/rr", 1, h))
	pub := connect5(t, b.addr, "rr-pub", nil)
	publishN(t, pub, "shared/rr", 0, 10)

	var g1, g2 []string
	deadline := time.After(itTimeout)
	for len(g1)+len(g2) < 10 {
		select {
		case m := <-m1.msgs:
			g1 = append(g1, string(m.Payload))
		case m := <-got3:
			g2 = append(g2, string(m.Payload()))
		case <-deadline:
			t.Fatalf("received %v and %v", g1, g2)
		}
	}
	checkOnce(t, 10, g1, g2)
	if len(g1) != 5 || len(g2) != 5 {
		t.Errorf("members got %v and %v, want 5 each", g1, g2)
	}
}

// Random: every message goes to one member; with 40 messages both get some.
func TestSharedRandom(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.SharedStrategy = Random })
	m1, m2, pub := sharedGroup(t, b, "shared/random")
	publishN(t, pub, "shared/random", 0, 40)
	g1, g2 := split(t, 40, m1, m2)
	checkOnce(t, 40, g1, g2)
	if len(g1) == 0 || len(g2) == 0 { // 2^-39 by chance
		t.Errorf("members got %d and %d messages: not random", len(g1), len(g2))
	}
}

// Sticky: every message goes to the same member while it stays connected, then
// to another.
func TestSharedSticky(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.SharedStrategy = Sticky })
	m1, m2, pub := sharedGroup(t, b, "shared/sticky")
	for _, c := range []*client5{m1, m2} {
		c.sub(t, nil, pahov5.SubscribeOptions{Topic: "shared/sticky-marker/" + c.ClientID(), QoS: 1})
	}
	publishN(t, pub, "shared/sticky", 0, 10)
	g1, g2 := split(t, 10, m1, m2)
	checkOnce(t, 10, g1, g2)
	chosen, other := m1, m2
	if len(g2) > 0 {
		chosen, other = m2, m1
	}
	if len(g1) != 10 && len(g2) != 10 {
		t.Fatalf("members got %v and %v, want all to one", g1, g2)
	}
	// Nothing waits for the other member either.
	if before := other.flush(t, "shared/sticky-marker/"+other.ClientID()); len(before) != 0 {
		t.Fatalf("the other member got %d more messages", len(before))
	}

	if err := chosen.Disconnect(&pahov5.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "member offline", func() bool { return b.Stats().ClientsConnected.Load() == 2 })
	publishN(t, pub, "shared/sticky", 10, 15)
	for i := 10; i < 15; i++ {
		if m := other.next(t); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("remaining member got %q, want %d", m.Payload, i)
		}
	}
}

// A member that leaves with QoS 1 messages it did not acknowledge: the broker
// sends them to another member (MQTT 5.0 section 4.8.2: "the Server SHOULD send
// the Application Message to another Client that is subscribed to the same
// Shared Subscription").
func TestSharedMemberLeavesUnacknowledged(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.SharedStrategy = RoundRobin })
	leaver, _ := rawConnect(t, b.addr, mqtt.Version5, "leaver", nil)
	leaver.subscribe(nil, mqtt.Subscription{Filter: "$share/g/shared/leave", QoS: 1})
	stayer := connect5(t, b.addr, "stayer", nil)
	stayer.sub(t, nil, pahov5.SubscribeOptions{Topic: "$share/g/shared/leave", QoS: 1})
	pub := connect5(t, b.addr, "leave-pub", nil)
	publishN(t, pub, "shared/leave", 0, 6)

	var left []string
	for range 3 { // round robin: half of them, not acknowledged
		p := leaver.expectPublish()
		left = append(left, string(p.Payload))
	}
	var got []string
	for range 3 {
		got = append(got, string(stayer.next(t).Payload))
	}
	leaver.close()
	for range 3 {
		got = append(got, string(stayer.next(t).Payload))
	}
	checkOnce(t, 6, got)
	t.Logf("left unacknowledged %v, the other member got %v", left, got)
}
