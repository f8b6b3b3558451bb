package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var nodeSeq atomic.Int64

// fastConfig shortens memberlist's intervals so that tests converge in
// milliseconds.
func fastConfig(c *memberlist.Config) {
	c.GossipInterval = 10 * time.Millisecond
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
	c.SuspicionMult = 1
	c.SuspicionMaxTimeoutMult = 1
	c.TCPTimeout = 500 * time.Millisecond
	c.GossipToTheDeadTime = 500 * time.Millisecond
}

type nodeOpt func(*Options)

func startNode(t *testing.T, seeds []string, opts ...nodeOpt) *Node {
	t.Helper()
	o := Options{
		Name:          fmt.Sprintf("n%d", nodeSeq.Add(1)),
		GossipAddress: "127.0.0.1:0",
		LinkAddress:   "127.0.0.1:17947",
		Seeds:         seeds,
		DeadNodeGrace: 300 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
		Config:        fastConfig,
	}
	for _, f := range opts {
		f(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatalf("New %s: %v", o.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantNodes(n *Node, topic string, want ...string) func() error {
	return func() error {
		if got := n.NodesFor(topic); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			return fmt.Errorf("%s: NodesFor(%q) = %v, want %v", n.Name(), topic, got, want)
		}
		return nil
	}
}

func wantAlive(n *Node, count int) func() error {
	return func() error {
		alive := 0
		for _, m := range n.Members() {
			if m.State == StateAlive {
				alive++
			}
		}
		if alive != count {
			return fmt.Errorf("%s: %d alive members, want %d: %v", n.Name(), alive, count, n.Members())
		}
		return nil
	}
}

func threeNodes(t *testing.T, opts ...nodeOpt) (a, b, c *Node) {
	t.Helper()
	a = startNode(t, nil, opts...)
	b = startNode(t, []string{a.GossipAddr()}, opts...)
	c = startNode(t, []string{a.GossipAddr()}, opts...)
	for _, n := range []*Node{a, b, c} {
		checkFor(t, 5*time.Second, wantAlive(n, 3))
	}
	return a, b, c
}

func TestMembers(t *testing.T) {
	a, b, _ := threeNodes(t)
	ms := b.Members()
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == a.Name() })
	if i < 0 {
		t.Fatalf("%s not in %v", a.Name(), ms)
	}
	if m := ms[i]; m.GossipAddr != a.GossipAddr() || m.LinkAddr != "127.0.0.1:17947" || m.State != StateAlive {
		t.Fatalf("member %+v, want gossip %s, link 127.0.0.1:17947, alive", m, a.GossipAddr())
	}
	if StateSuspect.String() != "suspect" || StateLeft.String() != "left" {
		t.Fatal("MemberState.String")
	}
}

func TestFilterPropagation(t *testing.T) {
	a, b, c := threeNodes(t)
	if err := a.AddFilter("sensors/+/temp"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFilter("#"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFilter("$share/g1/shared/#"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{b, c} {
		checkFor(t, 5*time.Second, wantNodes(n, "sensors/1/temp", a.Name()))
		checkFor(t, 5*time.Second, wantNodes(n, "shared/x", a.Name()))
	}
	if got := a.NodesFor("sensors/1/temp"); len(got) != 0 {
		t.Fatalf("NodesFor on the origin = %v, want none", got)
	}
	// "#" does not match topics beginning with '$' [MQTT-4.7.2-1].
	if got := b.NodesFor("$SYS/broker/load"); len(got) != 0 {
		t.Fatalf("NodesFor($SYS/...) = %v, want none", got)
	}
	a.RemoveFilter("#")
	for _, n := range []*Node{b, c} {
		checkFor(t, 5*time.Second, wantNodes(n, "other/topic"))
		checkFor(t, 5*time.Second, wantNodes(n, "sensors/1/temp", a.Name()))
	}

	// Reference counting: the filter stays until its last RemoveFilter.
	if err := b.AddFilter("x/y"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddFilter("x/y"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(c, "x/y", b.Name()))
	checkFor(t, 5*time.Second, wantNodes(a, "x/y", b.Name()))
	b.RemoveFilter("x/y")
	checkFor(t, 5*time.Second, wantNodes(c, "x/y", b.Name()))
	if got := b.LocalFilters(); !slices.Equal(got, []string{"x/y"}) {
		t.Fatalf("LocalFilters = %v", got)
	}
	b.RemoveFilter("x/y")
	checkFor(t, 5*time.Second, wantNodes(c, "x/y"))
	checkFor(t, 5*time.Second, wantNodes(a, "x/y"))

	if err := a.AddFilter("bad/#/filter"); err == nil {
		t.Fatal("AddFilter accepted an invalid filter")
	}
}

func TestManyUpdatesConverge(t *testing.T) {
	a, b, c := threeNodes(t)
	for i := range 200 {
		if err := a.AddFilter(fmt.Sprintf("t/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		a.RemoveFilter(fmt.Sprintf("t/%d", i))
	}
	for _, n := range []*Node{b, c} {
		checkFor(t, 10*time.Second, func() error {
			if got := n.RemoteFilters(a.Name()); len(got) != 100 {
				return fmt.Errorf("%s holds %d filters of %s, want 100", n.Name(), len(got), a.Name())
			}
			return nil
		})
		checkFor(t, time.Second, wantNodes(n, "t/5"))
		checkFor(t, time.Second, wantNodes(n, "t/150", a.Name()))
	}
}

func TestLateJoinerGetsFullTable(t *testing.T) {
	a := startNode(t, nil)
	b := startNode(t, []string{a.GossipAddr()})
	checkFor(t, 5*time.Second, wantAlive(a, 2))
	if err := a.AddFilter("a/#"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddFilter("b/+"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(a, "b/1", b.Name()))
	checkFor(t, 5*time.Second, wantNodes(b, "a/1", a.Name()))

	// c joins through b only and must learn a's filters too.
	c := startNode(t, []string{b.GossipAddr()})
	checkFor(t, 5*time.Second, wantNodes(c, "a/x/y", a.Name()))
	checkFor(t, 5*time.Second, wantNodes(c, "b/1", b.Name()))
}

func TestLeaveRemovesRoutes(t *testing.T) {
	a, b, c := threeNodes(t)
	if err := c.AddFilter("c/#"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(a, "c/1", c.Name()))
	checkFor(t, 5*time.Second, wantNodes(b, "c/1", c.Name()))
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		checkFor(t, 5*time.Second, wantNodes(n, "c/1"))
		checkFor(t, 5*time.Second, func() error {
			for _, m := range n.Members() {
				if m.Name == c.Name() && m.State != StateLeft {
					return fmt.Errorf("%s sees %s as %s", n.Name(), c.Name(), m.State)
				}
			}
			return nil
		})
	}
}

func TestDeadNodeRemovedAfterGrace(t *testing.T) {
	grace := 500 * time.Millisecond
	withGrace := func(o *Options) { o.DeadNodeGrace = grace }
	a, b, c := threeNodes(t, withGrace)
	if err := c.AddFilter("c/#"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(a, "c/1", c.Name()))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var deadAt time.Time
	checkFor(t, 5*time.Second, func() error {
		for _, m := range a.Members() {
			if m.Name == c.Name() && m.State == StateDead {
				deadAt = time.Now()
				return nil
			}
		}
		return fmt.Errorf("%s not yet dead on %s", c.Name(), a.Name())
	})
	// The routes outlive the detection for the grace, then go.
	if got := a.NodesFor("c/1"); !slices.Equal(got, []string{c.Name()}) {
		t.Fatalf("routes of the dead node dropped before the grace: %v", got)
	}
	for _, n := range []*Node{a, b} {
		checkFor(t, 5*time.Second, wantNodes(n, "c/1"))
	}
	if since := time.Since(deadAt); since < grace/2 {
		t.Fatalf("routes dropped %v after death, grace is %v", since, grace)
	}
}

func key(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestSecretKey(t *testing.T) {
	withKey := func(k []byte) nodeOpt { return func(o *Options) { o.SecretKey = k } }
	a, b, _ := threeNodes(t, withKey(key(1)))
	if err := a.AddFilter("secret/#"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(b, "secret/x", a.Name()))

	o := Options{
		Name: "intruder", GossipAddress: "127.0.0.1:0", Seeds: []string{a.GossipAddr()},
		SecretKey: key(2), Logger: slog.New(slog.DiscardHandler),
		Config: func(c *memberlist.Config) { fastConfig(c); c.TCPTimeout = 300 * time.Millisecond },
	}
	if n, err := New(o); err == nil {
		n.Close()
		t.Fatal("a node with another key joined")
	}
	o.SecretKey = nil
	if n, err := New(o); err == nil {
		n.Close()
		t.Fatal("a node without a key joined")
	}
	for _, m := range a.Members() {
		if m.Name == "intruder" {
			t.Fatalf("intruder listed: %v", a.Members())
		}
	}
}

func TestMalformedGossipDropped(t *testing.T) {
	a, b, _ := threeNodes(t)
	if err := a.AddFilter("keep/#"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantNodes(b, "keep/1", a.Name()))
	before := b.RemoteFilters(a.Name())

	good := encodeUpdate(update{origin: a.Name(), incarnation: a.incarnation, seq: 1000, op: opAdd, filter: "x"})
	inputs := [][]byte{
		nil,
		{},
		{0xff},
		{wireVersion},
		{2, kindUpdate},
		{wireVersion, 99},
		{wireVersion, kindUpdate, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{wireVersion, kindState, 0xff, 0xff, 0xff, 0x7f},
		[]byte(strings.Repeat("\x01", 100)),
		good[:len(good)-1],
		append(slices.Clone(good), 0),
		encodeUpdate(update{origin: a.Name(), incarnation: a.incarnation, seq: 2, op: 7, filter: "x"}),
		encodeUpdate(update{origin: a.Name(), incarnation: a.incarnation, seq: 2, op: opAdd, filter: "a/#/b"}),
		encodeUpdate(update{origin: a.Name(), incarnation: a.incarnation, seq: 2, op: opAdd, filter: ""}),
		encodeUpdate(update{origin: "", incarnation: 1, seq: 1, op: opAdd, filter: "x"}),
	}
	d := (*delegate)(b)
	for _, in := range inputs {
		d.NotifyMsg(in)
		d.MergeRemoteState(in, false)
	}
	d.MergeRemoteState(encodeState([]nodeState{{name: a.Name(), incarnation: a.incarnation + 1, seq: 1, filters: []string{"bad/#/x"}}}), false)
	if got := b.RemoteFilters(a.Name()); !slices.Equal(got, before) {
		t.Fatalf("state changed by malformed input: %v, was %v", got, before)
	}
	checkFor(t, time.Second, wantNodes(b, "keep/1", a.Name()))
}

func TestOutOfOrderAndRestart(t *testing.T) {
	// Drive one node's delegate by hand: updates from a peer "p" that the node
	// believes alive.
	n := startNode(t, nil)
	d := (*delegate)(n)
	n.mu.Lock()
	n.peers["p"] = &peer{state: StateAlive}
	n.mu.Unlock()
	send := func(inc, seq uint64, op byte, f string) {
		d.NotifyMsg(encodeUpdate(update{origin: "p", incarnation: inc, seq: seq, op: op, filter: f}))
	}
	send(10, 1, opAdd, "a")
	send(10, 3, opAdd, "c") // early: waits for 2
	if got := n.RemoteFilters("p"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after a gap: %v", got)
	}
	send(10, 2, opAdd, "b")
	send(10, 2, opRemove, "b") // duplicate sequence number: ignored
	if got := n.RemoteFilters("p"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after the gap closed: %v", got)
	}
	// A restart of p seen mid-stream: wait for its full state, whose filters
	// replace the old ones, then apply what followed it.
	send(11, 3, opAdd, "z")
	d.MergeRemoteState(encodeState([]nodeState{{name: "p", incarnation: 11, seq: 2, filters: []string{"y"}}}), false)
	if got := n.RemoteFilters("p"); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("after a restart: %v", got)
	}
	// An older state and an update of the old incarnation change nothing.
	d.MergeRemoteState(encodeState([]nodeState{{name: "p", incarnation: 10, seq: 9, filters: []string{"old"}}}), false)
	send(10, 4, opAdd, "old")
	if got := n.NodesFor("z"); !slices.Equal(got, []string{"p"}) {
		t.Fatalf("NodesFor(z) = %v", got)
	}
	if got := n.RemoteFilters("p"); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("after stale input: %v", got)
	}
	// Updates for a node that is not a member are ignored.
	send(1, 1, opAdd, "ghost")
	d.NotifyMsg(encodeUpdate(update{origin: "ghost", incarnation: 1, seq: 1, op: opAdd, filter: "g"}))
	if got := n.NodesFor("g"); len(got) != 0 {
		t.Fatalf("NodesFor(g) = %v", got)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeUpdate(update{origin: "a", incarnation: 1, seq: 2, op: opAdd, filter: "x/+"}))
	f.Add(encodeState([]nodeState{{name: "a", incarnation: 1, seq: 2, filters: []string{"x", "$share/g/y"}}}))
	f.Add(encodeMeta("127.0.0.1:7947"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if kind, rest, err := decodeHeader(b); err == nil {
			switch kind {
			case kindUpdate:
				if u, err := decodeUpdate(rest); err == nil {
					if got, _ := decodeUpdate(encodeUpdate(u)[2:]); got != u {
						t.Fatalf("round trip: %+v != %+v", got, u)
					}
				}
			case kindState:
				_, _ = decodeState(rest)
			}
		}
		_, _ = decodeMeta(b)
	})
}
