package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/store"
)

// testNode is one broker of an in-process cluster, serving MQTT on loopback.
type testNode struct {
	b     *broker.Broker
	c     *Cluster
	addr  string // MQTT
	stop  func()
	close func(leave bool) // stop, leaving the cluster first with leave
}

// startCluster starts n brokers, each a node of one cluster, and waits until
// every node sees every other one with a working link.
func startCluster(t *testing.T, n int, mod func(i int, cfg *Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	var seeds []string
	for i := range n {
		tn := startClusterNode(t, fmt.Sprintf("c%d-%d", nodeSeq.Add(1), i), seeds, func(cfg *Config) {
			if mod != nil {
				mod(i, cfg)
			}
		})
		if i == 0 {
			seeds = []string{tn.c.Node().GossipAddr()}
		}
		nodes = append(nodes, tn)
	}
	waitMesh(t, nodes)
	return nodes
}

func startClusterNode(t *testing.T, name string, seeds []string, mod func(*Config)) *testNode {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.NodeName = name
	opts.Logger = slog.New(slog.DiscardHandler)
	if os.Getenv("AVOCET_TEST_LOG") != "" { // the nodes' logs on stderr, to follow a failing test
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	}
	cfg := Config{Node: Options{
		Name: name, GossipAddress: "127.0.0.1:0", LinkAddress: "127.0.0.1:0", Seeds: seeds,
		DeadNodeGrace: 2 * time.Second, Logger: opts.Logger, Config: fastConfig,
	}}
	if mod != nil {
		mod(&cfg)
	}
	if db, ok := cfg.Store.(*store.DB); ok {
		opts.SessionStore = db
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Serve(ln, "tcp") }()
	stopped := false
	tn := &testNode{b: b, c: c, addr: ln.Addr().String()}
	tn.stop = func() { tn.close(false) }
	tn.close = func(leave bool) {
		if stopped {
			return
		}
		stopped = true
		_ = ln.Close()
		if err := c.Close(leave, 10*time.Second); err != nil {
			t.Logf("cluster close %s: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	}
	t.Cleanup(tn.stop)
	return tn
}

// withStore gives every node of a test cluster a store of its own.
func withStore(t *testing.T) func(int, *Config) {
	return func(_ int, cfg *Config) {
		db, err := store.Open(store.Options{Dir: t.TempDir(), Fsync: store.Never})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg.Store = db
	}
}

// waitMesh waits until every node sees the others alive with a link up.
func waitMesh(t *testing.T, nodes []*testNode) {
	t.Helper()
	checkFor(t, 15*time.Second, func() error {
		for _, n := range nodes {
			up, down := n.c.reachable()
			if len(up) != len(nodes)-1 || len(down) != 0 {
				return fmt.Errorf("%s: reachable %v, unreachable %v", n.c.Node().Name(), up, down)
			}
		}
		return nil
	})
}

// waitRoute waits until node n routes topic to the other node named peer.
func waitRoute(t *testing.T, n *testNode, topic string, peers ...string) {
	t.Helper()
	checkFor(t, 10*time.Second, wantNodes(n.c.Node(), topic, peers...))
}

type client struct {
	*pahov5.Client
	msgs chan *pahov5.Publish
}

func dial(t *testing.T, addr, id string, mod func(*pahov5.Connect)) (*client, *pahov5.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{msgs: make(chan *pahov5.Publish, 100000)}
	c.Client = pahov5.NewClient(pahov5.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){
			func(pr pahov5.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnClientError: func(error) {},
	})
	cp := &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if mod != nil {
		mod(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		_ = nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&pahov5.Disconnect{}) })
	return c, ack, nil
}

func connect(t *testing.T, addr, id string, mod func(*pahov5.Connect)) *client {
	t.Helper()
	c, ack, err := dial(t, addr, id, mod)
	if err != nil {
		t.Fatalf("connect %s: %v (CONNACK %+v)", id, err, ack)
	}
	return c
}

func (c *client) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
}

func (c *client) pub(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := c.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if err != nil && pr == nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		t.Fatalf("publish %q: reason code %#x", topic, pr.ReasonCode)
	}
}

func (c *client) next(t *testing.T) *pahov5.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func (c *client) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("unexpected message %q %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// TestClusterDeliversAcrossNodes: a subscriber on one node receives, once and
// in order, what publishers on the other nodes send at every QoS.
func TestClusterDeliversAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	sub := connect(t, a.addr, "sub", nil)
	sub.sub(t, "x/#", 2)
	waitRoute(t, c, "x/1", a.c.Node().Name())
	waitRoute(t, b, "x/1", a.c.Node().Name())
	pubC := connect(t, c.addr, "pub-c", nil)
	pubB := connect(t, b.addr, "pub-b", nil)
	for qos := byte(0); qos <= 2; qos++ {
		for i := range 50 {
			pubC.pub(t, "x/c", qos, false, strconv.Itoa(i))
		}
		for i := range 50 {
			m := sub.next(t)
			if m.Topic != "x/c" || string(m.Payload) != strconv.Itoa(i) || m.QoS != qos {
				t.Fatalf("QoS %d message %d: got %s %q QoS %d", qos, i, m.Topic, m.Payload, m.QoS)
			}
		}
	}
	pubB.pub(t, "x/b", 1, false, "from-b")
	if m := sub.next(t); string(m.Payload) != "from-b" {
		t.Fatalf("got %q", m.Payload)
	}
	sub.none(t, 200*time.Millisecond)
	// A topic nobody subscribed to is not forwarded.
	pubC.pub(t, "y/none", 1, false, "nobody")
	if st := c.c.Status(); st.Forwarded != 150 {
		t.Fatalf("node C forwarded %d messages, want 150", st.Forwarded)
	}
}

// TestClusterRetainedReplicated: a retained message set on one node is seen by a
// new subscriber on every node, and so is its clearing; a node that joins later
// gets it through anti-entropy.
func TestClusterRetainedReplicated(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	pub := connect(t, nodes[0].addr, "pub", nil)
	pub.pub(t, "r/1", 1, true, "one")
	pub.pub(t, "r/2", 1, true, "two")
	pub.pub(t, "r/2", 1, true, "")
	late := startClusterNode(t, "late", []string{nodes[0].c.Node().GossipAddr()}, nil)
	waitMesh(t, append(nodes, late))
	for _, n := range append(nodes, late) {
		checkFor(t, 10*time.Second, func() error {
			if m, ok := n.b.Retained().Get("r/1"); !ok || string(m.Payload) != "one" {
				return fmt.Errorf("%s: retained r/1 missing", n.c.Node().Name())
			}
			if _, ok := n.b.Retained().Get("r/2"); ok {
				return fmt.Errorf("%s: cleared r/2 still retained", n.c.Node().Name())
			}
			return nil
		})
	}
	s := connect(t, late.addr, "s", nil)
	s.sub(t, "r/#", 1)
	if m := s.next(t); m.Topic != "r/1" || !m.Retain {
		t.Fatalf("got %s retain=%v", m.Topic, m.Retain)
	}
}

// TestClusterSharedSubscription: a shared group with members on two nodes gets
// each message once, cluster-wide; members on the publisher's node come first.
func TestClusterSharedSubscription(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	m1 := connect(t, nodes[0].addr, "m1", nil)
	m1.sub(t, "$share/g/s/#", 1)
	m2 := connect(t, nodes[1].addr, "m2", nil)
	m2.sub(t, "$share/g/s/#", 1)
	waitRoute(t, nodes[0], "s/x", nodes[1].c.Node().Name())
	pub := connect(t, nodes[1].addr, "pub", nil)
	for i := range 20 {
		pub.pub(t, "s/x", 1, false, strconv.Itoa(i))
	}
	for i := range 20 {
		if m := m2.next(t); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("local member: message %d is %q", i, m.Payload)
		}
	}
	m1.none(t, 200*time.Millisecond)
	// With no member on the publisher's node, the remote member gets them all.
	m2.Disconnect(&pahov5.Disconnect{})
	checkFor(t, 10*time.Second, wantNodes(nodes[0].c.Node(), "s/x"))
	pub0 := connect(t, nodes[1].addr, "pub0", nil)
	for i := range 5 {
		pub0.pub(t, "s/x", 1, false, "r"+strconv.Itoa(i))
	}
	for i := range 5 {
		if m := m1.next(t); string(m.Payload) != "r"+strconv.Itoa(i) {
			t.Fatalf("remote member: message %d is %q", i, m.Payload)
		}
	}
}

// TestClusterTakeoverMovesSession: a client connected on one node that connects
// on another takes its session over: the first connection is closed, and the
// subscriptions and the messages queued while it was offline move with it.
func TestClusterTakeoverMovesSession(t *testing.T) {
	nodes := startCluster(t, 3, withStore(t))
	a, b, c := nodes[0], nodes[1], nodes[2]
	persistent := func(cp *pahov5.Connect) {
		cp.CleanStart = false
		exp := uint32(3600)
		cp.Properties = &pahov5.ConnectProperties{SessionExpiryInterval: &exp}
	}
	dev := connect(t, a.addr, "dev", persistent)
	dev.sub(t, "q/#", 2)
	waitRoute(t, c, "q/1", a.c.Node().Name())
	dev.Disconnect(&pahov5.Disconnect{})
	pub := connect(t, c.addr, "pub", nil)
	for i := range 30 {
		pub.pub(t, "q/1", byte(1+i%2), false, strconv.Itoa(i))
	}
	checkFor(t, 10*time.Second, func() error {
		// A message may have gone inflight on the connection as it ended; it
		// is sent again first, so the order below holds.
		if s, _, ok := a.b.Session("dev"); !ok || s.Queued+s.Inflight != 30 {
			return fmt.Errorf("queued on A: %+v", s)
		}
		return nil
	})
	dev2, ack, err := dial(t, b.addr, "dev", persistent)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.SessionPresent {
		t.Fatal("session not present after moving to B")
	}
	for i := range 30 {
		if m := dev2.next(t); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
	}
	if _, _, ok := a.b.Session("dev"); ok {
		t.Fatal("A still holds the session")
	}
	waitRoute(t, c, "q/1", b.c.Node().Name())
	pub.pub(t, "q/1", 1, false, "after")
	if m := dev2.next(t); string(m.Payload) != "after" {
		t.Fatalf("after the move: %q", m.Payload)
	}
	dev2.none(t, 200*time.Millisecond)

	// A connected client is taken over from another node.
	c1 := connect(t, a.addr, "twin", nil)
	_ = connect(t, c.addr, "twin", nil)
	checkFor(t, 5*time.Second, func() error {
		if s, _, ok := a.b.Session("twin"); ok {
			return fmt.Errorf("A still has twin: %+v", s)
		}
		return nil
	})
	_ = c1
}

// TestClusterSessionMovesUnderLoad: a persistent session moves from A to B while
// publishers on A, B and C publish QoS 2 messages without pause. The other nodes
// learn that A dropped the session's filters and that B took them in no set
// order; A relays to B until every node routes to B, so that every message
// reaches the session once: none lost, none twice. The relay then ends and A
// stops routing the session's filters.
func TestClusterSessionMovesUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3, withStore(t))
	a, b := nodes[0], nodes[1]
	persistent := func(cp *pahov5.Connect) {
		cp.CleanStart = false
		exp := uint32(3600)
		cp.Properties = &pahov5.ConnectProperties{SessionExpiryInterval: &exp, ReceiveMaximum: ptr(uint16(1000))}
	}
	dev := connect(t, a.addr, "dev", persistent)
	dev.sub(t, "load/#", 2)
	for _, n := range nodes[1:] {
		waitRoute(t, n, "load/x", a.c.Node().Name())
	}
	if err := dev.Disconnect(&pahov5.Disconnect{}); err != nil {
		t.Fatal(err)
	}

	const perPublisher = 300
	done := publishLoad(t, nodes, "load/", perPublisher)
	time.Sleep(100 * time.Millisecond)
	dev2, ack, err := dial(t, b.addr, "dev", persistent)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.SessionPresent {
		t.Fatal("session not present after moving to B")
	}
	for range nodes {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	reordered := receiveLoad(t, dev2, len(nodes), perPublisher)
	dev2.none(t, 300*time.Millisecond)
	t.Logf("messages from one publisher received before an earlier one: %d of %d", reordered, len(nodes)*perPublisher)
	checkFor(t, 10*time.Second, func() error {
		a.c.relayMu.Lock()
		n := len(a.c.relays)
		a.c.relayMu.Unlock()
		if n != 0 || a.b.Tree().Subscriptions(broker.MovedPrefix+"dev") != nil {
			return fmt.Errorf("A still relays: %d", n)
		}
		if slices.Contains(a.c.Node().LocalFilters(), "load/#") {
			return fmt.Errorf("A still routes load/#")
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// TestClusterSubackMeansRouted: once a subscriber on one node has its SUBACK,
// a message published on another node at once reaches it: the subscribing node
// sends its route change over the links and waits for the other nodes to
// confirm before the SUBACK.
func TestClusterSubackMeansRouted(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	a, c := nodes[0], nodes[2]
	sub := connect(t, a.addr, "sub", nil)
	pub := connect(t, c.addr, "pub", nil)
	var slowest time.Duration
	for i := range 20 {
		topic := "fresh/" + strconv.Itoa(i)
		start := time.Now()
		sub.sub(t, topic, 1)
		slowest = max(slowest, time.Since(start))
		pub.pub(t, topic, 1, false, strconv.Itoa(i))
		if m := sub.next(t); string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("got %q on %q, want %d", m.Payload, m.Topic, i)
		}
	}
	t.Logf("slowest SUBACK: %v", slowest)
}

// TestClusterLeaveHandsOverWithoutLoss: a node that leaves hands its offline
// sessions to the other nodes and relays their messages until every node routes
// them there, so that a persistent subscriber loses nothing published on the
// other nodes while its node left, and gets nothing twice.
func TestClusterLeaveHandsOverWithoutLoss(t *testing.T) {
	nodes := startCluster(t, 3, withStore(t))
	a, b, c := nodes[0], nodes[1], nodes[2]
	persistent := func(cp *pahov5.Connect) {
		cp.CleanStart = false
		exp := uint32(3600)
		cp.Properties = &pahov5.ConnectProperties{SessionExpiryInterval: &exp, ReceiveMaximum: ptr(uint16(1000))}
	}
	dev := connect(t, a.addr, "dev", persistent)
	dev.sub(t, "leave/#", 2)
	if err := dev.Disconnect(&pahov5.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	const perPublisher = 300
	done := publishLoad(t, []*testNode{b, c}, "leave/", perPublisher)
	time.Sleep(100 * time.Millisecond)
	a.close(true)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// B refuses connections until it has heard that A left rather than failed.
	var dev2 *client
	var ack *pahov5.Connack
	checkFor(t, 10*time.Second, func() error {
		var err error
		dev2, ack, err = dial(t, b.addr, "dev", persistent)
		return err
	})
	if !ack.SessionPresent {
		t.Fatal("session not present after its node left")
	}
	receiveLoad(t, dev2, 2, perPublisher)
	dev2.none(t, 300*time.Millisecond)
}

// publishLoad starts one QoS 2 publisher on each of nodes, publisher i sending
// "i-0", "i-1"... to topic prefix+i, n messages without pause; each reports on
// the channel when it is done.
func publishLoad(t *testing.T, nodes []*testNode, prefix string, n int) <-chan error {
	t.Helper()
	done := make(chan error, len(nodes))
	for i, node := range nodes {
		pub := connect(t, node.addr, "pub"+strconv.Itoa(i), nil)
		go func() {
			for j := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := pub.Publish(ctx, &pahov5.Publish{Topic: prefix + strconv.Itoa(i), QoS: 2,
					Payload: []byte(strconv.Itoa(i) + "-" + strconv.Itoa(j))})
				cancel()
				if err != nil {
					done <- fmt.Errorf("publisher %d, message %d: %w", i, j, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
			done <- nil
		}()
	}
	return done
}

// receiveLoad reads what publishLoad's publishers sent until c has every
// message, failing on one that comes twice or on any missing for 10 s, and
// returns how many came before an earlier one from the same publisher.
func receiveLoad(t *testing.T, c *client, publishers, n int) (reordered int) {
	t.Helper()
	seen := map[string]bool{}
	last := make([]int, publishers)
	for i := range last {
		last[i] = -1
	}
	for len(seen) < publishers*n {
		var m *pahov5.Publish
		select {
		case m = <-c.msgs:
		case <-time.After(10 * time.Second):
			var missing []string
			for i := range publishers {
				for j := range n {
					if p := strconv.Itoa(i) + "-" + strconv.Itoa(j); !seen[p] {
						missing = append(missing, p)
					}
				}
			}
			t.Fatalf("%d messages lost: %v", len(missing), missing)
		}
		p := string(m.Payload)
		if seen[p] {
			t.Fatalf("message %q delivered twice", p)
		}
		seen[p] = true
		var i, j int
		if _, err := fmt.Sscanf(p, "%d-%d", &i, &j); err != nil {
			t.Fatal(err)
		}
		if j < last[i] {
			reordered++
		}
		last[i] = max(last[i], j)
	}
	return reordered
}
