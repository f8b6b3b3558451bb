package bridge

import (
	"fmt"
	"slices"
	"testing"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/store"
)

// Out: a local message under local_prefix reaches a subscriber of the remote
// broker under remote_prefix, at the lower of its QoS and the rule's.
func TestOutPrefixAndQoS(t *testing.T) {
	local := startNode(t, "127.0.0.1:0", nil, nil)
	remote := startNode(t, "127.0.0.1:0", nil, nil)
	got := &sink{}
	sub := client(t, remote.addr, "remote-sub", got)
	wait(t, "subscribe", sub.Subscribe("edge1/#", 2, nil))

	var topics []config.BridgeTopic
	for q := range 3 {
		topics = append(topics, config.BridgeTopic{Pattern: fmt.Sprintf("q%d/#", q), Direction: config.DirectionOut,
			QoS: q, LocalPrefix: "site/", RemotePrefix: "edge1/"})
	}
	br := startBridge(t, bridgeConfig("out", []string{remote.addr}, topics...), local.Broker, store.NewMem())
	waitConnected(t, br)

	var want []received
	for rule := range 3 {
		for pub := range 3 {
			topic := fmt.Sprintf("q%d/p%d", rule, pub)
			local.publish("site/"+topic, "m", mqtt.QoS(pub), false)
			want = append(want, received{"edge1/" + topic, "m", mqtt.QoS(min(rule, pub)), false})
		}
	}
	local.publish("other/q1/x", "not bridged", 1, false)
	local.publish("q1/x", "no local prefix", 1, false)
	msgs := got.wait(t, len(want))
	if !slices.Equal(msgs, want) {
		t.Errorf("remote subscriber got\n%v\nwant\n%v", msgs, want)
	}
	if s := settled(br, func(s Status) bool { return s.ForwardedOut == int64(len(want)) && s.Queued == 0 }); s.ForwardedOut != int64(len(want)) || s.Queued != 0 || s.Address != "tcp://"+remote.addr {
		t.Errorf("Status() = %+v, want %d forwarded out, none queued, address tcp://%s", s, len(want), remote.addr)
	}
}

// denyTopic is an Authorizer that refuses publishing to one topic.
type denyTopic struct {
	topic    string
	clientID string // the client id CanPublish was last asked about
	username string
}

func (d *denyTopic) CanPublish(clientID, username, topic string) bool {
	d.clientID, d.username = clientID, username
	return topic != d.topic
}
func (d *denyTopic) CanSubscribe(string, string, string) bool { return true }
func (d *denyTopic) CanReceive(string, string, string) bool   { return true }

// In: a remote message under remote_prefix is published locally under
// local_prefix, retain kept as the rule says, ACLs applied.
func TestInPrefixRetainACL(t *testing.T) {
	acl := &denyTopic{topic: "cloud/cmd/forbidden"}
	local := startNode(t, "127.0.0.1:0", func(o *broker.Options) { o.Authorizer = acl }, nil)
	remote := startNode(t, "127.0.0.1:0", nil, nil)
	got := attachSink(t, local.Broker, "local-sub", "cloud/#", 2)
	// A retained message keeps its flag only when it is sent as retained: at
	// subscription, since the remote clears the flag of live messages
	// [MQTT-3.3.1-9].
	remote.publish("edge1/cmd/config", "kept", 1, true)
	remote.publish("edge1/noretain/x", "flag dropped", 2, true)

	br := startBridge(t, bridgeConfig("in", []string{remote.addr},
		config.BridgeTopic{Pattern: "cmd/+", Direction: config.DirectionIn, QoS: 1, LocalPrefix: "cloud/", RemotePrefix: "edge1/", Retain: true},
		config.BridgeTopic{Pattern: "noretain/+", Direction: config.DirectionIn, QoS: 2, LocalPrefix: "cloud/", RemotePrefix: "edge1/"},
	), local.Broker, store.NewMem())
	waitConnected(t, br)
	got.wait(t, 2)

	remote.publish("edge1/cmd/forbidden", "x", 1, false)
	remote.publish("edge1/cmd/reboot", "now", 2, false)
	remote.publish("edge1/cmd/a/b", "too deep", 1, false)
	remote.publish("edge1/noretain/y", "live", 2, false)
	want := []received{
		{"cloud/cmd/config", "kept", 1, true},
		{"cloud/noretain/x", "flag dropped", 2, false},
		{"cloud/cmd/reboot", "now", 1, false},
		{"cloud/noretain/y", "live", 2, false},
	}
	if msgs := got.wait(t, len(want)); !slices.Equal(msgs, want) {
		t.Errorf("local subscriber got\n%v\nwant\n%v", msgs, want)
	}
	if s := settled(br, func(s Status) bool { return s.ForwardedIn == 4 && s.Denied == 1 }); s.ForwardedIn != 4 || s.Denied != 1 {
		t.Errorf("Status() = %+v, want 4 forwarded in and 1 denied", s)
	}
	if acl.clientID != "bridge:in" || acl.username != "bridge:in" {
		t.Errorf("CanPublish asked for client %q user %q, want bridge:in for both", acl.clientID, acl.username)
	}
	if n := local.Retained().Len(); n != 1 {
		t.Errorf("local broker holds %d retained messages, want 1 (cloud/cmd/config)", n)
	}
}

// Both ways on one bridge: each message arrives once on the other side and
// does not come back.
func TestBothWaysNoLoop(t *testing.T) {
	a := startNode(t, "127.0.0.1:0", nil, nil)
	b := startNode(t, "127.0.0.1:0", nil, nil)
	onA := attachSink(t, a.Broker, "sub-a", "shared/#", 1)
	onB := attachSink(t, b.Broker, "sub-b", "shared/#", 1)
	br := startBridge(t, bridgeConfig("both", []string{b.addr},
		config.BridgeTopic{Pattern: "shared/#", Direction: config.DirectionBoth, QoS: 1}), a.Broker, store.NewMem())
	waitConnected(t, br)

	a.publish("shared/from-a", "1", 1, false)
	eventually(t, "shared/from-a on B", func() bool { return onB.count("shared/from-a") == 1 })
	// An echo of from-a would come back from B ahead of from-b.
	b.publish("shared/from-b", "2", 1, false)
	eventually(t, "shared/from-b on A", func() bool { return onA.count("shared/from-b") == 1 })
	// A loop of from-b would reach B ahead of from-a-again.
	a.publish("shared/from-a-again", "3", 1, false)
	eventually(t, "shared/from-a-again on B", func() bool { return onB.count("shared/from-a-again") == 1 })

	for _, c := range []struct {
		s     *sink
		where string
		topic string
	}{{onA, "A", "shared/from-a"}, {onA, "A", "shared/from-b"}, {onB, "B", "shared/from-a"}, {onB, "B", "shared/from-b"}} {
		if n := c.s.count(c.topic); n != 1 {
			t.Errorf("%s got %s %d times, want once; all: %v", c.where, c.topic, n, c.s.all())
		}
	}
	if s := settled(br, func(s Status) bool { return s.ForwardedOut == 2 && s.ForwardedIn == 1 }); s.ForwardedOut != 2 || s.ForwardedIn != 1 {
		t.Errorf("Status() = %+v, want 2 forwarded out and 1 in", s)
	}
}

// payloads are the decimal numbers from to from+n-1.
func payloads(from, n int) []string {
	var p []string
	for i := from; i < from+n; i++ {
		p = append(p, fmt.Sprint(i))
	}
	return p
}

func payloadsOf(msgs []received) []string {
	var p []string
	for _, m := range msgs {
		p = append(p, m.Payload)
	}
	return p
}

// The remote broker goes away and comes back on the same address while the
// local side publishes QoS 1: every message arrives, in order.
func TestRemoteOutageZeroLoss(t *testing.T) {
	local := startNode(t, "127.0.0.1:0", nil, nil)
	var got *sink
	subscribe := func(b *broker.Broker) { got = attachSink(t, b, "remote-sub", "edge/#", 1) }
	remote := startNode(t, "127.0.0.1:0", nil, subscribe)
	br := startBridge(t, bridgeConfig("outage", []string{remote.addr},
		config.BridgeTopic{Pattern: "data/#", Direction: config.DirectionOut, QoS: 1, RemotePrefix: "edge/"}), local.Broker, store.NewMem())
	waitConnected(t, br)

	for i := range 20 {
		local.publish("data/x", fmt.Sprint(i), 1, false)
	}
	if p := payloadsOf(got.wait(t, 20)); !slices.Equal(p, payloads(0, 20)) {
		t.Fatalf("before the outage the remote got %v", p)
	}

	remote.stop(t)
	eventually(t, "bridge disconnected", func() bool { return !br.Status().Connected })
	for i := range 200 {
		local.publish("data/x", fmt.Sprint(i), 1, false)
	}
	if s := br.Status(); s.Queued != 200 {
		t.Fatalf("Status() = %+v during the outage, want 200 queued", s)
	}

	startNode(t, remote.addr, nil, subscribe)
	msgs := got.wait(t, 200)
	if p := payloadsOf(msgs); !slices.Equal(p, payloads(0, 200)) {
		t.Errorf("after the outage the remote got %d messages %v, want 0 to 199 in order", len(p), p)
	}
	eventually(t, "queue drained", func() bool { return br.Status().Queued == 0 })
	if s := settled(br, func(s Status) bool { return s.ForwardedOut == 220 }); s.Reconnects < 1 || s.ForwardedOut != 220 || s.Dropped != 0 {
		t.Errorf("Status() = %+v, want a reconnect, 220 forwarded, none dropped", s)
	}
}

// Messages queued while the remote is down survive a restart of the bridge
// and its store.
func TestLocalRestartKeepsQueue(t *testing.T) {
	dir := t.TempDir()
	remoteAddr := freeAddr(t)
	cfg := bridgeConfig("restart", []string{remoteAddr},
		config.BridgeTopic{Pattern: "data/#", Direction: config.DirectionOut, QoS: 1, RemotePrefix: "edge/"})

	db, err := store.Open(store.Options{Dir: dir, Fsync: store.Always})
	if err != nil {
		t.Fatal(err)
	}
	local := startNode(t, "127.0.0.1:0", nil, nil)
	br := startBridge(t, cfg, local.Broker, db)
	for i := range 50 {
		local.publish("data/x", fmt.Sprint(i), 1, false)
	}
	stopBridge(t, br)
	local.stop(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = store.Open(store.Options{Dir: dir, Fsync: store.Always})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	local = startNode(t, "127.0.0.1:0", nil, nil)
	br, err = New(cfg, local.Broker, db, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if s := br.Status(); s.Queued != 50 {
		t.Fatalf("after the restart Status() = %+v, want 50 queued", s)
	}
	var got *sink
	startNode(t, remoteAddr, nil, func(b *broker.Broker) { got = attachSink(t, b, "remote-sub", "edge/#", 1) })
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopBridge(t, br) })
	msgs := got.wait(t, 50)
	if p := payloadsOf(msgs); !slices.Equal(p, payloads(0, 50)) {
		t.Errorf("the remote got %v, want 0 to 49 in order", p)
	}
	eventually(t, "queue drained", func() bool { return br.Status().Queued == 0 })
	eventually(t, "stored queue emptied", func() bool {
		n := 0
		if err := db.Scan(KeyPrefix, func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// A full queue drops the oldest or the newest message, as configured, and
// counts it.
func TestQueueOverflow(t *testing.T) {
	for _, tt := range []struct {
		policy config.Overflow
		want   []string
	}{
		{config.OverflowDropOldest, payloads(3, 5)},
		{config.OverflowDropNewest, payloads(0, 5)},
	} {
		t.Run(string(tt.policy), func(t *testing.T) {
			local := startNode(t, "127.0.0.1:0", nil, nil)
			remoteAddr := freeAddr(t)
			cfg := bridgeConfig("overflow", []string{remoteAddr},
				config.BridgeTopic{Pattern: "data/#", Direction: config.DirectionOut, QoS: 1})
			cfg.QueueSize, cfg.QueueOverflow = 5, tt.policy
			br := startBridge(t, cfg, local.Broker, store.NewMem())
			for i := range 8 {
				local.publish("data/x", fmt.Sprint(i), 1, false)
			}
			if s := br.Status(); s.Queued != 5 || s.Dropped != 3 {
				t.Fatalf("Status() = %+v, want 5 queued and 3 dropped", s)
			}
			var got *sink
			startNode(t, remoteAddr, nil, func(b *broker.Broker) { got = attachSink(t, b, "remote-sub", "data/#", 1) })
			if p := payloadsOf(got.wait(t, 5)); !slices.Equal(p, tt.want) {
				t.Errorf("the remote got %v, want %v", p, tt.want)
			}
		})
	}
}

// The bridge tries its addresses in order and uses the first that answers.
func TestFailover(t *testing.T) {
	local := startNode(t, "127.0.0.1:0", nil, nil)
	remote := startNode(t, "127.0.0.1:0", nil, nil)
	got := attachSink(t, remote.Broker, "remote-sub", "#", 1)
	br := startBridge(t, bridgeConfig("failover", []string{freeAddr(t), remote.addr},
		config.BridgeTopic{Pattern: "#", Direction: config.DirectionOut, QoS: 1}), local.Broker, store.NewMem())
	waitConnected(t, br)
	if s := br.Status(); s.Address != "tcp://"+remote.addr {
		t.Errorf("Status().Address = %q, want tcp://%s", s.Address, remote.addr)
	}
	local.publish("a/b", "via the second address", 1, false)
	if msgs := got.wait(t, 1); msgs[0].Payload != "via the second address" {
		t.Errorf("the remote got %v", msgs)
	}
}

// Several bridges on one broker are independent: one whose remote is down
// does not hold up another.
func TestIndependentBridges(t *testing.T) {
	local := startNode(t, "127.0.0.1:0", nil, nil)
	up := startNode(t, "127.0.0.1:0", nil, nil)
	got := attachSink(t, up.Broker, "remote-sub", "#", 1)
	st := store.NewMem()
	down := startBridge(t, bridgeConfig("down", []string{freeAddr(t)},
		config.BridgeTopic{Pattern: "#", Direction: config.DirectionOut, QoS: 1}), local.Broker, st)
	live := startBridge(t, bridgeConfig("up", []string{up.addr},
		config.BridgeTopic{Pattern: "#", Direction: config.DirectionOut, QoS: 1}), local.Broker, st)
	waitConnected(t, live)
	for i := range 10 {
		local.publish("t", fmt.Sprint(i), 1, false)
	}
	if p := payloadsOf(got.wait(t, 10)); !slices.Equal(p, payloads(0, 10)) {
		t.Errorf("the live remote got %v", p)
	}
	if s := down.Status(); s.Queued != 10 || s.Connected {
		t.Errorf("the other bridge's Status() = %+v, want 10 queued, not connected", s)
	}
}
