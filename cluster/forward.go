package cluster

import (
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// nodeReceiver is another node as a subscriber in the broker's tree: what is
// routed to it is forwarded over its link.
type nodeReceiver struct {
	c    *Cluster
	name string
}

// nodeOptions are the options of a node's subscriptions: the message goes with
// its own QoS and retain flag, and the node applies its subscribers' options.
var nodeOptions = broker.SubscriptionOptions{QoS: mqtt.ExactlyOnce, RetainAsPublished: true}

// Deliver forwards m to the node. It implements broker.Receiver.
func (r *nodeReceiver) Deliver(m *mqtt.Message, _ mqtt.QoS, _ bool, _ []uint32) bool {
	return r.c.forward(r.name, m, "")
}

// DeliverGroup forwards m to the node for one of its members of group. It
// implements broker.GroupReceiver.
func (r *nodeReceiver) DeliverGroup(m *mqtt.Message, _ mqtt.QoS, _ bool, group string) bool {
	return r.c.forward(r.name, m, group)
}

// forward queues m for node and reports whether the store was written.
func (c *Cluster) forward(node string, m *mqtt.Message, group string) (stored bool) {
	if strings.HasPrefix(m.Topic, "$SYS") { // every node has its own
		return false
	}
	return c.sendPublish(m, group, 0, nil, []string{node})
}

// sendPublish encodes m once, for shared subscription group (empty for none),
// numbered n and with the nodes it goes to and their route versions (to), and
// queues it for each of nodes. It reports whether a store was written.
func (c *Cluster) sendPublish(m *mqtt.Message, group string, n uint64, to []sentTo, nodes []string) (stored bool) {
	body, err := encodePublish(m, group, n, to)
	if err != nil {
		c.forwardDrops.Add(int64(len(nodes)))
		c.log.Warn("cluster: message not forwarded", "peers", nodes, "topic", m.Topic, "err", err)
		return false
	}
	for _, node := range nodes {
		queued, st := c.send(node, Item{Kind: itemPublish, Body: body, Durable: m.QoS > mqtt.AtMostOnce})
		if !queued {
			c.forwardDrops.Add(1)
			continue
		}
		c.forwarded.Add(1)
		stored = stored || st
	}
	return stored
}

// onRoute hears the Node's routing table change, under its lock: the change is
// queued for applyLoop, which makes it in the broker's tree.
func (c *Cluster) onRoute(node, filter string, added bool, inc, seq uint64) {
	c.routeMu.Lock()
	c.routeQ = append(c.routeQ, routeChange{node: node, filter: filter, added: added, v: version{inc, seq}})
	c.routeMu.Unlock()
	c.routeCond.Signal()
}

// applyLoop subscribes and unsubscribes the other nodes in the broker's tree, in
// the order the routing table changed.
func (c *Cluster) applyLoop() {
	defer c.wg.Done()
	for {
		c.routeMu.Lock()
		for len(c.routeQ) == 0 && c.ctx.Err() == nil {
			c.routeCond.Wait()
		}
		if c.ctx.Err() != nil {
			c.routeMu.Unlock()
			return
		}
		q := c.routeQ
		c.routeQ = nil
		c.routeMu.Unlock()
		var applied map[string]version
		for _, ch := range q {
			if ch.fence != nil {
				c.fenceDone(ch.fence)
				continue
			}
			if applied == nil {
				applied = maps.Clone(*c.applied.Load())
			}
			applied[ch.node] = ch.v
			id := broker.NodePrefix + ch.node
			if !ch.added {
				c.b.Unsubscribe(id, ch.filter)
				continue
			}
			c.attach(ch.node)
			if _, err := c.b.Subscribe(id, ch.filter, nodeOptions); err != nil {
				c.log.Warn("cluster: route not applied", "peer", ch.node, "filter", ch.filter, "err", err)
			}
		}
		if applied != nil {
			c.applied.Store(&applied)
		}
	}
}

// attach makes the named node a receiver of the broker, once.
func (c *Cluster) attach(name string) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.receivers[name] == nil {
		r := &nodeReceiver{c: c, name: name}
		c.receivers[name] = r
		c.b.AttachReceiver(broker.NodePrefix+name, r)
	}
}

// detach removes the named node as a receiver, with its subscriptions.
func (c *Cluster) detach(name string) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.receivers[name] != nil {
		delete(c.receivers, name)
		c.b.DetachReceiver(broker.NodePrefix + name)
	}
}

// onMembers hears that membership changed, under the Node's lock.
func (c *Cluster) onMembers() {
	select {
	case c.membersCh <- struct{}{}:
	default:
	}
}

// membersLoop keeps a link open to every member that is not gone, and removes
// the receivers of the members the Node forgot.
func (c *Cluster) membersLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.membersCh:
		}
		addrs := make(map[string]string)
		for _, m := range c.node.Members() {
			if m.Name != c.node.Name() && m.State != StateLeft {
				addrs[m.Name] = m.LinkAddr
			}
		}
		c.links.Update(addrs)
		c.refreshNetsplit()
		c.recvMu.Lock()
		var gone []string
		for name := range c.receivers {
			if _, ok := addrs[name]; !ok && c.node.RemoteFilters(name) == nil {
				gone = append(gone, name)
			}
		}
		c.recvMu.Unlock()
		for _, name := range gone {
			c.detach(name)
		}
	}
}

// handle takes one item from a peer's link.
func (c *Cluster) handle(from string, it Item, done func()) {
	switch it.Kind {
	case itemPublish:
		m, group, n, sent, err := decodePublish(it.Body)
		if err != nil {
			c.log.Warn("cluster: dropped a message from a peer", "peer", from, "err", err)
			done()
			return
		}
		c.received.Add(1)
		_, stored := c.b.RouteFromNode(m, group, broker.MsgRef{Node: from, N: n, Sent: sent})
		c.whenDurable(stored, done)
	case itemRelay:
		rl, err := decodeRelay(it.Body)
		if err != nil {
			c.log.Warn("cluster: dropped a relayed message from a peer", "peer", from, "err", err)
			done()
			return
		}
		c.received.Add(1)
		c.takeRelay(from, rl, done)
	case itemMoved, itemFence, itemFenced:
		name, v, err := decodeVersioned(it.Body, "name", max(maxNameLen, maxClientIDLen))
		done()
		if err != nil {
			c.log.Warn("cluster: dropped a session move item", "peer", from, "kind", it.Kind, "err", err)
			return
		}
		switch it.Kind {
		case itemMoved:
			c.moved(from, name, v)
		case itemFence:
			c.parkFence(fenceReq{from: from, node: name, v: v, since: time.Now()})
		default:
			c.fenced(from, name, v)
		}
	case itemRoute, itemRouteState:
		apply := c.node.ApplyUpdate
		if it.Kind == itemRouteState {
			apply = c.node.ApplyState
		}
		err := apply(it.Body)
		done()
		if err != nil {
			c.log.Warn("cluster: dropped a route change", "peer", from, "err", err)
		}
	case itemLeaving:
		done()
		c.node.MarkLeaving(from)
	case itemRelayEnded:
		r := reader{b: it.Body}
		client := r.string("client id", maxClientIDLen)
		done()
		if err := r.end(); err != nil {
			c.log.Warn("cluster: dropped a relay end", "peer", from, "err", err)
			return
		}
		c.relayEnded(client)
	case itemRetain:
		rc, err := decodeRetain(it.Body)
		if err != nil {
			c.log.Warn("cluster: dropped a retained message from a peer", "peer", from, "err", err)
			done()
			return
		}
		c.whenDurable(c.applyRetain(rc), done)
	case itemRegister:
		id, keep, clientID, err := decodeRegister(it.Body)
		done()
		if err != nil {
			c.log.Warn("cluster: dropped a register request", "peer", from, "err", err)
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.answerRegister(from, id, keep, clientID)
		}()
	case itemRegisterReply:
		id, rep, err := decodeRegisterReply(it.Body)
		done()
		if err != nil {
			c.log.Warn("cluster: dropped a register reply", "peer", from, "err", err)
			return
		}
		c.reqMu.Lock()
		pr, ok := c.pending[id]
		if ok && rep.records != nil {
			// Messages relayed for the session follow the reply on this link:
			// they wait for the session from now on.
			c.movingIn(pr.client, from)
		}
		c.reqMu.Unlock()
		if ok {
			rep.from = from
			select {
			case pr.ch <- rep:
			default:
			}
		}
	case itemHandover:
		recs, err := decodeHandover(it.Body)
		client, ok := session.ClientOf(recs)
		if err == nil && !ok {
			err = errors.New("no session record")
		}
		if err == nil {
			// The leaving node relays the session's messages until every node
			// routes them here, as for a session that moves on CONNECT; from
			// the import on, the session takes each message once.
			c.movingIn(client, from)
			_, err = c.b.ImportSession(recs)
		}
		if err != nil {
			c.abandonMoveIn(client)
			c.log.Warn("cluster: session handed over not taken", "peer", from, "err", err)
			done()
			return
		}
		c.sessionsMoved.Add(1)
		c.Imported(client)
		c.whenDurable(true, done)
	default:
		c.log.Warn("cluster: dropped an item of unknown kind", "peer", from, "kind", it.Kind)
		done()
	}
}

// whenDurable calls done once what the broker wrote is durable: at once when
// nothing was written or there is no store.
func (c *Cluster) whenDurable(stored bool, done func()) {
	if !stored || c.store == nil {
		done()
		return
	}
	c.store.Barrier(func(err error) {
		if err != nil {
			c.log.Error("cluster: store write failed for a message from a peer", "err", err)
		}
		done()
	})
}
