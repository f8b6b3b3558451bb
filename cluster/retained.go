package cluster

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Retained messages are replicated to every node. Each change of a topic's
// retained message carries a stamp (time, node); a node applies a change only
// when its stamp is after the one it holds for the topic, so every node ends
// with the last writer's message whatever order changes arrive in. A cleared
// message leaves a tombstone for TombstoneTTL, so that a node that missed the
// clearing does not bring the message back. When a link to a peer comes up, the
// node sends the peer every retained message and tombstone it holds
// (anti-entropy): a node that joins or heals gets what it missed.

// loadStamps reads the stamps kept in the store.
func (c *Cluster) loadStamps() error {
	if c.store == nil {
		return nil
	}
	now := time.Now()
	return c.store.Scan(prefixStamp, func(key string, v []byte) error {
		if len(v) < 9 {
			c.store.Delete(key)
			return nil
		}
		e := stampEntry{stamp: stamp{time: int64(binary.BigEndian.Uint64(v)), node: string(v[9:])}, cleared: v[8]&1 != 0}
		if e.cleared {
			e.at = now
		}
		c.stamps[strings.TrimPrefix(key, prefixStamp)] = e
		return nil
	})
}

// saveStampLocked writes a topic's stamp to the store. c.retMu is held.
func (c *Cluster) saveStampLocked(topic string, e stampEntry) {
	if c.store == nil {
		return
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 9+len(e.stamp.node)), uint64(e.stamp.time))
	var flags byte
	if e.cleared {
		flags = 1
	}
	c.store.Set(prefixStamp+topic, append(append(v, flags), e.stamp.node...))
}

// Retained stamps a local change of the retained message of m.Topic and sends
// it to every other node. It implements broker.Cluster.
func (c *Cluster) Retained(m *mqtt.Message) {
	rc := retainChange{topic: m.Topic}
	if len(m.Payload) > 0 {
		rc.msg = m
	}
	c.retMu.Lock()
	now := time.Now().UnixNano()
	if old, ok := c.stamps[m.Topic]; ok && old.stamp.time >= now {
		now = old.stamp.time + 1 // a clock behind the last change still comes after it
	}
	rc.stamp = stamp{time: now, node: c.node.Name()}
	e := stampEntry{stamp: rc.stamp, cleared: rc.msg == nil}
	if e.cleared {
		e.at = time.Now()
	}
	c.stamps[m.Topic] = e
	c.saveStampLocked(m.Topic, e)
	c.retMu.Unlock()

	body, err := encodeRetain(rc)
	if err != nil {
		c.log.Warn("cluster: retained message not replicated", "topic", m.Topic, "err", err)
		return
	}
	for _, p := range c.node.Members() {
		if p.Name != c.node.Name() && p.State != StateLeft {
			if queued, _ := c.links.Send(p.Name, Item{Kind: itemRetain, Body: body, Durable: true}); !queued {
				c.forwardDrops.Add(1)
			}
		}
	}
}

// applyRetain applies a change from another node when it is the latest for its
// topic, and reports whether the store was written.
func (c *Cluster) applyRetain(rc retainChange) bool {
	c.retMu.Lock()
	defer c.retMu.Unlock()
	old, ok := c.stamps[rc.topic]
	if ok && !rc.stamp.after(old.stamp) {
		return false
	}
	if !ok && rc.msg == nil {
		if _, held := c.b.Retained().Get(rc.topic); !held && rc.stamp.time < time.Now().Add(-c.cfg.TombstoneTTL).UnixNano() {
			return false // an old tombstone for a topic this node never had
		}
	}
	ret := c.b.Retained()
	var err error
	if rc.msg != nil {
		err = ret.Set(rc.msg, time.Now())
	} else {
		_, err = ret.Delete(rc.topic)
	}
	if err != nil {
		c.log.Warn("cluster: retained message from a peer not stored", "topic", rc.topic, "err", err)
		return false
	}
	e := stampEntry{stamp: rc.stamp, cleared: rc.msg == nil}
	if e.cleared {
		e.at = time.Now()
	}
	c.stamps[rc.topic] = e
	c.saveStampLocked(rc.topic, e)
	c.retainApplied.Add(1)
	return c.store != nil
}

// linkUp starts the anti-entropy exchange with a peer whose link came up: this
// node's filters, retained messages and tombstones go to it.
func (c *Cluster) linkUp(peer string) {
	c.refreshNetsplit()
	// The peer gets this node's filters at once, not at the next push/pull.
	c.links.Send(peer, Item{Kind: itemRouteState, Body: c.node.OwnState()})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.syncRetained(peer)
	}()
}

// syncRetained sends peer every retained message and tombstone, waiting for
// room in the link's queue rather than dropping.
func (c *Cluster) syncRetained(peer string) {
	var changes []retainChange
	c.retMu.Lock()
	for topic, e := range c.stamps {
		if e.cleared {
			changes = append(changes, retainChange{stamp: e.stamp, topic: topic})
		}
	}
	c.retMu.Unlock()
	c.b.Retained().Range(func(m *mqtt.Message) bool {
		if !strings.HasPrefix(m.Topic, "$SYS") {
			changes = append(changes, retainChange{topic: m.Topic, msg: m})
		}
		return true
	})
	c.retMu.Lock()
	for i := range changes {
		if ch := &changes[i]; ch.msg != nil {
			ch.stamp = c.stamps[ch.topic].stamp // zero for messages from before clustering
		}
	}
	c.retMu.Unlock()
	sent := 0
	for _, ch := range changes {
		body, err := encodeRetain(ch)
		if err != nil {
			continue
		}
		for {
			if queued, _ := c.links.Send(peer, Item{Kind: itemRetain, Body: body}); queued {
				sent++
				break
			}
			if !c.links.Connected(peer) {
				c.log.Debug("cluster: retained sync cut short", "peer", peer, "sent", sent)
				return
			}
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	c.log.Debug("cluster: retained messages sent to peer", "peer", peer, "messages", sent)
}

// sweepLoop forgets tombstones older than TombstoneTTL.
func (c *Cluster) sweepLoop() {
	defer c.wg.Done()
	c.every(time.Minute, func(now time.Time) {
		c.retMu.Lock()
		defer c.retMu.Unlock()
		for topic, e := range c.stamps {
			if e.cleared && now.Sub(e.at) > c.cfg.TombstoneTTL {
				delete(c.stamps, topic)
				if c.store != nil {
					c.store.Delete(prefixStamp + topic)
				}
			}
		}
	})
}
