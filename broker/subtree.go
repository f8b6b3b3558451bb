package broker

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// SubscriptionOptions are what a subscriber asked for with one topic filter: the
// Subscription Options byte of MQTT 5.0 section 3.8.3.1 and the Subscription
// Identifier of the SUBSCRIBE that carried the filter. MQTT 3.1 and 3.1.1 clients
// set only QoS.
type SubscriptionOptions struct {
	QoS               mqtt.QoS // the maximum QoS: 0, 1 or 2
	NoLocal           bool     // do not send this subscriber the messages it published [MQTT-3.8.3-3]
	RetainAsPublished bool     // keep the RETAIN flag of forwarded messages as published
	RetainHandling    byte     // retained messages at subscribe: 0 send, 1 send if the subscription is new, 2 do not send
	SubscriptionID    uint32   // 1 to mqtt.MaxSubscriptionID; 0 when the SUBSCRIBE carried none
}

// Subscription is one of a subscriber's topic filters with its options.
type Subscription struct {
	Filter  string // as subscribed; a shared one in the form $share/{ShareName}/{filter}
	Options SubscriptionOptions
}

// Member is a subscriber and the options of its subscription to one topic filter.
type Member struct {
	Subscriber string
	Options    SubscriptionOptions
}

// DefaultMatchCacheSize is a fair bound, in topic names, for the match cache of NewSubTree.
const DefaultMatchCacheSize = 1024

// SubTree is the subscription tree. It stores topic filters level by level, each
// filter with the subscribers that hold it and their options, and matches a topic
// name against all of them in one walk of the levels. Shared subscriptions
// $share/{ShareName}/{filter} are kept per (ShareName, filter) and are distinct
// from a non-shared subscription to the same filter, even by the same subscriber.
//
// A subscriber is any non-empty string: today a client id; nothing assumes that it
// is connected.
//
// Every method may be called from any goroutine at any time. The tree is
// read-mostly: Match answers a topic name found in its bounded match cache without
// taking the tree's lock, and otherwise walks the tree under the read lock;
// Subscribe, Unsubscribe and UnsubscribeAll take the write lock and drop the cache
// entries of the topic names their filter matches, so that a Match that begins
// after one of them returned sees its effect.
//
// The zero value is not usable; call NewSubTree.
type SubTree struct {
	mu          sync.RWMutex
	root        *node                       // guarded by mu
	subscribers map[string]*subscriberState // by name; guarded by mu
	nodes       int                         // nodes in the tree, the root included; guarded by mu

	cache *matchCache // nil when disabled; guarded by its own locks, filled under mu held for reading

	subscriptions   atomic.Int64 // written under mu held for writing
	subscriberCount atomic.Int64 // written under mu held for writing

	observer func(filter string, added bool) // see SetObserver; guarded by mu
}

// NodePrefix begins the subscriber names that stand for other nodes of a cluster.
// A client identifier never holds U+0000 [MQTT-1.5.4-2], so no session can take
// such a name.
const NodePrefix = "\x00node/"

// IsNode reports whether subscriber stands for another node of a cluster.
func IsNode(subscriber string) bool { return strings.HasPrefix(subscriber, NodePrefix) }

// MovedPrefix begins the subscriber names that hold, for a while, the
// subscriptions of a session that moved to another node of a cluster: what they
// match is relayed to the session there (see Broker.ExportSession). They count
// as local subscriptions, so the node keeps its routes until the other nodes
// route to the session's new node.
const MovedPrefix = "\x00moved/"

// IsMoved reports whether subscriber relays to a session that moved to another
// node.
func IsMoved(subscriber string) bool { return strings.HasPrefix(subscriber, MovedPrefix) }

// SetObserver makes fn hear of every subscription created (added true) or removed
// (added false) for a subscriber that is not a node (see IsNode), with the filter
// as subscribed; the subscriptions the tree holds already are told as created
// first. fn is called with the tree's lock held, in the order of the changes: it
// must be quick and must not call the tree.
func (t *SubTree) SetObserver(fn func(filter string, added bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observer = fn
	for name, s := range t.subscribers {
		for filter := range s.subs {
			t.observe(name, filter, true)
		}
	}
}

// observe tells the observer of a change of subscriber's subscriptions. Call with
// mu held for writing.
func (t *SubTree) observe(subscriber, filter string, added bool) {
	if t.observer != nil && !IsNode(subscriber) {
		t.observer(filter, added)
	}
}

// NewSubTree returns an empty tree whose match cache holds about cacheSize topic
// names (DefaultMatchCacheSize is a fair start); zero or less disables the cache.
// A Subscribe or Unsubscribe of a filter with a wildcard scans the cache, so a
// larger cache makes matching of repeated topics cheaper and changes dearer.
func NewSubTree(cacheSize int) *SubTree {
	return &SubTree{
		root:        &node{},
		subscribers: make(map[string]*subscriberState),
		nodes:       1,
		cache:       newMatchCache(cacheSize),
	}
}

// node is one level of the tree. Every field is guarded by SubTree.mu.
type node struct {
	parent   *node
	level    string           // this node's level within its parent: a literal, "+" or "#"
	children map[string]*node // literal levels below; nil when there are none
	plus     *node            // the "+" level below
	hash     *node            // the "#" level below; it never has levels of its own
	subs     memberList       // the non-shared subscriptions whose filter ends here
	groups   []*shareGroup    // the shared subscriptions whose filter ends here, one per ShareName
}

func (n *node) empty() bool {
	return len(n.children) == 0 && n.plus == nil && n.hash == nil && len(n.subs.members) == 0 && len(n.groups) == 0
}

// shareGroup is the members of one shared subscription $share/{name}/{filter}.
type shareGroup struct {
	name    string // the ShareName
	filter  string // the filter without $share/{ShareName}/
	members memberList
}

// memberList holds subscriptions in a slice that Match copies in one go, and for
// each the subRef that points at it, so that removal is a swap with the last
// element.
type memberList struct {
	members []Member
	refs    []*subRef // refs[i].index == i
}

func (l *memberList) add(m Member, ref *subRef) {
	ref.list = l
	ref.index = len(l.members)
	l.members = append(l.members, m)
	l.refs = append(l.refs, ref)
}

func (l *memberList) remove(i int) {
	last := len(l.members) - 1
	if i != last {
		l.members[i] = l.members[last]
		l.refs[i] = l.refs[last]
		l.refs[i].index = i
	}
	l.members[last] = Member{}
	l.refs[last] = nil
	l.members, l.refs = l.members[:last], l.refs[:last]
	switch {
	case last == 0:
		l.members, l.refs = nil, nil
	case cap(l.members) >= 64 && last <= cap(l.members)/4:
		// Give back what a crowd of departed subscribers left behind.
		l.members, l.refs = slices.Clone(l.members), slices.Clone(l.refs)
	}
}

// subscriberState is the subscriptions of one subscriber. Guarded by SubTree.mu.
type subscriberState struct {
	name string             // the tree's copy of the name, shared by all its Members
	subs map[string]*subRef // filter as subscribed (the tree's copy) to where it lives
}

// subRef is where one subscription of a subscriber lives. Guarded by SubTree.mu.
type subRef struct {
	node  *node       // where the filter ends
	group *shareGroup // the shared group; nil for a non-shared subscription
	list  *memberList // &node.subs or &group.members
	index int         // in list
}

// Subscribe adds filter with opts for subscriber, or replaces the options of the
// subscription that subscriber already holds to the identical filter
// [MQTT-3.8.4-3]. created is false when it replaced; a Retain Handling of 1 sends
// retained messages only when created is true. filter may be shared,
// $share/{ShareName}/{filter}. The error is an *mqtt.Error for an invalid filter
// (TopicFilterInvalid) or invalid options (ProtocolError, among them No Local on a
// shared subscription [MQTT-3.8.3-4]); the tree is then unchanged. Subscribe keeps
// copies of subscriber and filter, never the caller's strings.
func (t *SubTree) Subscribe(subscriber, filter string, opts SubscriptionOptions) (created bool, err error) {
	if subscriber == "" {
		return false, errors.New("broker: subscribe: empty subscriber")
	}
	if err := mqtt.ValidTopicFilter(filter); err != nil {
		return false, err
	}
	group, f, shared := splitFilter(filter)
	if err := checkOptions(opts, shared); err != nil {
		return false, err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subscribers[subscriber]
	if s != nil {
		if ref := s.subs[filter]; ref != nil {
			ref.list.members[ref.index].Options = opts // [MQTT-3.8.4-3]
			t.cache.invalidate(f)
			return false, nil
		}
	} else {
		s = &subscriberState{name: strings.Clone(subscriber), subs: make(map[string]*subRef)}
		t.subscribers[s.name] = s
		t.subscriberCount.Add(1)
	}
	filter = strings.Clone(filter)
	group, f, _ = splitFilter(filter)
	n := t.nodeFor(f)
	ref := &subRef{node: n}
	if shared {
		g := n.group(group)
		if g == nil {
			g = &shareGroup{name: group, filter: f}
			n.groups = append(n.groups, g)
		}
		ref.group = g
		g.members.add(Member{Subscriber: s.name, Options: opts}, ref)
	} else {
		n.subs.add(Member{Subscriber: s.name, Options: opts}, ref)
	}
	s.subs[filter] = ref
	t.subscriptions.Add(1)
	t.cache.invalidate(f)
	t.observe(s.name, filter, true)
	return true, nil
}

// splitFilter splits $share/{ShareName}/{filter} into the ShareName and filter;
// a filter not in the shared form is returned as it is.
func splitFilter(filter string) (group, f string, shared bool) {
	if group, f, shared = mqtt.SplitShared(filter); shared {
		return group, f, true
	}
	return "", filter, false
}

func checkOptions(o SubscriptionOptions, shared bool) error {
	var reason string
	switch {
	case o.QoS > mqtt.ExactlyOnce:
		reason = "maximum QoS above 2"
	case o.RetainHandling > 2:
		reason = "retain handling above 2"
	case o.SubscriptionID > mqtt.MaxSubscriptionID:
		reason = "subscription identifier above 268435455"
	case shared && o.NoLocal: // [MQTT-3.8.3-4]
		reason = "no local on a shared subscription"
	default:
		return nil
	}
	return &mqtt.Error{Code: mqtt.ProtocolError, Packet: mqtt.SUBSCRIBE, Reason: reason}
}

// nodeFor returns the node where filter ends, making the missing levels. Call with mu held.
func (t *SubTree) nodeFor(filter string) *node {
	n := t.root
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		var next *node
		switch level {
		case "+":
			next = n.plus
		case "#":
			next = n.hash
		default:
			next = n.children[level]
		}
		if next == nil {
			next = &node{parent: n, level: level}
			t.nodes++
			switch level {
			case "+":
				n.plus = next
			case "#":
				n.hash = next
			default:
				if n.children == nil {
					n.children = make(map[string]*node)
				}
				n.children[level] = next
			}
		}
		n = next
	}
	return n
}

func (n *node) group(name string) *shareGroup {
	for _, g := range n.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// Unsubscribe removes subscriber's subscription to filter, given exactly as
// subscribed (shared ones with their $share/{ShareName}/ prefix). It reports whether
// there was one; UNSUBACK answers No subscription existed (0x11) when there was not.
func (t *SubTree) Unsubscribe(subscriber, filter string) (existed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subscribers[subscriber]
	if s == nil {
		return false
	}
	ref := s.subs[filter]
	if ref == nil {
		return false
	}
	t.remove(filter, ref)
	t.observe(subscriber, filter, false)
	delete(s.subs, filter)
	if len(s.subs) == 0 {
		delete(t.subscribers, subscriber)
		t.subscriberCount.Add(-1)
	}
	return true
}

// UnsubscribeAll removes every subscription of subscriber, as when its session
// ends, and returns how many there were.
func (t *SubTree) UnsubscribeAll(subscriber string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subscribers[subscriber]
	if s == nil {
		return 0
	}
	for filter, ref := range s.subs {
		t.remove(filter, ref)
		t.observe(subscriber, filter, false)
	}
	delete(t.subscribers, subscriber)
	t.subscriberCount.Add(-1)
	return len(s.subs)
}

// remove takes one subscription out of the tree and prunes the levels left empty.
// The caller updates t.subscribers. Call with mu held for writing.
func (t *SubTree) remove(filter string, ref *subRef) {
	ref.list.remove(ref.index)
	if g := ref.group; g != nil && len(g.members.members) == 0 {
		n := ref.node
		i := slices.Index(n.groups, g)
		n.groups = slices.Delete(n.groups, i, i+1)
		if len(n.groups) == 0 {
			n.groups = nil
		}
	}
	t.prune(ref.node)
	t.subscriptions.Add(-1)
	_, f, _ := splitFilter(filter)
	t.cache.invalidate(f)
}

// prune removes n and then its ancestors for as long as they hold nothing.
func (t *SubTree) prune(n *node) {
	for n != t.root && n.empty() {
		p := n.parent
		switch n {
		case p.plus:
			p.plus = nil
		case p.hash:
			p.hash = nil
		default:
			delete(p.children, n.level)
			if len(p.children) == 0 {
				p.children = nil
			}
		}
		n.parent = nil
		t.nodes--
		n = p
	}
}

// Subscriptions returns the subscriptions of subscriber sorted by filter, nil when
// it has none. The slice is the caller's.
func (t *SubTree) Subscriptions(subscriber string) []Subscription {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.subscribers[subscriber]
	if s == nil {
		return nil
	}
	out := make([]Subscription, 0, len(s.subs))
	for filter, ref := range s.subs {
		out = append(out, Subscription{Filter: filter, Options: ref.list.members[ref.index].Options})
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return out
}

// SubscriptionCount returns how many subscriptions the tree holds, a membership
// of a shared group counting as one. It takes no lock.
func (t *SubTree) SubscriptionCount() int { return int(t.subscriptions.Load()) }

// SubscriberCount returns how many subscribers hold at least one subscription. It
// takes no lock.
func (t *SubTree) SubscriberCount() int { return int(t.subscriberCount.Load()) }

// cutLevel splits off the first level of a topic name or filter; more reports
// whether rest holds at least one level (possibly empty, as in "a/").
func cutLevel(s string) (level, rest string, more bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}
