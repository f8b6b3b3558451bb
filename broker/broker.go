package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/retain"
	"github.com/avocet-mqtt/avocet/session"
)

// Receiver takes the messages of a subscriber that is not a local client session:
// a bridge, or another node of the cluster. Deliver is called from publishers'
// goroutines, concurrently, and must not block: a Receiver queues what it cannot
// send at once. m is shared and read-only. Deliver reports whether it wrote the
// broker's SessionStore, so that the publisher's acknowledgement waits until the
// write is durable.
type Receiver interface {
	Deliver(m *mqtt.Message, qos mqtt.QoS, retain bool, subscriptionIDs []uint32) (stored bool)
}

// Stats are the broker's counters. Every field is updated atomically.
type Stats struct {
	ConnectionsTotal   atomic.Int64 // accepted network connections
	ConnectionsCurrent atomic.Int64 // open network connections
	ClientsConnected   atomic.Int64 // connections past CONNACK success
	ConnectsRefused    atomic.Int64 // CONNECTs answered with a refusal
	MessagesReceived   atomic.Int64 // PUBLISH packets received from clients
	MessagesSent       atomic.Int64 // PUBLISH packets sent to clients
	MessagesDropped    atomic.Int64 // messages not delivered: queue full, offline QoS 0, too large
	MessagesExpired    atomic.Int64 // messages whose expiry passed while queued
	BytesReceived      atomic.Int64
	BytesSent          atomic.Int64
	ProtocolErrors     atomic.Int64 // connections closed for a malformed packet or protocol error
	PublishersPaced    atomic.Int64 // times a publisher waited for a crowded subscriber queue
	PaceStalls         atomic.Int64 // of those, waits that timed out: the queue stalled

	// Dropped messages by reason; MessagesDropped is their sum.
	DroppedQueueFull     atomic.Int64 // a session queue or the outbound bytes cap was full
	DroppedOffline       atomic.Int64 // QoS 0 for an offline session
	DroppedTooLarge      atomic.Int64 // larger than the receiver's Maximum Packet Size
	DroppedNotAuthorized atomic.Int64 // refused by the ACL or a hook, or to $SYS

	PacketsReceived [mqtt.AUTH + 1]atomic.Int64 // by packet type
	PacketsSent     [mqtt.AUTH + 1]atomic.Int64 // by packet type, PUBLISH included
	RefusedBy       [256]atomic.Int64           // CONNECTs refused, by reason code
}

// drop counts a message not delivered for reason, one of the Dropped counters.
func (s *Stats) drop(reason *atomic.Int64) {
	reason.Add(1)
	s.MessagesDropped.Add(1)
}

// Broker is an MQTT broker: it runs the protocol on the connections it is handed,
// keeps the sessions, and routes every message through the subscription tree to
// sessions, shared subscription groups and receivers.
type Broker struct {
	routed atomic.Uint64 // messages routed on a node of a cluster, to number them (MsgRef)

	opts  Options
	log   *slog.Logger
	tree  *SubTree
	ret   *retain.Tree
	stats Stats
	start time.Time

	mu        sync.RWMutex
	sessions  map[string]*clientSession // every session, online or not; guarded by mu
	receivers map[string]Receiver       // guarded by mu
	conns     map[*conn]struct{}        // open connections; guarded by mu
	closing   bool                      // guarded by mu
	draining  atomic.Bool               // Drain was called: no new clients
	limits    atomic.Pointer[Limits]    // the options SetLimits may change

	shareMu sync.Mutex
	shares  map[string]*shareState // per shared subscription; guarded by shareMu

	budget *session.Budget // the payload bytes all sessions hold; nil: unlimited

	traceMu sync.Mutex
	traces  []*tracer    // guarded by traceMu
	tracing atomic.Int32 // len(traces), read without the lock on every packet

	matchPool sync.Pool // *MatchResult

	cluster atomic.Pointer[clusterRef] // nil: a single node; set by SetCluster

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection and background goroutines
}

// shareState is what a shared subscription remembers to pick members.
type shareState struct {
	next   atomic.Uint64
	sticky atomic.Pointer[string]
}

// New returns a broker with the given options.
func New(opts Options) (*Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	def := DefaultOptions()
	if opts.MaxPacketSize <= 0 || opts.MaxPacketSize > mqtt.MaxPacketSize {
		opts.MaxPacketSize = def.MaxPacketSize
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = def.MaxInflight
	}
	if opts.ReceiveMaximum <= 0 || opts.ReceiveMaximum > 65535 {
		opts.ReceiveMaximum = def.ReceiveMaximum
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = def.ConnectTimeout
	}
	if opts.MaxKeepAlive == 0 {
		opts.MaxKeepAlive = def.MaxKeepAlive
	}
	if opts.MaxClientIDLength <= 0 {
		opts.MaxClientIDLength = def.MaxClientIDLength
	}
	if opts.QueueDrop == 0 {
		opts.QueueDrop = def.QueueDrop
	}
	if opts.SharedStrategy == 0 {
		opts.SharedStrategy = def.SharedStrategy
	}
	ret := opts.Retained
	if ret == nil {
		var err error
		if ret, err = retain.New(nil, retain.Options{}); err != nil {
			return nil, fmt.Errorf("broker: retained messages: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		opts:      opts,
		log:       opts.Logger,
		tree:      NewSubTree(DefaultMatchCacheSize),
		ret:       ret,
		start:     time.Now(),
		sessions:  map[string]*clientSession{},
		receivers: map[string]Receiver{},
		conns:     map[*conn]struct{}{},
		shares:    map[string]*shareState{},
		budget:    session.NewBudget(opts.MaxOutboundBytes),
		ctx:       ctx,
		cancel:    cancel,
	}
	b.matchPool.New = func() any { return new(MatchResult) }
	b.limits.Store(limitsOf(&b.opts))
	if opts.SessionStore != nil {
		if err := b.loadSessions(); err != nil {
			cancel()
			return nil, err
		}
	}
	if opts.SysInterval > 0 {
		b.wg.Add(1)
		go b.sysLoop()
	}
	b.wg.Add(1)
	go b.sweepLoop()
	return b, nil
}

// OutboundBytes returns the payload bytes all sessions hold in their queues and
// inflight windows.
func (b *Broker) OutboundBytes() int64 { return b.budget.Used() }

// Stats returns the broker's counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// Tree returns the subscription tree.
func (b *Broker) Tree() *SubTree { return b.tree }

// Retained returns the retained message store.
func (b *Broker) Retained() *retain.Tree { return b.ret }

// Options returns the options the broker runs with.
func (b *Broker) Options() Options { return b.opts }

// Listener is where the broker accepts connections from: a listener of package
// listener satisfies it.
type Listener interface {
	Accept() (net.Conn, error)
	Addr() net.Addr
}

// Serve accepts connections from l and serves each until l is closed or the
// broker shuts down. It returns nil when l was closed.
func (b *Broker) Serve(l Listener, name string) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || b.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("broker: accept on %s: %w", name, err)
		}
		b.ServeConn(nc, name)
	}
}

// ServeConn serves one network connection in goroutines of its own and returns at
// once. The broker owns nc from now on and closes it.
func (b *Broker) ServeConn(nc net.Conn, listener string) {
	b.stats.ConnectionsTotal.Add(1)
	c := newConn(b, nc, listener)
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		_ = nc.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	b.stats.ConnectionsCurrent.Add(1)
	b.wg.Add(1) // done by the connection's finish
	go c.serve()
}

// Close disconnects every client (5.0 clients with reason 0x8B, server shutting
// down), stops the background work and waits for it, or until ctx is done.
// Persistent sessions stay in the broker's store.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.kick(mqtt.ServerShuttingDown)
	}
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: close: %w", ctx.Err())
	}
}

// AttachReceiver makes r the receiver of the messages for subscriber id, which then
// subscribes with Subscribe. It replaces any earlier receiver of id.
func (b *Broker) AttachReceiver(id string, r Receiver) {
	b.mu.Lock()
	b.receivers[id] = r
	b.mu.Unlock()
}

// DetachReceiver removes the receiver id and its subscriptions.
func (b *Broker) DetachReceiver(id string) {
	b.mu.Lock()
	delete(b.receivers, id)
	b.mu.Unlock()
	b.tree.UnsubscribeAll(id)
}

// Subscribe subscribes subscriber id, a receiver's or a session's, to filter.
// Retained messages are not sent; see SendRetained.
func (b *Broker) Subscribe(id, filter string, opts SubscriptionOptions) (created bool, err error) {
	return b.tree.Subscribe(id, filter, opts)
}

// Unsubscribe removes subscriber id's subscription to filter.
func (b *Broker) Unsubscribe(id, filter string) bool { return b.tree.Unsubscribe(id, filter) }

// Publish routes a message that did not come from a local client connection (a
// bridge, another node, the broker itself): it is stored if retained and sent to
// every matching subscriber. It returns the number of subscribers it went to.
func (b *Broker) Publish(m *mqtt.Message) int {
	n, _ := b.publish(m, nil)
	return n
}

// publish stores m if retained and routes it. stored reports whether a store was
// written, so that the publisher's acknowledgement waits for a Barrier.
func (b *Broker) publish(m *mqtt.Message, slow **session.Session) (n int, stored bool) {
	if m.Retain && b.opts.RetainAvailable {
		if err := b.ret.Set(m, time.Now()); err != nil {
			b.log.Warn("retained message not stored", "topic", m.Topic, "err", err)
		} else {
			stored = b.opts.SessionStore != nil
			if cl := b.clusterOf(); cl != nil && !strings.HasPrefix(m.Topic, "$SYS") {
				cl.Retained(m)
			}
		}
	}
	n, routed := b.route(m, slow)
	return n, stored || routed
}

// route sends m to every matching subscriber once and returns how many it went
// to, and whether a session store was written. On a node of a cluster the
// message is numbered, forwarded once to the other nodes with a match, and
// relayed to the sessions that moved to another node lately.
func (b *Broker) route(m *mqtt.Message, slow **session.Session) (n int, stored bool) {
	res := b.matchPool.Get().(*MatchResult)
	defer b.matchPool.Put(res)
	b.tree.Match(m.Topic, m.Origin, res)
	cl := b.clusterOf()
	var ref MsgRef
	if cl != nil {
		ref.N = b.routed.Add(1)
		res.nodes, res.moved = res.nodes[:0], res.moved[:0]
		for i := range res.Recipients {
			switch s := res.Recipients[i].Subscriber; {
			case IsNode(s):
				res.nodes = append(res.nodes, s[len(NodePrefix):])
			case IsMoved(s):
				res.moved = append(res.moved, i)
			}
		}
		// Forwarded first, so that the relays of sessions that moved away
		// know where the message went.
		if len(res.nodes) > 0 {
			n += len(res.nodes)
			var st bool
			st, ref.Sent = cl.Forward(m, ref.N, res.nodes)
			stored = stored || st
		}
	}
	for i := range res.Recipients {
		r := &res.Recipients[i]
		if cl != nil && (IsNode(r.Subscriber) || IsMoved(r.Subscriber)) {
			continue
		}
		ok, st := b.deliver(r.Subscriber, m, min(m.QoS, r.QoS), r.RetainAsPublished && m.Retain, r.SubscriptionIDs, "", ref, slow)
		if ok {
			n++
		}
		stored = stored || st
	}
	for _, i := range res.moved {
		r := &res.Recipients[i]
		n++
		stored = cl.Relay(r.Subscriber[len(MovedPrefix):], m, min(m.QoS, r.QoS), r.RetainAsPublished && m.Retain,
			r.SubscriptionIDs, "", ref) || stored
	}
	for i := range res.Groups {
		g := &res.Groups[i]
		mem, _ := b.pickMember(g, false)
		ok, st := b.deliverMember(cl, mem, m, mqtt.SharePrefix+g.Group+"/"+g.Filter, ref)
		if ok {
			n++
		}
		stored = stored || st
	}
	return n, stored
}

// deliverMember gives m, identified by ref, to the member of a shared
// subscription group, of the form $share/{ShareName}/{filter}, chosen for it.
func (b *Broker) deliverMember(cl Cluster, mem Member, m *mqtt.Message, group string, ref MsgRef) (ok, stored bool) {
	qos, retain := min(m.QoS, mem.Options.QoS), mem.Options.RetainAsPublished && m.Retain
	ids := subIDs(mem.Options.SubscriptionID)
	if cl != nil && IsMoved(mem.Subscriber) {
		return true, cl.Relay(mem.Subscriber[len(MovedPrefix):], m, qos, retain, ids, group, ref)
	}
	return b.deliver(mem.Subscriber, m, qos, retain, ids, group, ref, nil)
}

// subIDs returns a slice holding id, or nil for zero, without allocating for the
// common identifiers.
func subIDs(id uint32) []uint32 {
	if id == 0 {
		return nil
	}
	if id < uint32(len(smallIDs)) {
		return smallIDs[id : id+1 : id+1]
	}
	return []uint32{id}
}

var smallIDs = func() []uint32 {
	s := make([]uint32, 1024)
	for i := range s {
		s[i] = uint32(i)
	}
	return s
}()

// deliver gives m to subscriber, a session or a receiver. ids is copied if kept.
// ref identifies m in a cluster: a session that moved here lately takes it once.
//
// slow, when not nil, is set to the session when its queue is crowded and its
// client online: the publisher then waits for it (see session.Session.WaitRoom).
func (b *Broker) deliver(subscriber string, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string, ref MsgRef,
	slow **session.Session) (ok, stored bool) {
	b.mu.RLock()
	cs := b.sessions[subscriber]
	var r Receiver
	if cs == nil {
		r = b.receivers[subscriber]
	}
	b.mu.RUnlock()
	switch {
	case cs != nil:
		if cl := b.clusterOf(); cl != nil && cl.MovedIn(subscriber) && !cl.FirstDelivery(subscriber, ref) {
			return true, false // it came relayed already
		}
		ok, stored = cs.deliver(b, m, qos, retain, ids, group, ref)
		if slow != nil && cs.s.Crowded() && cs.conn.Load() != nil {
			*slow = cs.s
		}
		return ok, stored
	case r != nil:
		if gr, ok := r.(GroupReceiver); ok && group != "" {
			return true, gr.DeliverGroup(m, qos, retain, group)
		}
		return true, r.Deliver(m, qos, retain, ids)
	}
	// The session ended after the message was matched. When it moved to
	// another node the message follows it there.
	if cl := b.clusterOf(); cl != nil && !IsNode(subscriber) {
		if st := cl.Relay(subscriber, m, qos, retain, ids, group, ref); st || cl.Relaying(subscriber) {
			return true, st
		}
	}
	return false, false
}

// pickMember chooses the member of a shared subscription that gets the next
// message. Members with a connected session are preferred to offline ones, and,
// with SharedPreferLocal, members on this node to other nodes. With localOnly,
// other nodes are never chosen, and ok is false when the group has no member here.
func (b *Broker) pickMember(g *GroupMatch, localOnly bool) (m Member, ok bool) {
	members := g.Members
	if len(members) == 1 {
		return members[0], !localOnly || !IsNode(members[0].Subscriber)
	}
	key := g.Group + "/" + g.Filter
	b.shareMu.Lock()
	st := b.shares[key]
	if st == nil {
		st = &shareState{}
		b.shares[key] = st
	}
	b.shareMu.Unlock()
	switch b.opts.SharedStrategy {
	case Sticky:
		if p := st.sticky.Load(); p != nil {
			for _, m := range members {
				if m.Subscriber == *p && (!localOnly || !IsNode(m.Subscriber)) && b.online(m.Subscriber) {
					return m, true
				}
			}
		}
	case Random:
		return b.firstOnline(members, rand.IntN(len(members)), localOnly)
	}
	start := int(st.next.Add(1) % uint64(len(members)))
	m, ok = b.firstOnline(members, start, localOnly)
	if ok && b.opts.SharedStrategy == Sticky {
		s := m.Subscriber
		st.sticky.Store(&s)
	}
	return m, ok
}

// firstOnline returns the first member from start on, in this order of
// preference: a connected local session (or a local receiver); with
// SharedPreferLocal, before other nodes; another node; an offline local session.
func (b *Broker) firstOnline(members []Member, start int, localOnly bool) (Member, bool) {
	preferLocal := localOnly || b.opts.SharedPreferLocal
	fallback := -1
	for pass := 0; pass < 2; pass++ {
		for i := range members {
			j := (start + i) % len(members)
			m := members[j]
			node := IsNode(m.Subscriber)
			if node && (localOnly || pass == 0 && preferLocal) {
				continue
			}
			if b.online(m.Subscriber) {
				return m, true
			}
			if fallback < 0 && !node {
				fallback = j
			}
		}
		if !preferLocal || localOnly {
			break
		}
	}
	if fallback >= 0 {
		return members[fallback], true
	}
	if localOnly {
		return Member{}, false
	}
	return members[start], true
}

// online reports whether subscriber is a session with a connection, a receiver,
// or the relay of a session that moved to another node.
func (b *Broker) online(subscriber string) bool {
	if IsMoved(subscriber) {
		return true
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if cs := b.sessions[subscriber]; cs != nil {
		return cs.conn.Load() != nil
	}
	_, ok := b.receivers[subscriber]
	return ok
}

// sendRetained queues for a new subscription the retained messages its filter
// matches; the ACL's read rules apply as to every delivery.
func (b *Broker) sendRetained(cs *clientSession, filter string, opts SubscriptionOptions) {
	now := time.Now()
	ids := subIDs(opts.SubscriptionID)
	b.ret.Match(filter, now, func(m *mqtt.Message) bool {
		// [MQTT-3.3.1-8] RETAIN set; every retained message is queued, whatever MaxQueued.
		cs.enqueue(b, m, min(m.QoS, opts.QoS), true, ids, "", cs.s.EnqueueAll)
		return true
	})
}

// sweepLoop removes expired retained messages now and then.
func (b *Broker) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.ret.Sweep(now)
		}
	}
}

// topicLevels counts the levels of a topic name or filter.
func topicLevels(s string) int { return strings.Count(s, "/") + 1 }
