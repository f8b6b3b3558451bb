package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// Cluster is what the broker asks of the other nodes of a cluster; package
// cluster implements it. The other nodes take part in routing as receivers whose
// subscriber names begin with NodePrefix: they subscribe to the filters their
// clients hold, and a message routed to one is forwarded to that node, which
// hands it to RouteFromNode.
type Cluster interface {
	// FilterAdded is called when a local subscriber (a session, or a receiver that
	// is not a node) gains a subscription to filter, as subscribed;
	// FilterRemoved when it loses one. They are called with the subscription
	// tree's lock held, in the order of the changes, and must not call the broker.
	FilterAdded(filter string)
	FilterRemoved(filter string)
	// Register is called when client id connects, before its session is
	// attached. It ends the client's connection and session on every other node
	// and, when cleanStart is false, returns the records of the session one of
	// them had (see session.Snapshot), or nil when none had one. An error refuses
	// the CONNECT with Server unavailable.
	Register(id string, cleanStart bool) ([]session.Record, error)
	// PublishAllowed reports whether client publishes are accepted now; false
	// during a netsplit when the cluster is set not to accept them.
	PublishAllowed() bool
	// Retained is called after a local publish changed the retained message of
	// m.Topic: set it, or cleared it when the payload is empty.
	Retained(m *mqtt.Message)
	// Forward sends m once to each of nodes, the other nodes with a matching
	// subscription, numbered n among the messages routed here (see MsgRef).
	// It reports whether a store was written (wait for a Barrier before
	// acknowledging) and what to keep in MsgRef.Sent for the relays of m.
	Forward(m *mqtt.Message, n uint64, nodes []string) (stored bool, sent any)
	// Relay sends m to the session of client on the node it moved to, as
	// delivered here with qos, retain, subscription identifiers ids and, for a
	// shared subscription, group. ref identifies m, so that the session takes
	// it once whichever way it comes. It reports whether a store was written.
	Relay(client string, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string, ref MsgRef) (stored bool)
	// Relaying reports whether messages for the session of client are relayed
	// to the node it moved to.
	Relaying(client string) bool
	// MovedIn reports whether the session of client moved here from a node
	// that may still relay messages to it. It is called for every local
	// delivery and must be quick.
	MovedIn(client string) bool
	// FirstDelivery reports whether the message ref is new to the session of
	// client, which moved here (MovedIn), and records it: a message may come
	// both directly and relayed by the node the session left.
	FirstDelivery(client string, ref MsgRef) bool
	// Imported is called once the session of client, exported by another node
	// for Register, is installed here.
	Imported(client string)
	// Sync is called after a SUBSCRIBE changed the local subscriptions, before
	// the SUBACK: it returns once the other nodes route by them (or gives up
	// after a while), so that what is published anywhere after the SUBACK
	// reaches the new subscriptions.
	Sync()
}

// MsgRef identifies a message routed in a cluster: the node it was published
// on (empty for this one) and its number among the messages routed there. N
// is 0 for a message that is not numbered.
type MsgRef struct {
	Node string
	N    uint64
	// Sent is the cluster's record of the nodes the message was forwarded to
	// by the node it comes from; opaque to the broker.
	Sent any
}

// GroupReceiver is a Receiver that is told which shared subscription a message
// was chosen for: nodes of a cluster implement it, so that the node receiving
// the message gives it to one of its own members of that group only.
type GroupReceiver interface {
	Receiver
	// DeliverGroup is Deliver for the shared subscription group, in the form
	// $share/{ShareName}/{filter}.
	DeliverGroup(m *mqtt.Message, qos mqtt.QoS, retain bool, group string) (stored bool)
}

// errNetsplit closes the connection of a 3.x client whose QoS 1 or 2 PUBLISH is
// refused during a netsplit: 3.x cannot refuse it, and acknowledging it would
// lose it; the client sends it again when it reconnects.
var errNetsplit = errors.New("publish refused during a cluster netsplit")

// clusterRef holds the broker's Cluster for an atomic pointer.
type clusterRef struct{ Cluster }

// clusterOf returns the broker's Cluster; nil for a single node.
func (b *Broker) clusterOf() Cluster {
	if r := b.cluster.Load(); r != nil {
		return r.Cluster
	}
	return nil
}

// SetCluster makes the broker one node of a cluster. Call it once, before
// clients connect; the subscriptions the broker already holds (loaded sessions)
// are announced through c.FilterAdded at once.
func (b *Broker) SetCluster(c Cluster) {
	b.cluster.Store(&clusterRef{c})
	b.tree.SetObserver(func(filter string, added bool) {
		if added {
			c.FilterAdded(filter)
		} else {
			c.FilterRemoved(filter)
		}
	})
}

// RouteFromNode routes a message forwarded by another node of the cluster to the
// local subscribers, never back to a node: it is not stored as retained (the
// cluster replicates retained messages on their own). With group empty it goes
// to every matching local subscriber but the members of shared subscriptions,
// which the publishing node served; otherwise only to one local member of the
// shared subscription group, $share/{ShareName}/{filter}, the publishing node
// chose this node for. ref identifies the message. It returns the number of
// local subscribers it went to and whether a session store was written (wait
// for a Barrier before acknowledging).
func (b *Broker) RouteFromNode(m *mqtt.Message, group string, ref MsgRef) (n int, stored bool) {
	// ref.Sent is for relays only: the identity compared between deliveries is
	// the node and number.
	res := b.matchPool.Get().(*MatchResult)
	defer b.matchPool.Put(res)
	b.tree.Match(m.Topic, m.Origin, res)
	cl := b.clusterOf()
	if group == "" {
		for i := range res.Recipients {
			r := &res.Recipients[i]
			qos, retain := min(m.QoS, r.QoS), r.RetainAsPublished && m.Retain
			var ok, st bool
			switch {
			case IsNode(r.Subscriber):
				continue
			case IsMoved(r.Subscriber):
				if cl == nil {
					continue
				}
				ok, st = true, cl.Relay(r.Subscriber[len(MovedPrefix):], m, qos, retain, r.SubscriptionIDs, "", ref)
			default:
				ok, st = b.deliver(r.Subscriber, m, qos, retain, r.SubscriptionIDs, "", ref, nil)
			}
			if ok {
				n++
			}
			stored = stored || st
		}
		return n, stored
	}
	for i := range res.Groups {
		g := &res.Groups[i]
		if mqtt.SharePrefix+g.Group+"/"+g.Filter != group {
			continue
		}
		mem, ok := b.pickMember(g, true)
		if !ok {
			continue
		}
		ok, st := b.deliverMember(cl, mem, m, group, ref)
		if ok {
			n++
		}
		stored = stored || st
	}
	return n, stored
}

// DeliverRelayed gives the session of client a message relayed by the node the
// session moved from, as that node matched it: with qos, retain, subscription
// identifiers ids and, for a shared subscription, group; ref identifies it. It
// reports whether the session was found and whether its store was written.
func (b *Broker) DeliverRelayed(client string, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string, ref MsgRef) (ok, stored bool) {
	b.mu.RLock()
	cs := b.sessions[client]
	b.mu.RUnlock()
	if cs == nil {
		return false, false
	}
	if cl := b.clusterOf(); cl != nil && !cl.FirstDelivery(client, ref) {
		return true, false
	}
	return cs.deliver(b, m, qos, retain, ids, group, ref)
}

// EndRelay removes the relay that ExportSession left for client: its
// subscriptions no longer count here.
func (b *Broker) EndRelay(client string) {
	b.tree.UnsubscribeAll(MovedPrefix + client)
}

// ExportSession ends client id's connection on this node, if any, and its
// session, for the client that connects on another node. With keep, it returns
// the records of the session (nil when there is none, or it ends with its
// connection) for the other node to restore with ImportSession; otherwise the
// session ends here as it would for a clean start, its will published. found
// reports whether there was a session.
//
// With relay, the subscriptions of a session that moves stay in the tree under
// MovedPrefix+id, so that the node keeps routing what they match until the
// other nodes route it to the session's new node: the broker hands it to
// Cluster.Relay. EndRelay removes them.
func (b *Broker) ExportSession(id string, keep, relay bool) (records []session.Record, found bool) {
	for {
		b.mu.Lock()
		cs := b.sessions[id]
		if cs == nil {
			b.mu.Unlock()
			return nil, found
		}
		found = true
		if c := cs.conn.Load(); c != nil {
			b.mu.Unlock()
			c.takeOver()
			continue
		}
		if !keep || cs.s.Expiry() == 0 {
			if cs.will != nil {
				b.publishWillLocked(cs)
			}
			b.endSessionLocked(cs, false)
			b.mu.Unlock()
			return nil, true
		}
		// The session moves: a delayed will is not sent, as for a session resumed
		// here [MQTT-3.1.3-9]; its shared subscription messages go with it.
		var subs []session.SubscriptionRecord
		held := b.tree.Subscriptions(id)
		for _, sub := range held {
			o := sub.Options
			subs = append(subs, session.SubscriptionRecord{Filter: sub.Filter, SubscriptionID: o.SubscriptionID,
				Options: mqtt.Subscription{QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished,
					RetainHandling: o.RetainHandling}})
		}
		records = cs.s.Snapshot(subs, time.Now())
		if relay {
			for _, sub := range held {
				if _, err := b.tree.Subscribe(MovedPrefix+id, sub.Filter, sub.Options); err != nil {
					b.log.Warn("subscription of a moved session not relayed", "client_id", id, "filter", sub.Filter, "err", err)
				}
			}
		}
		cs.will = nil
		b.dropSessionLocked(cs)
		cs.s.Free()
		b.mu.Unlock()
		b.log.Info("session moved to another node", "client_id", id, "records", len(records))
		return records, true
	}
}

// ImportSession installs, offline, a session that another node exported with
// ExportSession, replacing any session of the same client here, and returns
// its client identifier. The client's connection attaches to it next. It
// returns once a persistent session is in the store: the other node no longer
// has it.
func (b *Broker) ImportSession(records []session.Record) (string, error) {
	id, err := b.importSession(records)
	if err != nil {
		return "", err
	}
	if st := b.opts.SessionStore; st != nil {
		done := make(chan error, 1)
		st.Barrier(func(err error) { done <- err })
		if err := <-done; err != nil {
			return "", fmt.Errorf("broker: import session: store: %w", err)
		}
	}
	return id, nil
}

func (b *Broker) importSession(records []session.Record) (string, error) {
	now := time.Now()
	l, err := session.Restore(records, b.opts.SessionStore, b.sessionLimits(), now)
	if err != nil {
		return "", fmt.Errorf("broker: import session: %w", err)
	}
	id := l.Session.ID()
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.sessions[id]; old != nil {
		if old.conn.Load() != nil {
			l.Session.Purge()
			l.Session.Free()
			return "", fmt.Errorf("broker: import session %q: the client is connected here", id)
		}
		old.will = nil
		b.endSessionLocked(old, false)
	}
	if _, err := b.installLocked(l, now); err != nil {
		return "", fmt.Errorf("broker: import session: %w", err)
	}
	b.log.Info("session moved from another node", "client_id", id,
		"subscriptions", len(l.Subscriptions), "messages", l.Session.Queued()+l.Session.InflightCount())
	return id, nil
}

// installLocked makes a session read from a store or restored from another node
// one of the broker's, offline, with its subscriptions. It reports false, having
// removed the session, when its expiry has passed. Called with b.mu held.
func (b *Broker) installLocked(l *session.Loaded, now time.Time) (bool, error) {
	s := l.Session
	cs := &clientSession{id: s.ID(), s: s}
	user := s.Username()
	cs.username.Store(&user)
	exp := s.Expiry()
	var left time.Duration
	if exp != session.NeverExpire {
		left = l.Offline.Add(time.Duration(exp) * time.Second).Sub(now)
		if exp == 0 || left <= 0 {
			for _, sub := range l.Subscriptions {
				s.DeleteSubscription(sub.Filter)
			}
			s.Purge()
			return false, nil
		}
	}
	for _, sub := range l.Subscriptions {
		o := sub.Options
		opts := SubscriptionOptions{QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished,
			RetainHandling: o.RetainHandling, SubscriptionID: sub.SubscriptionID}
		if _, err := b.tree.Subscribe(s.ID(), sub.Filter, opts); err != nil {
			return false, fmt.Errorf("session %q: subscription %q: %w", s.ID(), sub.Filter, err)
		}
	}
	s.SaveMeta(l.Offline)
	b.sessions[s.ID()] = cs
	if exp != session.NeverExpire {
		b.expireLocked(cs, left)
	}
	return true, nil
}
