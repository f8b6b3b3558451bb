package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/avocet-mqtt/avocet/session"
)

// ErrNetsplit refuses what a node does not accept while some member of the
// cluster is unreachable.
var ErrNetsplit = errors.New("cluster: netsplit: a member is unreachable")

// Netsplit reports whether some member of the cluster is unreachable from this
// node: detected failed (and not yet forgotten), or alive without a working
// link.
func (c *Cluster) Netsplit() bool {
	_, unreachable := c.reachable()
	return len(unreachable) > 0
}

// reachable splits the other members into those with a working link and the
// rest. Members that left are neither.
func (c *Cluster) reachable() (up, down []string) {
	for _, m := range c.node.Members() {
		if m.Name == c.node.Name() || m.State == StateLeft {
			continue
		}
		if m.State == StateAlive && c.links.Connected(m.Name) {
			up = append(up, m.Name)
		} else {
			down = append(down, m.Name)
		}
	}
	return up, down
}

// PublishAllowed implements broker.Cluster: false during a netsplit unless
// AllowPublishDuringNetsplit. It is called for every PUBLISH and reads a flag
// that refreshNetsplit keeps.
func (c *Cluster) PublishAllowed() bool {
	return c.cfg.AllowPublishDuringNetsplit || !c.split.Load()
}

// refreshNetsplit updates the flag PublishAllowed reads: on membership
// changes, when a link comes up, and every tick of tickLoop, which notices the
// links that went down.
func (c *Cluster) refreshNetsplit() {
	c.split.Store(c.Netsplit())
}

// Register implements broker.Cluster: it asks every other node to end client
// id's connection and session and, unless cleanStart, to send the session here.
// It fails during a netsplit unless AllowRegisterDuringNetsplit, and when a
// reachable node does not answer within RegisterTimeout.
func (c *Cluster) Register(id string, cleanStart bool) (records []session.Record, err error) {
	up, down := c.reachable()
	if len(down) > 0 && !c.cfg.AllowRegisterDuringNetsplit {
		return nil, fmt.Errorf("%w: %v", ErrNetsplit, down)
	}
	if len(up) == 0 {
		return nil, nil
	}
	defer func() {
		if records == nil || err != nil {
			c.abandonMoveIn(id)
		}
	}()
	ch := make(chan registerReply, len(up))
	c.reqMu.Lock()
	c.reqID++
	rid := c.reqID
	c.pending[rid] = pendingRegister{ch: ch, client: id}
	c.reqMu.Unlock()
	defer func() {
		c.reqMu.Lock()
		delete(c.pending, rid)
		c.reqMu.Unlock()
	}()
	body := encodeRegister(rid, !cleanStart, id)
	asked := 0
	for _, name := range up {
		if queued, _ := c.links.Send(name, Item{Kind: itemRegister, Body: body}); queued {
			asked++
		} else if !c.cfg.AllowRegisterDuringNetsplit {
			return nil, fmt.Errorf("cluster: register %q: node %s unreachable", id, name)
		}
	}
	timeout := time.NewTimer(c.cfg.RegisterTimeout)
	defer timeout.Stop()
	for ; asked > 0; asked-- {
		select {
		case rep := <-ch:
			if rep.failed && !c.cfg.AllowRegisterDuringNetsplit {
				return nil, fmt.Errorf("cluster: register %q: a node failed to hand over the session", id)
			}
			if rep.records != nil && records == nil {
				records = rep.records
			}
		case <-timeout.C:
			if c.cfg.AllowRegisterDuringNetsplit {
				return records, nil
			}
			return nil, fmt.Errorf("cluster: register %q: %d node(s) did not answer within %s", id, asked, c.cfg.RegisterTimeout)
		case <-c.ctx.Done():
			return nil, fmt.Errorf("cluster: register %q: %w", id, c.ctx.Err())
		}
	}
	if records != nil {
		c.sessionsMoved.Add(1)
	}
	return records, nil
}

// pendingRegister is a register request waiting for the other nodes' replies.
type pendingRegister struct {
	ch     chan registerReply
	client string
}

// answerRegister ends client id's connection and session here for the node
// from, and sends it the session when keep.
func (c *Cluster) answerRegister(from string, rid uint64, keep bool, id string) {
	records, found, ready := c.exportForMove(from, id, keep)
	defer ready() // relays to the session go after the reply
	rep := registerReply{found: found, records: records}
	body := encodeRegisterReply(rid, rep)
	if queued, _ := c.links.Send(from, Item{Kind: itemRegisterReply, Body: body}); !queued {
		c.log.Error("cluster: session of a client that moved could not be sent; it is lost",
			"client_id", id, "peer", from, "records", len(records))
	}
}

// handover sends every offline session of this node to the other nodes in
// turn, before the node leaves: their clients find them when they reconnect
// anywhere. The node relays their messages until the other nodes route them
// to the sessions' new nodes. It stops at timeout.
func (c *Cluster) handover(timeout time.Duration) {
	up, _ := c.reachable()
	if len(up) == 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	moved := 0
	for i, s := range c.b.Sessions() {
		if s.Online || time.Now().After(deadline) {
			continue
		}
		peer := up[i%len(up)]
		records, _, ready := c.exportForMove(peer, s.ClientID, true)
		if records == nil {
			ready()
			continue
		}
		queued, _ := c.links.Send(peer, Item{Kind: itemHandover, Body: encodeHandover(records), Durable: true})
		ready()
		if !queued {
			c.log.Error("cluster: session not handed over; it is lost", "client_id", s.ClientID, "peer", peer)
			c.endRelay(s.ClientID, "")
			continue
		}
		moved++
	}
	// The relays end once every node routes the sessions' messages to their
	// new nodes; then what was relayed is acknowledged.
	for time.Now().Before(deadline) && (c.unacked() > 0 || c.relayCount() > 0) {
		time.Sleep(20 * time.Millisecond)
	}
	c.log.Info("cluster: sessions handed over", "sessions", moved)
}

// unacked counts what this node sent its peers that they have not acknowledged.
func (c *Cluster) unacked() int {
	n := 0
	for _, s := range c.links.Stats() {
		n += s.Queued + s.Unacked
	}
	return n
}

// Status is a view of this node's cluster for operators.
type Status struct {
	Node     string      `json:"node"`
	Netsplit bool        `json:"netsplit"`
	Members  []Member    `json:"members"`
	Links    []LinkStats `json:"links"`
	Filters  int         `json:"filters"` // this node's topic filters in the routing table

	Forwarded     int64 `json:"forwarded"`      // messages queued for other nodes
	ForwardDrops  int64 `json:"forward_drops"`  // messages not queued: no link, a full queue
	Received      int64 `json:"received"`       // messages from other nodes
	RetainApplied int64 `json:"retain_applied"` // retained changes from other nodes applied
	SessionsMoved int64 `json:"sessions_moved"` // sessions that came here from other nodes
	Relayed       int64 `json:"relayed"`        // messages relayed to sessions that moved away
	Relays        int   `json:"relays"`         // sessions that moved away and are relayed to now
}

// Status returns the node's view of the cluster.
func (c *Cluster) Status() Status {
	members := c.node.Members()
	for i := range members {
		if m := &members[i]; m.State == StateAlive && m.Name != c.node.Name() && !c.links.Connected(m.Name) {
			m.State = StateSuspect
		}
	}
	return Status{
		Node: c.node.Name(), Netsplit: c.Netsplit(), Members: members, Links: c.links.Stats(),
		Filters:   len(c.node.LocalFilters()),
		Forwarded: c.forwarded.Load(), ForwardDrops: c.forwardDrops.Load(), Received: c.received.Load(),
		RetainApplied: c.retainApplied.Load(), SessionsMoved: c.sessionsMoved.Load(),
		Relayed: c.relayed.Load(), Relays: c.relayCount(),
	}
}
