package cluster

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// AddFilter records one more local subscription to filter, a topic filter as
// subscribed (a shared one as $share/{ShareName}/{filter}). The broker calls it
// when a filter gains its first local subscriber; calls are reference counted,
// and the first one tells the cluster.
func (n *Node) AddFilter(filter string) error {
	if err := mqtt.ValidTopicFilter(filter); err != nil {
		return fmt.Errorf("cluster: filter %q: %w", filter, err)
	}
	if len(filter) > maxFilterLen {
		return fmt.Errorf("cluster: filter longer than %d bytes", maxFilterLen)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.local[filter]++
	if n.local[filter] == 1 {
		n.broadcastLocked(opAdd, filter)
	}
	return nil
}

// RemoveFilter undoes one AddFilter of filter; the last one tells the cluster.
// A filter that was not added is ignored.
func (n *Node) RemoveFilter(filter string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.local[filter]
	if !ok {
		return
	}
	if c > 1 {
		n.local[filter] = c - 1
		return
	}
	delete(n.local, filter)
	n.broadcastLocked(opRemove, filter)
}

// broadcastLocked numbers a change of the local filters and queues it for
// gossip. n.mu is held, so changes are numbered in the order they happen.
func (n *Node) broadcastLocked(op byte, filter string) {
	n.seq++
	b := encodeUpdate(update{origin: n.name, incarnation: n.incarnation, seq: n.seq, op: op, filter: filter})
	n.queue.QueueBroadcast(broadcast(b))
	if n.onUpdate != nil {
		n.onUpdate(b)
	}
}

// LocalFilters returns this node's filters, sorted.
func (n *Node) LocalFilters() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.local))
}

// NodesFor returns the names, sorted, of the other nodes that have at least one
// filter matching topic, a topic name as PUBLISH carries it; shared
// subscriptions count by their filter part. It goes through every filter of
// the table, for operators and tests: messages are routed by the broker's tree,
// where the other nodes subscribe (Options.OnRoute).
func (n *Node) NodesFor(topic string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, r := range n.remotes {
		for f := range r.filters {
			if _, filter, ok := mqtt.SplitShared(f); ok {
				f = filter
			}
			if mqtt.Match(f, topic) {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// RemoteFilters returns the filters this node holds for the named other node,
// sorted; nil when it holds none.
func (n *Node) RemoteFilters(name string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.remotes[name]
	if r == nil || len(r.filters) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(r.filters))
}

// applyUpdateLocked applies an update from another node in sequence order,
// keeping early ones until the gap before them closes. n.mu is held.
func (n *Node) applyUpdateLocked(u update) {
	if u.origin == n.name {
		return
	}
	if p := n.peers[u.origin]; p == nil || p.state != StateAlive {
		return // not a member, or gone: a late update must not bring routes back
	}
	r := n.remotes[u.origin]
	if r == nil {
		r = &remote{filters: make(map[string]struct{})}
		n.remotes[u.origin] = r
	}
	switch {
	case u.incarnation < r.incarnation:
		return // from before the origin restarted
	case u.incarnation > r.incarnation:
		// The origin restarted. It starts with no filters, so its first update
		// can be applied; after a later one, wait for its full state.
		r.incarnation, r.seq, r.pending = u.incarnation, 0, nil
		r.synced = u.seq == 1
		if r.synced {
			n.replaceLocked(u.origin, r, nil)
		}
	}
	if u.seq <= r.seq {
		return // seen
	}
	if u.seq > r.seq+1 || !r.synced {
		if r.pending == nil {
			r.pending = make(map[uint64]update)
		}
		if len(r.pending) < maxPending {
			r.pending[u.seq] = u
		}
		return
	}
	n.applyOpLocked(u.origin, r, u)
	n.drainLocked(u.origin, r)
}

// drainLocked applies the pending updates that now follow r.seq.
func (n *Node) drainLocked(name string, r *remote) {
	for seq := range r.pending {
		if seq <= r.seq {
			delete(r.pending, seq)
		}
	}
	for {
		u, ok := r.pending[r.seq+1]
		if !ok {
			return
		}
		delete(r.pending, u.seq)
		n.applyOpLocked(name, r, u)
	}
}

func (n *Node) applyOpLocked(name string, r *remote, u update) {
	r.seq = u.seq
	switch u.op {
	case opAdd:
		if _, ok := r.filters[u.filter]; !ok {
			n.addRouteLocked(name, r, u.filter)
		}
	case opRemove:
		if _, ok := r.filters[u.filter]; ok {
			n.removeRouteLocked(name, r, u.filter)
		}
	}
}

// applyStateLocked takes another node's full state when it is newer than what
// this node holds. n.mu is held.
func (n *Node) applyStateLocked(s nodeState) {
	if s.name == n.name {
		return
	}
	if p := n.peers[s.name]; p == nil || p.state != StateAlive {
		return
	}
	r := n.remotes[s.name]
	if r == nil {
		r = &remote{filters: make(map[string]struct{})}
		n.remotes[s.name] = r
	}
	switch {
	case s.incarnation > r.incarnation:
		r.pending = nil
	case s.incarnation == r.incarnation && (s.seq > r.seq || !r.synced):
	default:
		return
	}
	r.incarnation, r.seq, r.synced = s.incarnation, s.seq, true
	n.replaceLocked(s.name, r, s.filters)
	n.drainLocked(s.name, r)
}

// replaceLocked makes filters the named node's set, changing only the
// difference in the routing table.
func (n *Node) replaceLocked(name string, r *remote, filters []string) {
	want := make(map[string]struct{}, len(filters))
	for _, f := range filters {
		want[f] = struct{}{}
	}
	for f := range r.filters {
		if _, ok := want[f]; !ok {
			n.removeRouteLocked(name, r, f)
		}
	}
	for f := range want {
		if _, ok := r.filters[f]; !ok {
			n.addRouteLocked(name, r, f)
		}
	}
}

// addRouteLocked records that the named node has subscribers for filter and
// tells Options.OnRoute. n.mu is held.
func (n *Node) addRouteLocked(name string, r *remote, filter string) {
	if err := mqtt.ValidTopicFilter(filter); err != nil {
		n.logger.Warn("cluster: dropped a route", "peer", name, "filter", filter, "error", err)
		return
	}
	r.filters[filter] = struct{}{}
	if n.onRoute != nil {
		n.onRoute(name, filter, true, r.incarnation, r.seq)
	}
}

// removeRouteLocked undoes addRouteLocked. n.mu is held.
func (n *Node) removeRouteLocked(name string, r *remote, filter string) {
	delete(r.filters, filter)
	if n.onRoute != nil {
		n.onRoute(name, filter, false, r.incarnation, r.seq)
	}
}

// dropRoutesLocked forgets everything about the named node's filters.
func (n *Node) dropRoutesLocked(name string) {
	r, ok := n.remotes[name]
	if !ok {
		return
	}
	for f := range r.filters {
		n.removeRouteLocked(name, r, f)
	}
	delete(n.remotes, name)
}

// stateLocked is the full table: this node's filters and every synced remote
// set, for push/pull.
func (n *Node) stateLocked() []nodeState {
	out := make([]nodeState, 0, 1+len(n.remotes))
	out = append(out, nodeState{
		name: n.name, incarnation: n.incarnation, seq: n.seq,
		filters: slices.Collect(maps.Keys(n.local)),
	})
	for name, r := range n.remotes {
		if !r.synced {
			continue
		}
		out = append(out, nodeState{
			name: name, incarnation: r.incarnation, seq: r.seq,
			filters: slices.Collect(maps.Keys(r.filters)),
		})
	}
	return out
}

// broadcast is one queued update. Updates never invalidate each other: each is
// a numbered step.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// delegate is Node as memberlist's Delegate. memberlist calls it from its own
// goroutines, never while holding a lock that Node's methods take.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

// NotifyMsg takes one update from a peer; a malformed one is logged and dropped.
func (d *delegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	if err := n.ApplyUpdate(b); err != nil {
		n.logger.Warn("cluster: dropped a gossip message", "error", err)
	}
}

// ApplyUpdate takes one change of another node's filters, as Options.OnUpdate
// gave it there; an update seen before, by gossip or otherwise, is skipped.
func (n *Node) ApplyUpdate(b []byte) error {
	kind, rest, err := decodeHeader(b)
	if err == nil && kind != kindUpdate {
		err = fmt.Errorf("%w: kind %d in an update", errMalformed, kind)
	}
	var u update
	if err == nil {
		u, err = decodeUpdate(rest)
	}
	if err == nil {
		err = mqtt.ValidTopicFilter(u.filter)
	}
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.applyUpdateLocked(u)
	}
	return nil
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	return encodeState(n.stateLocked())
}

// MergeRemoteState takes a peer's full table; memberlist has merged the peer's
// membership first, so the nodes it names are known.
func (d *delegate) MergeRemoteState(b []byte, join bool) {
	n := (*Node)(d)
	if err := n.ApplyState(b); err != nil {
		n.logger.Warn("cluster: dropped a push/pull state", "error", err)
	}
}

// OwnState returns this node's filters as a full state, as push/pull carries
// it, for ApplyState on a peer.
func (n *Node) OwnState() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return encodeState(n.stateLocked()[:1])
}

// ApplyState takes full states of nodes' filters, as push/pull or OwnState
// makes them; those older than what this node holds are skipped.
func (n *Node) ApplyState(b []byte) error {
	kind, rest, err := decodeHeader(b)
	if err == nil && kind != kindState {
		err = fmt.Errorf("%w: kind %d in a push/pull state", errMalformed, kind)
	}
	var states []nodeState
	if err == nil {
		states, err = decodeState(rest)
	}
	for i := 0; err == nil && i < len(states); i++ {
		for _, f := range states[i].filters {
			if err = mqtt.ValidTopicFilter(f); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	for _, s := range states {
		n.applyStateLocked(s)
	}
	return nil
}

// events is Node as memberlist's EventDelegate. memberlist calls it while
// holding its node lock, so it must not call back into memberlist.
type events Node

func (e *events) NotifyJoin(m *memberlist.Node) { (*Node)(e).setPeer(m, StateAlive) }

func (e *events) NotifyUpdate(m *memberlist.Node) { (*Node)(e).setPeer(m, StateAlive) }

// NotifyLeave hears that a member is gone. memberlist's Node.State is not
// updated on departure, so a leave is told from a failure by MarkLeaving.
func (e *events) NotifyLeave(m *memberlist.Node) {
	(*Node)(e).setPeer(m, StateDead)
}

// MarkLeaving records that the named member is about to leave: when it goes,
// it has left rather than failed, and its routes go at once.
func (n *Node) MarkLeaving(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[name]; p != nil {
		p.leaving = true
	}
}

// setPeer records a member's state. A node that left loses its routes at once;
// one that died loses them after the dead-node grace unless it returns first.
// Either is forgotten from Members after the grace.
func (n *Node) setPeer(m *memberlist.Node, st MemberState) {
	link, err := decodeMeta(m.Meta)
	if err != nil && len(m.Meta) > 0 {
		n.logger.Warn("cluster: bad node metadata", "peer", m.Name, "error", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	p := n.peers[m.Name]
	if p == nil {
		p = &peer{}
		n.peers[m.Name] = p
	}
	p.gossipAddr = m.Address()
	p.linkAddr = link
	switch {
	case st == StateAlive:
		p.leaving = false
	case st == StateDead && p.leaving:
		st = StateLeft
	}
	p.state = st
	p.gen++
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if n.onMembers != nil {
		n.onMembers()
	}
	if m.Name == n.name || st == StateAlive {
		return
	}
	if st == StateLeft {
		n.dropRoutesLocked(m.Name)
	}
	name, gen := m.Name, p.gen
	p.timer = time.AfterFunc(n.grace, func() { n.expire(name, gen) })
}

// expire ends the grace of a dead or left node, unless it changed state since.
func (n *Node) expire(name string, gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[name]
	if n.closed || p == nil || p.gen != gen {
		return
	}
	delete(n.peers, name)
	n.dropRoutesLocked(name)
	if n.onMembers != nil {
		n.onMembers()
	}
}

// version returns the version of this node's own routes: the changes numbered
// so far.
func (n *Node) version() version {
	n.mu.Lock()
	defer n.mu.Unlock()
	return version{incarnation: n.incarnation, seq: n.seq}
}

// hasVersion reports whether the routes this node holds for the named node
// include that node's changes up to v.
func (n *Node) hasVersion(name string, v version) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.remotes[name]
	return r != nil && r.synced && version{incarnation: r.incarnation, seq: r.seq}.covers(v)
}
