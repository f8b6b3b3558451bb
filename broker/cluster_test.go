package broker

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// fakeCluster records what the broker tells a Cluster and answers Register with
// register, when set.
type fakeCluster struct {
	mu       sync.Mutex
	filters  map[string]int
	retained []string
	register func(id string, cleanStart bool) ([]session.Record, error)
	refuse   bool // PublishAllowed false
	movedIn  string
	seen     map[uint64]bool
	forwards []string // node:topic
	relays   []string // client:topic[group]:origin
	imported []string
}

func (f *fakeCluster) Forward(m *mqtt.Message, n uint64, nodes []string) (bool, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, node := range nodes {
		f.forwards = append(f.forwards, node+":"+m.Topic)
	}
	return false, nodes
}

func (f *fakeCluster) Relay(client string, m *mqtt.Message, _ mqtt.QoS, _ bool, _ []uint32, group string, ref MsgRef) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.relays = append(f.relays, client+":"+m.Topic+group+":"+ref.Node)
	return false
}

// FirstDelivery takes every message numbered n for new once, whatever its node.
func (f *fakeCluster) FirstDelivery(client string, ref MsgRef) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[uint64]bool{}
	}
	if f.seen[ref.N] {
		return false
	}
	f.seen[ref.N] = true
	return true
}

func (f *fakeCluster) Relaying(string) bool { return false }

func (f *fakeCluster) Sync() {}

func (f *fakeCluster) MovedIn(client string) bool { return client == f.movedIn }

func (f *fakeCluster) Imported(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imported = append(f.imported, client)
}

func (f *fakeCluster) lists() (forwards, relays, imported []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.forwards), slices.Clone(f.relays), slices.Clone(f.imported)
}

func (f *fakeCluster) FilterAdded(filter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.filters == nil {
		f.filters = map[string]int{}
	}
	f.filters[filter]++
}

func (f *fakeCluster) FilterRemoved(filter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.filters[filter]--; f.filters[filter] == 0 {
		delete(f.filters, filter)
	}
}

func (f *fakeCluster) Register(id string, cleanStart bool) ([]session.Record, error) {
	if f.register != nil {
		return f.register(id, cleanStart)
	}
	return nil, nil
}

func (f *fakeCluster) PublishAllowed() bool { return !f.refuse }

func (f *fakeCluster) Retained(m *mqtt.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retained = append(f.retained, m.Topic)
}

func (f *fakeCluster) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.filters {
		out[k] = v
	}
	return out
}

// nodeRecorder is another node as a receiver: it records what it is given.
type nodeRecorder struct {
	mu     sync.Mutex
	got    []string // topic, or topic@group
	stored bool
}

func (r *nodeRecorder) Deliver(m *mqtt.Message, _ mqtt.QoS, _ bool, _ []uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m.Topic)
	return r.stored
}

func (r *nodeRecorder) DeliverGroup(m *mqtt.Message, _ mqtt.QoS, _ bool, group string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m.Topic+"@"+group)
	return r.stored
}

func (r *nodeRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestClusterHearsLocalFilters: the cluster is told of every local subscription
// made and removed, those loaded before SetCluster included, and never of the
// subscriptions of other nodes.
func TestClusterHearsLocalFilters(t *testing.T) {
	b := startBroker(t, nil)
	if _, err := b.Subscribe("bridge-1", "early/#", SubscriptionOptions{}); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{}
	b.SetCluster(fc)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "c1", nil)
	c.subscribe(nil, mqtt.Subscription{Filter: "a/+", QoS: 1}, mqtt.Subscription{Filter: "$share/g/x", QoS: 1})
	c2, _ := rawConnect(t, b.addr, mqtt.Version5, "c2", nil)
	c2.subscribe(nil, mqtt.Subscription{Filter: "a/+", QoS: 0})
	if _, err := b.Subscribe(NodePrefix+"n2", "z/#", SubscriptionOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"early/#": 1, "a/+": 2, "$share/g/x": 1}
	if got := fc.snapshot(); !mapsEqual(got, want) {
		t.Fatalf("filters %v, want %v", got, want)
	}
	c.close()
	eventually(t, "the ended session's filters to be removed", func() bool {
		return mapsEqual(fc.snapshot(), map[string]int{"early/#": 1, "a/+": 1})
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRouteFromNodeAndToNodes: a message published here goes to the other nodes
// that subscribed, to one of them for a shared group only when no local member
// is online; one forwarded by a node goes to local subscribers only, and to a
// shared group's local member only when the node chose this one for it.
func TestRouteFromNodeAndToNodes(t *testing.T) {
	b := startBroker(t, nil)
	fc := &fakeCluster{}
	b.SetCluster(fc)
	n2 := &nodeRecorder{}
	b.AttachReceiver(NodePrefix+"n2", n2)
	for _, f := range []string{"t/#", "$share/g/t/#", "$share/only/t/#"} {
		if _, err := b.Subscribe(NodePrefix+"n2", f, SubscriptionOptions{QoS: 2, RetainAsPublished: true}); err != nil {
			t.Fatal(err)
		}
	}
	plain, _ := rawConnect(t, b.addr, mqtt.Version5, "plain", nil)
	plain.subscribe(nil, mqtt.Subscription{Filter: "t/#", QoS: 1})
	member, _ := rawConnect(t, b.addr, mqtt.Version5, "member", nil)
	member.subscribe(nil, mqtt.Subscription{Filter: "$share/g/t/#", QoS: 1})

	pub, _ := rawConnect(t, b.addr, mqtt.Version5, "pub", nil)
	if code := pub.publish(&mqtt.Publish{Topic: "t/1", QoS: 1, Payload: []byte("x")}); code != mqtt.Success {
		t.Fatalf("PUBACK %v", code)
	}
	if p := plain.expectPublish(); p.Topic != "t/1" {
		t.Fatalf("plain got %q", p.Topic)
	}
	if p := member.expectPublish(); p.Topic != "t/1" {
		t.Fatalf("member got %q", p.Topic)
	}
	eventually(t, "the node to get t/1 and the group only it is in", func() bool {
		fw, _, _ := fc.lists()
		return slices.Equal(fw, []string{"n2:t/1"}) && slices.Equal(n2.list(), []string{"t/1@$share/only/t/#"})
	})

	n, _ := b.RouteFromNode(&mqtt.Message{Topic: "t/2", QoS: 1, Payload: []byte("y")}, "", MsgRef{Node: "n2", N: 1})
	if n != 1 {
		t.Fatalf("routed from a node to %d subscribers, want 1", n)
	}
	if p := plain.expectPublish(); p.Topic != "t/2" {
		t.Fatalf("plain got %q", p.Topic)
	}
	member.expectNothing(100 * time.Millisecond)
	if n, _ := b.RouteFromNode(&mqtt.Message{Topic: "t/3", QoS: 1, Payload: []byte("z")}, "$share/g/t/#", MsgRef{Node: "n2", N: 1}); n != 1 {
		t.Fatalf("group message from a node went to %d subscribers, want 1", n)
	}
	if p := member.expectPublish(); p.Topic != "t/3" {
		t.Fatalf("member got %q", p.Topic)
	}
	plain.expectNothing(100 * time.Millisecond)
	if n, _ := b.RouteFromNode(&mqtt.Message{Topic: "t/4", QoS: 1}, "$share/only/t/#", MsgRef{Node: "n2", N: 1}); n != 0 {
		t.Fatalf("group with no local member: delivered to %d", n)
	}
	if fw, _, _ := fc.lists(); len(fw) != 1 || len(n2.list()) != 1 {
		t.Fatalf("messages from a node went back to a node: %v %v", fw, n2.list())
	}
}

// TestSessionMovesBetweenNodes: a client that reconnects to another broker with
// Clean Start 0 finds there its session from the first one, messages queued
// while it was offline included, in order, and the first one no longer has it.
func TestSessionMovesBetweenNodes(t *testing.T) {
	b1 := startBroker(t, nil)
	b2 := startBroker(t, nil)
	b1.SetCluster(&fakeCluster{})
	b2.SetCluster(&fakeCluster{register: func(id string, cleanStart bool) ([]session.Record, error) {
		recs, _ := b1.ExportSession(id, !cleanStart, false)
		return recs, nil
	}})
	persistent := func(cp *mqtt.Connect) {
		cp.CleanStart = false
		cp.Properties.SessionExpiry = 3600
		cp.Properties.Set(mqtt.PropSessionExpiry)
	}
	c, _ := rawConnect(t, b1.addr, mqtt.Version5, "mover", persistent)
	c.subscribe(nil, mqtt.Subscription{Filter: "m/#", QoS: 2})
	c.send(&mqtt.Disconnect{})
	c.expectClosed(time.Second)
	pub, _ := rawConnect(t, b1.addr, mqtt.Version5, "pub", nil)
	for i := range 5 {
		pub.publish(&mqtt.Publish{Topic: "m/x", QoS: mqtt.QoS(1 + i%2), Payload: []byte{byte('0' + i)}})
	}
	c2, ack := rawConnect(t, b2.addr, mqtt.Version5, "mover", persistent)
	if !ack.SessionPresent {
		t.Fatal("session not present on the second node")
	}
	for i := range 5 {
		p := c2.expectPublish()
		if string(p.Payload) != string(rune('0'+i)) {
			t.Fatalf("message %d: payload %q", i, p.Payload)
		}
		if p.QoS == mqtt.AtLeastOnce {
			c2.send(&mqtt.Puback{PacketID: p.PacketID})
		} else {
			c2.send(&mqtt.Pubrec{PacketID: p.PacketID})
			c2.readType(mqtt.PUBREL)
			c2.send(&mqtt.Pubcomp{PacketID: p.PacketID})
		}
	}
	if s := sessions(b1); s != 1 { // pub's only
		t.Fatalf("first node holds %d sessions, want 1", s)
	}
	// Its subscription came along: what is published on the second node reaches it.
	pub2, _ := rawConnect(t, b2.addr, mqtt.Version5, "pub2", nil)
	pub2.publish(&mqtt.Publish{Topic: "m/y", QoS: 1, Payload: []byte("after")})
	if p := c2.expectPublish(); string(p.Payload) != "after" {
		t.Fatalf("got %q", p.Payload)
	}
}

// TestPublishRefusedDuringNetsplit: when the cluster refuses publishes, a 5.0
// client's QoS 1 PUBLISH is answered with 0x83 and a 3.1.1 client's connection
// is closed unacknowledged, so that it sends the message again later.
func TestPublishRefusedDuringNetsplit(t *testing.T) {
	b := startBroker(t, nil)
	b.SetCluster(&fakeCluster{refuse: true})
	c5, _ := rawConnect(t, b.addr, mqtt.Version5, "c5", nil)
	if code := c5.publish(&mqtt.Publish{Topic: "t", QoS: 1, Payload: []byte("x")}); code != mqtt.ImplementationSpecificError {
		t.Fatalf("PUBACK %v, want 0x83", code)
	}
	c3, _ := rawConnect(t, b.addr, mqtt.Version311, "c3", nil)
	c3.send(&mqtt.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	for _, p := range c3.expectClosed(2 * time.Second) {
		if p.Type() == mqtt.PUBACK {
			t.Fatal("a 3.1.1 PUBLISH refused in a netsplit was acknowledged")
		}
	}
}

// TestMovedSessionRelays: a session that moves to another node leaves its
// subscriptions behind as a relay, so that the node keeps its routes: what they
// match, from a local publisher or from another node, goes to the cluster's
// Relay, until EndRelay. The node the session moved to delivers relayed
// messages to it, and each message once, whether it comes relayed or directly.
func TestMovedSessionRelays(t *testing.T) {
	b1 := startBroker(t, nil)
	b2 := startBroker(t, nil)
	fc1 := &fakeCluster{}
	b1.SetCluster(fc1)
	fc2 := &fakeCluster{movedIn: "mover", register: func(id string, cleanStart bool) ([]session.Record, error) {
		recs, _ := b1.ExportSession(id, !cleanStart, true)
		return recs, nil
	}}
	b2.SetCluster(fc2)
	persistent := func(cp *mqtt.Connect) {
		cp.CleanStart = false
		cp.Properties.SessionExpiry = 3600
		cp.Properties.Set(mqtt.PropSessionExpiry)
	}
	c, _ := rawConnect(t, b1.addr, mqtt.Version5, "mover", persistent)
	c.subscribe(nil, mqtt.Subscription{Filter: "m/#", QoS: 1}, mqtt.Subscription{Filter: "$share/g/m/#", QoS: 1})
	c.send(&mqtt.Disconnect{})
	c.expectClosed(time.Second)
	c2, ack := rawConnect(t, b2.addr, mqtt.Version5, "mover", persistent)
	if !ack.SessionPresent {
		t.Fatal("session not present on the second node")
	}
	if _, _, imported := fc2.lists(); !slices.Equal(imported, []string{"mover"}) {
		t.Fatalf("imported %v", imported)
	}
	if f := fc1.snapshot(); f["m/#"] != 1 || f["$share/g/m/#"] != 1 {
		t.Fatalf("first node's filters while relaying: %v", f)
	}

	pub, _ := rawConnect(t, b1.addr, mqtt.Version5, "pub", nil)
	pub.publish(&mqtt.Publish{Topic: "m/1", QoS: 1, Payload: []byte("1")})
	b1.RouteFromNode(&mqtt.Message{Topic: "m/2", QoS: 1}, "", MsgRef{Node: "n2", N: 7})
	b1.RouteFromNode(&mqtt.Message{Topic: "m/3", QoS: 1}, "$share/g/m/#", MsgRef{Node: "n2"})
	want := []string{"mover:m/1:", "mover:m/1$share/g/m/#:", "mover:m/2:n2", "mover:m/3$share/g/m/#:n2"}
	eventually(t, "the relays", func() bool {
		_, relays, _ := fc1.lists()
		return slices.Equal(relays, want)
	})
	b1.EndRelay("mover")
	if f := fc1.snapshot(); f["m/#"] != 0 || f["$share/g/m/#"] != 0 {
		t.Fatalf("first node's filters after the relay: %v", f)
	}
	pub.publish(&mqtt.Publish{Topic: "m/4", QoS: 1, Payload: []byte("4")})
	if _, relays, _ := fc1.lists(); len(relays) != len(want) {
		t.Fatalf("relayed after EndRelay: %v", relays[len(want):])
	}

	// The second node: a relayed message reaches the session, and the same
	// message coming directly is not delivered again.
	m := &mqtt.Message{Topic: "m/r", QoS: 1, Payload: []byte("relayed")}
	if ok, _ := b2.DeliverRelayed("mover", m, 1, false, nil, "", MsgRef{Node: "n2", N: 9}); !ok {
		t.Fatal("relayed message not delivered")
	}
	if p := c2.expectPublish(); string(p.Payload) != "relayed" {
		t.Fatalf("got %q", p.Payload)
	} else {
		c2.send(&mqtt.Puback{PacketID: p.PacketID})
	}
	if n, _ := b2.RouteFromNode(m, "", MsgRef{Node: "n2", N: 9}); n != 1 {
		t.Fatalf("direct copy of a relayed message: delivered to %d", n)
	}
	c2.expectNothing(100 * time.Millisecond)
	b2.RouteFromNode(&mqtt.Message{Topic: "m/d", QoS: 1, Payload: []byte("direct")}, "", MsgRef{Node: "n2", N: 10})
	if p := c2.expectPublish(); string(p.Payload) != "direct" {
		t.Fatalf("got %q", p.Payload)
	}
	if ok, _ := b2.DeliverRelayed("nobody", m, 1, false, nil, "", MsgRef{}); ok {
		t.Fatal("relayed message delivered to a session that is not here")
	}
}
