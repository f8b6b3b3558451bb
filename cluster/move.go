package cluster

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// A session that moves from node A to node B (Register) changes the routes of
// both: B subscribes to the session's filters, A unsubscribes. The other nodes
// learn both changes by gossip, in no set order, and a node that has heard that
// A dropped the filters before it hears that B took them would route a message
// for the session nowhere. So A keeps the session's subscriptions as a relay
// (broker.MovedPrefix): what they match is sent on to the session on B, and so
// is a message that was matched for the session just before it left. B tells
// A the version of its routes that holds the session (moved); A asks every node
// to confirm it routes by that version (fence, fenced), and ends the relay once
// all have. Meanwhile a message may reach B both directly and relayed: every
// routed message is numbered by the node it was published on (broker.MsgRef),
// and B gives the session each one once. A message forwarded to B by B's routes
// that already hold the session is not relayed at all (reachesAnyway), so that a
// restart of B, which forgets the numbers, cannot bring one twice. A node that
// leaves hands its sessions over the same way.

// DefaultRelayTimeout bounds how long a node relays messages to a session that
// moved away, when some node does not confirm that it routes to the session's
// new node (it is unreachable, say).
const DefaultRelayTimeout = 30 * time.Second

// relayState is the relay of a session that moved from this node. Its fields
// after ready are guarded by Cluster.relayMu.
type relayState struct {
	to      string // the node it moved to
	since   time.Time
	ready   chan struct{}       // closed once the session is sent: relays follow it
	moved   bool                // to installed the session; v is set
	v       version             // to's routes that hold the session's subscriptions
	waiting map[string]struct{} // the nodes yet to route by v, this one included
}

// fenceReq asks this node to tell node from once it routes by the routes of
// node at version v.
type fenceReq struct {
	from, node string
	v          version
	since      time.Time
}

// movedIn is a session that moved here while its old node relays to it: the
// messages it took, by identity, so that it takes each once.
type movedIn struct {
	from  string // the node it came from
	since time.Time
	mu    sync.Mutex
	ended time.Time           // when the relay ended; guarded by mu
	seen  map[msgKey]struct{} // guarded by mu

	// Relayed messages that came before the session was installed wait for it.
	park    sync.Mutex
	pending bool          // not installed yet; guarded by park
	parked  []parkedRelay // guarded by park
}

// msgKey is the identity of a message: the node it was published on and its
// number there (broker.MsgRef without Sent).
type msgKey struct {
	node string
	n    uint64
}

// parkedRelay is a relayed message waiting for its session to be installed,
// and the link's completion of its item.
type parkedRelay struct {
	rl   relay
	done func()
}

// relayGrace is how long a session that moved here keeps the identities of the
// messages it took after its old node stopped relaying: a message forwarded to
// this node before the relay ended may still be on its way.
const relayGrace = 5 * time.Second

// Forward implements broker.Cluster: m goes once to each of nodes, with the
// versions of their routes it was forwarded by (sent, for the relays).
func (c *Cluster) Forward(m *mqtt.Message, n uint64, nodes []string) (stored bool, sent any) {
	if strings.HasPrefix(m.Topic, "$SYS") { // every node has its own
		return false, nil
	}
	applied := *c.applied.Load()
	to := make([]sentTo, len(nodes))
	for i, node := range nodes {
		to[i] = sentTo{node: node, v: applied[node]}
	}
	return c.sendPublish(m, "", n, to, nodes), to
}

// send queues a message for node. A QoS 1 or 2 message (Durable) waits for room
// in a full queue, up to DefaultLinkWriteTimeout, holding back its publisher:
// its PUBACK must not go out for a message that is then dropped. A QoS 0
// message is dropped at once.
func (c *Cluster) send(node string, it Item) (queued, stored bool) {
	if it.Durable {
		return c.links.SendWait(node, it, DefaultLinkWriteTimeout)
	}
	return c.links.Send(node, it)
}

// Relay implements broker.Cluster: m goes to the session of client on the node
// it moved to, while this node relays to it.
func (c *Cluster) Relay(client string, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string, ref broker.MsgRef) (stored bool) {
	c.relayMu.Lock()
	st := c.relays[client]
	c.relayMu.Unlock()
	if st == nil {
		return false // the relay ended: every node routes to the session's node
	}
	<-st.ready
	to := st.to
	if c.reachesAnyway(st, ref) {
		return false
	}
	if ref.Node == "" {
		ref.Node = c.node.Name()
	}
	body, err := encodeRelay(relay{client: client, qos: qos, retain: retain, group: group, ids: ids, ref: ref, msg: m})
	if err != nil {
		c.forwardDrops.Add(1)
		c.log.Warn("cluster: message not relayed", "client_id", client, "peer", to, "err", err)
		return false
	}
	queued, stored := c.send(to, Item{Kind: itemRelay, Body: body, Durable: qos > mqtt.AtMostOnce})
	if !queued {
		c.forwardDrops.Add(1)
		c.log.Warn("cluster: message for a session that moved not relayed", "client_id", client, "peer", to)
		return false
	}
	c.relayed.Add(1)
	return stored
}

// relayCount returns how many sessions that moved away are relayed to.
func (c *Cluster) relayCount() int {
	c.relayMu.Lock()
	defer c.relayMu.Unlock()
	return len(c.relays)
}

// Relaying implements broker.Cluster.
func (c *Cluster) Relaying(client string) bool {
	c.relayMu.Lock()
	defer c.relayMu.Unlock()
	return c.relays[client] != nil
}

// reachesAnyway reports whether message ref reaches the session on the node
// it moved to without the relay: the node it comes from forwarded it there by
// routes that hold the moved session's subscriptions, so after the session was
// installed there. The relay of such a message is skipped; the new node would
// otherwise have to tell the two copies apart, which it cannot after a restart.
func (c *Cluster) reachesAnyway(st *relayState, ref broker.MsgRef) bool {
	sent, _ := ref.Sent.([]sentTo)
	if len(sent) == 0 {
		return false
	}
	c.relayMu.Lock()
	moved, v := st.moved, st.v
	c.relayMu.Unlock()
	if !moved {
		return false
	}
	for _, s := range sent {
		if s.node == st.to {
			return s.v.covers(v)
		}
	}
	return false
}

// MovedIn implements broker.Cluster.
func (c *Cluster) MovedIn(client string) bool {
	if c.movedInN.Load() == 0 {
		return false
	}
	_, ok := c.movedIn.Load(client)
	return ok
}

// FirstDelivery implements broker.Cluster.
func (c *Cluster) FirstDelivery(client string, ref broker.MsgRef) bool {
	if ref.N == 0 {
		return true
	}
	v, ok := c.movedIn.Load(client)
	if !ok {
		return true
	}
	if ref.Node == "" {
		ref.Node = c.node.Name()
	}
	mi := v.(*movedIn)
	mi.mu.Lock()
	defer mi.mu.Unlock()
	key := msgKey{node: ref.Node, n: ref.N}
	if _, dup := mi.seen[key]; dup {
		return false
	}
	mi.seen[key] = struct{}{}
	return true
}

// movingIn records that the session of client comes from node from: messages
// relayed for it wait until it is installed (Imported).
func (c *Cluster) movingIn(client, from string) {
	mi := &movedIn{from: from, since: time.Now(), seen: make(map[msgKey]struct{}), pending: true}
	if old, loaded := c.movedIn.Swap(client, mi); loaded {
		c.dropParked(old.(*movedIn))
	} else {
		c.movedInN.Add(1)
	}
}

// Imported implements broker.Cluster: the messages relayed for the session so
// far are delivered, and the node the session came from is told which routes
// of this node hold it.
func (c *Cluster) Imported(client string) {
	v, ok := c.movedIn.Load(client)
	if !ok {
		return
	}
	mi := v.(*movedIn)
	mi.park.Lock()
	for _, p := range mi.parked {
		c.deliverRelay(mi.from, p.rl, p.done)
	}
	mi.parked, mi.pending = nil, false
	mi.park.Unlock()
	body := encodeVersioned(client, c.node.version())
	if queued, _ := c.links.Send(mi.from, Item{Kind: itemMoved, Body: body, Durable: true}); !queued {
		c.log.Warn("cluster: node a session moved from not told; it relays until its timeout", "client_id", client, "peer", mi.from)
	}
}

// takeRelay hands a message relayed by node from to its session, or parks it
// while the session is not installed yet.
func (c *Cluster) takeRelay(from string, rl relay, done func()) {
	if v, ok := c.movedIn.Load(rl.client); ok {
		mi := v.(*movedIn)
		mi.park.Lock()
		defer mi.park.Unlock()
		if mi.pending {
			mi.parked = append(mi.parked, parkedRelay{rl: rl, done: done})
			return
		}
	}
	c.deliverRelay(from, rl, done)
}

// deliverRelay hands a message relayed by node from to its session.
func (c *Cluster) deliverRelay(from string, rl relay, done func()) {
	ok, stored := c.b.DeliverRelayed(rl.client, rl.msg, rl.qos, rl.retain, rl.ids, rl.group, rl.ref)
	if !ok {
		c.log.Warn("cluster: message relayed for a session that is not here; dropped", "peer", from, "client_id", rl.client)
	}
	c.whenDurable(stored, done)
}

// dropParked completes the relayed messages parked for a session that was not
// installed.
func (c *Cluster) dropParked(mi *movedIn) {
	mi.park.Lock()
	parked := mi.parked
	mi.parked = nil
	mi.park.Unlock()
	if len(parked) > 0 {
		c.log.Warn("cluster: messages relayed for a session that was not installed; dropped", "peer", mi.from, "messages", len(parked))
	}
	for _, p := range parked {
		p.done()
	}
}

// exportForMove ends the session of client here for node to, which registers
// it, and starts relaying to to when the session moves. Call ready once the
// session is on its way: relays wait for it.
func (c *Cluster) exportForMove(to, client string, keep bool) (records []session.Record, found bool, ready func()) {
	if !keep {
		records, found = c.b.ExportSession(client, false, false)
		return records, found, func() {}
	}
	st := &relayState{to: to, since: time.Now(), ready: make(chan struct{})}
	c.relayMu.Lock()
	c.relays[client] = st
	c.relayMu.Unlock()
	records, found = c.b.ExportSession(client, true, true)
	if records == nil {
		c.relayMu.Lock()
		if c.relays[client] == st {
			delete(c.relays, client)
		}
		c.relayMu.Unlock()
	}
	return records, found, func() { close(st.ready) }
}

// moved hears from node from that the session of client it took from here is
// installed there, with its routes at v: every member is asked to confirm it
// routes by v.
func (c *Cluster) moved(from, client string, v version) {
	self := c.node.Name()
	waiting := map[string]struct{}{self: {}}
	for _, m := range c.node.Members() {
		if m.Name != from && m.State == StateAlive {
			waiting[m.Name] = struct{}{}
		}
	}
	c.relayMu.Lock()
	st := c.relays[client]
	if st == nil || st.to != from {
		c.relayMu.Unlock()
		return
	}
	st.moved, st.v, st.waiting = true, v, waiting
	names := slices.Collect(maps.Keys(waiting))
	c.relayMu.Unlock()
	body := encodeVersioned(from, v)
	for _, name := range names {
		if name == self {
			c.parkFence(fenceReq{from: self, node: from, v: v, since: time.Now()})
			continue
		}
		if queued, _ := c.links.Send(name, Item{Kind: itemFence, Body: body}); !queued {
			c.log.Debug("cluster: fence not sent", "peer", name)
		}
	}
}

// parkFence answers f once this node routes by f.node's routes at f.v: the
// answer goes through the queue of route changes, after the ones it waits for.
func (c *Cluster) parkFence(f fenceReq) {
	if c.node.hasVersion(f.node, f.v) {
		c.queueFence(f)
		return
	}
	c.relayMu.Lock()
	c.fences = append(c.fences, f)
	c.relayMu.Unlock()
}

// queueFence puts f in the queue of route changes for applyLoop.
func (c *Cluster) queueFence(f fenceReq) {
	c.routeMu.Lock()
	c.routeQ = append(c.routeQ, routeChange{fence: &f})
	c.routeMu.Unlock()
	c.routeCond.Signal()
}

// fenceDone answers f: this node's tree routes by f.node's routes at f.v.
func (c *Cluster) fenceDone(f *fenceReq) {
	if f.from == c.node.Name() {
		c.fenced(f.from, f.node, f.v)
		return
	}
	if queued, _ := c.links.Send(f.from, Item{Kind: itemFenced, Body: encodeVersioned(f.node, f.v)}); !queued {
		c.log.Debug("cluster: fenced not sent", "peer", f.from)
	}
}

// fenced hears that node by routes by the routes of node to at v: the relays
// to to that waited for it no longer do, and those that wait for no one end;
// so do the Sync calls of this node.
func (c *Cluster) fenced(by, to string, v version) {
	var done []string
	c.relayMu.Lock()
	if to == c.node.Name() {
		for _, w := range c.syncs {
			if v.covers(w.v) {
				delete(w.waiting, by)
				if len(w.waiting) == 0 {
					w.close()
				}
			}
		}
	}
	for client, st := range c.relays {
		if st.to == to && st.moved && v.covers(st.v) {
			delete(st.waiting, by)
			if len(st.waiting) == 0 {
				done = append(done, client)
			}
		}
	}
	c.relayMu.Unlock()
	for _, client := range done {
		c.endRelay(client, "")
	}
}

// endRelay stops relaying to the session of client; why, when not empty, is
// logged.
func (c *Cluster) endRelay(client, why string) {
	c.b.EndRelay(client)
	c.relayMu.Lock()
	st := c.relays[client]
	delete(c.relays, client)
	c.relayMu.Unlock()
	if st == nil {
		return
	}
	if why != "" {
		c.log.Warn("cluster: relay to a session that moved ended", "client_id", client, "peer", st.to, "why", why)
	}
	if queued, _ := c.links.Send(st.to, Item{Kind: itemRelayEnded, Body: appendString(nil, client)}); !queued {
		c.log.Debug("cluster: relay end not sent", "peer", st.to)
	}
}

// relayEnded hears that the node a session moved from stopped relaying to it.
// The session keeps what it took for relayGrace more.
func (c *Cluster) relayEnded(client string) {
	if v, ok := c.movedIn.Load(client); ok {
		mi := v.(*movedIn)
		mi.mu.Lock()
		mi.ended = time.Now()
		mi.mu.Unlock()
	}
}

// abandonMoveIn forgets a session that a register reply announced but that was
// not installed; one already installed (Imported) is kept.
func (c *Cluster) abandonMoveIn(client string) {
	v, ok := c.movedIn.Load(client)
	if !ok {
		return
	}
	mi := v.(*movedIn)
	mi.park.Lock()
	pending := mi.pending
	mi.park.Unlock()
	if pending {
		c.forgetMovedIn(client)
	}
}

// forgetMovedIn stops deduplicating the messages of a session that moved here.
func (c *Cluster) forgetMovedIn(client string) {
	if v, ok := c.movedIn.LoadAndDelete(client); ok {
		c.movedInN.Add(-1)
		c.dropParked(v.(*movedIn))
	}
}

// tickLoop refreshes the netsplit flag, answers the fences that wait for
// route changes which do not change the tree, and ends the relays, fences and
// moves that wait too long.
func (c *Cluster) tickLoop() {
	defer c.wg.Done()
	c.every(100*time.Millisecond, func(now time.Time) {
		c.refreshNetsplit()
		var expired, done []string
		c.relayMu.Lock()
		fences := c.fences
		c.fences = nil
		var alive map[string]bool
		for client, st := range c.relays {
			if now.Sub(st.since) > c.cfg.RelayTimeout {
				expired = append(expired, client)
				continue
			}
			if !st.moved {
				continue
			}
			if alive == nil {
				alive = c.aliveMembers()
			}
			for name := range st.waiting {
				if !alive[name] { // a node that is gone routes nothing
					delete(st.waiting, name)
				}
			}
			if len(st.waiting) == 0 {
				done = append(done, client)
			}
		}
		c.relayMu.Unlock()
		for _, client := range done {
			c.endRelay(client, "")
		}
		for _, f := range fences {
			if now.Sub(f.since) <= c.cfg.RelayTimeout {
				c.parkFence(f)
			}
		}
		for _, client := range expired {
			c.endRelay(client, "some nodes did not confirm they route to the session's new node in time")
		}
		c.movedIn.Range(func(k, v any) bool {
			mi := v.(*movedIn)
			mi.mu.Lock()
			ended := mi.ended
			mi.mu.Unlock()
			if !ended.IsZero() && now.Sub(ended) > relayGrace || now.Sub(mi.since) > c.cfg.RelayTimeout+relayGrace {
				c.forgetMovedIn(k.(string))
			}
			return true
		})
	})
}

// aliveMembers returns the names of the members that are alive, this node
// included.
func (c *Cluster) aliveMembers() map[string]bool {
	alive := map[string]bool{c.node.Name(): true}
	for _, m := range c.node.Members() {
		if m.State == StateAlive {
			alive[m.Name] = true
		}
	}
	return alive
}

// onUpdate sends a change of this node's filters to every peer over its link,
// ahead of gossip: the link is faster and ordered with what follows on it (a
// fence, a message). Called under the Node's lock.
func (c *Cluster) onUpdate(b []byte) {
	c.links.SendAll(Item{Kind: itemRoute, Body: b})
}

// syncWait is a Sync call waiting for the nodes to route by v.
type syncWait struct {
	v       version
	waiting map[string]struct{}
	done    chan struct{}
	once    sync.Once
}

func (w *syncWait) close() { w.once.Do(func() { close(w.done) }) }

// Sync implements broker.Cluster: it returns once every node this node has a
// working link to routes by this node's filters as they are now, or after
// RegisterTimeout, so that a SUBACK means that the subscription takes messages
// published anywhere in the cluster. Unreachable nodes learn the filters when
// the netsplit heals.
func (c *Cluster) Sync() {
	up, _ := c.reachable()
	if len(up) == 0 {
		return
	}
	w := &syncWait{v: c.node.version(), waiting: make(map[string]struct{}, len(up)), done: make(chan struct{})}
	for _, name := range up {
		w.waiting[name] = struct{}{}
	}
	c.relayMu.Lock()
	c.syncs = append(c.syncs, w)
	c.relayMu.Unlock()
	defer func() {
		c.relayMu.Lock()
		c.syncs = slices.DeleteFunc(c.syncs, func(x *syncWait) bool { return x == w })
		c.relayMu.Unlock()
	}()
	body := encodeVersioned(c.node.Name(), w.v)
	for _, name := range up {
		if queued, _ := c.links.Send(name, Item{Kind: itemFence, Body: body}); !queued {
			c.relayMu.Lock()
			delete(w.waiting, name)
			if len(w.waiting) == 0 {
				w.close()
			}
			c.relayMu.Unlock()
		}
	}
	t := time.NewTimer(c.cfg.RegisterTimeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		c.log.Warn("cluster: nodes did not confirm a subscription within the register timeout", "timeout", c.cfg.RegisterTimeout)
	case <-c.ctx.Done():
	}
}
