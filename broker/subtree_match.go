package broker

import (
	"cmp"
	"slices"
	"strings"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// MatchResult is what Match found for one topic name. The zero value is ready to
// use. A MatchResult belongs to one goroutine at a time: keep one per goroutine that
// routes messages and pass it to every Match, which resets and refills its slices,
// so that once they have grown Match allocates nothing.
//
// What Match writes is valid until the next Match with the same result; copy what
// must outlive it. The slices inside the elements, SubscriptionIDs and Members, are
// read-only: Members may be shared with the tree's match cache.
type MatchResult struct {
	// Recipients holds one entry per subscriber with at least one matching
	// non-shared subscription, in no particular order.
	Recipients []Recipient
	// Groups holds one entry per matching shared subscription, that is per
	// (ShareName, filter), in no particular order. The broker sends the message to
	// one member of each.
	Groups []GroupMatch

	ids     []uint32      // backs Recipients[i].SubscriptionIDs
	entries []Member      // the matching non-shared subscriptions, one per filter
	found   []*shareGroup // the matching shared groups, only while the read lock is held
	members []Member      // backs Groups[i].Members when the tree has no cache

	// Scratch of the broker's routing on a node of a cluster.
	nodes   []string // the other nodes a message is forwarded to
	moved   []int    // Recipients that relay to a session on another node
	movedIn []string // the sessions it went to that moved here lately
}

// Recipient is one subscriber of a message with all of its matching non-shared
// subscriptions merged into one delivery (MQTT 5.0 section 3.3.4).
type Recipient struct {
	Subscriber string
	// QoS is the highest maximum QoS among the matching subscriptions; the message
	// goes out at the lower of this and the QoS it was published with.
	QoS mqtt.QoS
	// RetainAsPublished is true when any of the matching subscriptions set Retain As
	// Published: one copy is sent, and a subscription that asked to see the RETAIN
	// flag as published sees it.
	RetainAsPublished bool
	// SubscriptionIDs holds the distinct non-zero Subscription Identifiers of the
	// matching subscriptions in ascending order; empty when none has one.
	SubscriptionIDs []uint32
}

// GroupMatch is one shared subscription whose filter matches the topic name.
type GroupMatch struct {
	Group   string   // the ShareName
	Filter  string   // the topic filter without $share/{ShareName}/
	Members []Member // at least one; each with the options of its own subscription
}

// Match finds the subscriptions whose filter matches topic, a topic name as
// PUBLISH carries it (see mqtt.ValidTopicName), and writes them into res: the
// non-shared ones merged per subscriber into res.Recipients, and the shared groups
// with their members into res.Groups. Subscriptions with No Local held by
// publisher are left out [MQTT-3.8.3-3]; publisher is the subscriber that published
// the message, or empty when none did. Filters that begin with a wildcard do not
// match topic names that begin with '$' [MQTT-4.7.2-1].
//
// Match keeps no reference to topic or publisher once it returns. With res reused
// and the topic in the match cache (or the cache disabled) it does not allocate; a
// topic that misses the cache costs one to three allocations to cache its answer.
func (t *SubTree) Match(topic, publisher string, res *MatchResult) {
	res.Recipients = res.Recipients[:0]
	res.Groups = res.Groups[:0]
	res.ids = res.ids[:0]
	if e, ok := t.cache.get(topic); ok {
		res.fill(e.members, publisher)
		res.Groups = append(res.Groups, e.groups...)
		return
	}

	t.mu.RLock()
	res.entries = res.entries[:0]
	res.found = res.found[:0]
	res.collect(t.root, topic)
	slices.SortFunc(res.entries, compareMembers)
	if t.cache != nil {
		// Fill the cache under the read lock, so that no change of the tree can
		// slip between the walk and the insertion and leave a stale entry.
		e := res.entry()
		t.cache.put(topic, e)
		t.mu.RUnlock()
		clear(res.found)
		res.fill(e.members, publisher)
		res.Groups = append(res.Groups, e.groups...)
		return
	}
	res.members = res.members[:0]
	for _, g := range res.found {
		start := len(res.members)
		res.members = append(res.members, g.members.members...)
		res.Groups = append(res.Groups, GroupMatch{
			Group:   g.name,
			Filter:  g.filter,
			Members: res.members[start:len(res.members):len(res.members)],
		})
	}
	t.mu.RUnlock()
	clear(res.found)
	res.fill(res.entries, publisher)
}

// collect walks the levels of topic from the root and gathers every subscription
// whose filter matches into r.entries and r.found. Call with mu held for reading.
func (r *MatchResult) collect(root *node, topic string) {
	level, rest, more := cutLevel(topic)
	if len(topic) == 0 || topic[0] != '$' { // [MQTT-4.7.2-1]
		if root.hash != nil {
			r.add(root.hash)
		}
		if root.plus != nil {
			r.walk(root.plus, rest, more)
		}
	}
	if child := root.children[level]; child != nil {
		r.walk(child, rest, more)
	}
}

// walk continues below n, whose level matched the topic's level before topic;
// more reports whether topic holds another level.
func (r *MatchResult) walk(n *node, topic string, more bool) {
	for {
		if !more {
			r.add(n)
			if n.hash != nil { // "a/#" matches "a" [MQTT-4.7.1-2]
				r.add(n.hash)
			}
			return
		}
		if n.hash != nil {
			r.add(n.hash)
		}
		level, rest, next := cutLevel(topic)
		if n.plus != nil {
			r.walk(n.plus, rest, next)
		}
		child := n.children[level]
		if child == nil {
			return
		}
		n, topic, more = child, rest, next
	}
}

func (r *MatchResult) add(n *node) {
	r.entries = append(r.entries, n.subs.members...)
	r.found = append(r.found, n.groups...)
}

// compareMembers orders by subscriber, then by subscription identifier, so that
// the subscriptions of one subscriber are adjacent and their identifiers ascend.
func compareMembers(a, b Member) int {
	if c := strings.Compare(a.Subscriber, b.Subscriber); c != 0 {
		return c
	}
	return cmp.Compare(a.Options.SubscriptionID, b.Options.SubscriptionID)
}

// entry copies what collect found into a new cache entry. Call with mu held for
// reading and r.entries sorted.
func (r *MatchResult) entry() cacheEntry {
	total := len(r.entries)
	for _, g := range r.found {
		total += len(g.members.members)
	}
	if total == 0 {
		return cacheEntry{}
	}
	all := make([]Member, total)
	n := copy(all, r.entries)
	e := cacheEntry{members: all[:n:n]}
	if len(r.found) > 0 {
		e.groups = make([]GroupMatch, len(r.found))
		for i, g := range r.found {
			m := n + copy(all[n:], g.members.members)
			e.groups[i] = GroupMatch{Group: g.name, Filter: g.filter, Members: all[n:m:m]}
			n = m
		}
	}
	return e
}

// fill merges sorted, the matching non-shared subscriptions, into r.Recipients.
func (r *MatchResult) fill(sorted []Member, publisher string) {
	for i := 0; i < len(sorted); {
		s := sorted[i].Subscriber
		self := s == publisher
		rec := Recipient{Subscriber: s}
		matched := false
		start := len(r.ids)
		for ; i < len(sorted) && sorted[i].Subscriber == s; i++ {
			o := &sorted[i].Options
			if self && o.NoLocal { // [MQTT-3.8.3-3]
				continue
			}
			matched = true
			rec.QoS = max(rec.QoS, o.QoS)
			rec.RetainAsPublished = rec.RetainAsPublished || o.RetainAsPublished
			if id := o.SubscriptionID; id != 0 && (len(r.ids) == start || r.ids[len(r.ids)-1] != id) {
				r.ids = append(r.ids, id)
			}
		}
		if !matched {
			continue
		}
		if end := len(r.ids); end > start {
			rec.SubscriptionIDs = r.ids[start:end:end]
		}
		r.Recipients = append(r.Recipients, rec)
	}
}
