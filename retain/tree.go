package retain

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// ErrLimit is the error, wrapped with the topic and the amounts held, that
// Tree.Set returns when keeping the message would exceed Options.MaxMessages or
// Options.MaxBytes. Test for it with errors.Is. A broker answers a PUBLISH at QoS 1
// or 2 that it refuses for this reason with Quota exceeded (0x97).
var ErrLimit = errors.New("retained message limit reached")

// Options bound what a Tree keeps. The zero value sets no bound.
type Options struct {
	// MaxMessages is how many retained messages, one per topic name, the tree
	// keeps at most; 0 means no limit.
	MaxMessages int
	// MaxBytes is how many bytes of topic names and payloads together the tree
	// keeps at most; 0 means no limit. Properties are not counted.
	MaxBytes int64
}

// Tree holds the retained messages, one per topic name, in a tree of topic levels.
//
// Every method may be called from any goroutine at any time. Lookups (Match, Get,
// Range) take the read lock of the nodes and run in parallel with each other.
// Changes (Set, Delete, Sweep) are serialized among themselves; each calls the
// Store first, without holding the nodes' lock so that lookups go on meanwhile,
// and then takes the write lock only to change the nodes. A lookup that begins
// after a change has returned sees it.
//
// Messages are kept, never copied: a message given to Set must not be modified
// afterwards, and the messages handed out by Match, Get and Range are shared
// with every other caller and must not be modified either.
//
// The zero value is not usable; call New.
type Tree struct {
	store Store   // nil for memory only; called with writeMu held
	opts  Options // read-only after New

	// writeMu serializes changes: Set, Delete and Sweep hold it from the moment
	// they look at the nodes until their change is made, the Store call included.
	// Holding it is enough to read the nodes; changing them takes mu as well.
	writeMu sync.Mutex
	// mu guards the nodes against lookups: Match, Get and Range hold it for
	// reading, and a change holds it for writing (after writeMu) while it changes
	// nodes.
	mu       sync.RWMutex
	root     *node        // the level above the first; it never holds a message. Guarded by writeMu and mu
	expiring expiryHeap   // the nodes whose message has an expiry, soonest first; guarded by writeMu
	swept    []*node      // reused by sweep; guarded by writeMu
	count    atomic.Int64 // messages held; written with writeMu and mu held
	bytes    atomic.Int64 // bytes of topic names and payloads held; written with writeMu and mu held
	bufs     sync.Pool    // of *[]*mqtt.Message, the snapshots of Match and Range
}

// node is one level of a topic name. Its fields are guarded by Tree.writeMu and
// Tree.mu as the tree's root is, except heapIndex: writeMu alone.
//
// Most levels have few children, so a node keeps them in a slice, which is all a
// wildcard walks, and looks one up by scanning it; only a node with indexAt
// children or more also keeps a map from level to child.
type node struct {
	parent    *node
	level     string           // this node's level within its parent
	pos       int              // this node's index in parent.children
	children  []*node          // the levels below, in no order; nil when none
	index     map[string]*node // children by level when there are indexAt or more; nil otherwise
	msg       *mqtt.Message    // the retained message whose topic ends here; nil when none
	expiry    int64            // msg.Expiry in Unix nanoseconds, or never: lookups skip expired messages without reading them
	heapIndex int              // index in Tree.expiring; -1 when not there
}

// live reports whether n holds a message that has not expired at now, given in
// Unix nanoseconds.
func (n *node) live(now int64) bool { return n.msg != nil && now < n.expiry }

// never is the expiry of a message that does not expire.
const never = math.MaxInt64

// unixNano returns the expiry t in Unix nanoseconds, clamped to the range of
// int64: the zero time, which means never, and times after the range (year 2262)
// give never; times before it (year 1678) give one more than the least int64, so
// that they have expired at every time but the zero time (see nowNano).
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero() || t.After(maxTime):
		return never
	case t.Before(minTime):
		return math.MinInt64 + 1
	}
	return t.UnixNano()
}

// nowNano returns now in Unix nanoseconds for comparison with node.expiry. As
// with mqtt.Message.Expired, nothing has expired at the zero time, and messages
// that never expire have not expired at any time.
func nowNano(now time.Time) int64 {
	switch {
	case now.IsZero():
		return math.MinInt64
	case now.After(maxTime):
		return never - 1
	}
	return unixNano(now)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func newNode(parent *node, level string) *node {
	return &node{parent: parent, level: level, expiry: never, heapIndex: -1}
}

// New returns a tree holding what store holds, or an empty tree when store is nil
// (memory only). Messages that have already expired, or that have an empty
// payload, are not loaded and are deleted from the store. The store may hold more
// than opts allows, as after the limits were lowered; all of it is loaded, and Set
// refuses new messages until enough are gone.
func New(store Store, opts Options) (*Tree, error) {
	if opts.MaxMessages < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("retain: negative limit: %d messages, %d bytes", opts.MaxMessages, opts.MaxBytes)
	}
	t := &Tree{store: store, opts: opts, root: newNode(nil, "")}
	if store == nil {
		return t, nil
	}
	now := time.Now()
	var stale []string
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	err := store.Load(func(m *mqtt.Message) error {
		if m == nil {
			return errors.New("nil message")
		}
		if err := mqtt.ValidTopicName(m.Topic); err != nil {
			return fmt.Errorf("topic %q: %w", m.Topic, err)
		}
		if len(m.Payload) == 0 || m.Expired(now) {
			stale = append(stale, m.Topic)
			return nil
		}
		t.mu.Lock()
		t.put(m)
		t.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retain: load: %w", err)
	}
	// Delete after Load has returned: a store may not take changes while it is
	// being read.
	for _, topic := range stale {
		if n := t.find(topic); n != nil && n.msg != nil {
			continue
		}
		if err := store.Delete(topic); err != nil {
			return nil, fmt.Errorf("retain: delete expired %q: %w", topic, err)
		}
	}
	return t, nil
}

// Set makes m the retained message for m.Topic at now, replacing any previous
// one [MQTT-3.3.1-5]. A message with an empty payload removes the topic's retained
// message instead and is not kept [MQTT-3.3.1-6] [MQTT-3.3.1-7] (in MQTT 3.1.1
// [MQTT-3.3.1-10] [MQTT-3.3.1-11]); so does a message that has already expired at
// now. m.Topic must be a valid topic name; otherwise the error wraps the
// *mqtt.Error of mqtt.ValidTopicName.
//
// When keeping m would exceed the limits, Set first removes the messages that have
// expired at now, and if that is not enough it returns an error wrapping ErrLimit
// and keeps nothing. Replacing a topic's message counts only the difference in
// bytes, so it succeeds at the message limit. When the Store fails the tree is
// unchanged and the error wraps the Store's.
//
// Set keeps m, not a copy: m must not be modified afterwards.
func (t *Tree) Set(m *mqtt.Message, now time.Time) error {
	if m == nil {
		return errors.New("retain: set: nil message")
	}
	if err := mqtt.ValidTopicName(m.Topic); err != nil {
		return fmt.Errorf("retain: set: %w", err)
	}
	if len(m.Payload) == 0 || m.Expired(now) { // [MQTT-3.3.1-6] [MQTT-3.3.1-7]
		_, err := t.Delete(m.Topic)
		return err
	}
	size := msgSize(m)
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if !t.fits(m.Topic, size) {
		if _, err := t.sweep(now); err != nil {
			return fmt.Errorf("retain: set %q: %w", m.Topic, err)
		}
		if !t.fits(m.Topic, size) {
			return fmt.Errorf("retain: set %q of %d bytes: %w: holding %d of %d messages and %d of %d bytes",
				m.Topic, size, ErrLimit, t.count.Load(), t.opts.MaxMessages, t.bytes.Load(), t.opts.MaxBytes)
		}
	}
	if t.store != nil {
		if err := t.store.Put(m); err != nil {
			return fmt.Errorf("retain: set %q: store: %w", m.Topic, err)
		}
	}
	t.mu.Lock()
	t.put(m)
	t.mu.Unlock()
	return nil
}

// msgSize is what a message counts toward Options.MaxBytes.
func msgSize(m *mqtt.Message) int64 { return int64(len(m.Topic) + len(m.Payload)) }

// fits reports whether a message of size bytes for topic may be kept within the
// limits. Call with writeMu held.
func (t *Tree) fits(topic string, size int64) bool {
	count, bytes := t.count.Load(), t.bytes.Load()+size
	if n := t.find(topic); n != nil && n.msg != nil {
		bytes -= msgSize(n.msg)
	} else {
		count++
	}
	if max := t.opts.MaxMessages; max > 0 && count > int64(max) {
		return false
	}
	if max := t.opts.MaxBytes; max > 0 && bytes > max {
		return false
	}
	return true
}

// put makes m the message of its topic's node, making the missing levels. Call
// with writeMu and mu held.
func (t *Tree) put(m *mqtt.Message) {
	n := t.nodeFor(m.Topic)
	if old := n.msg; old != nil {
		t.bytes.Add(msgSize(m) - msgSize(old))
	} else {
		t.count.Add(1)
		t.bytes.Add(msgSize(m))
	}
	n.msg = m
	n.expiry = unixNano(m.Expiry)
	switch {
	case n.heapIndex >= 0 && m.Expiry.IsZero():
		heap.Remove(&t.expiring, n.heapIndex)
	case n.heapIndex >= 0:
		heap.Fix(&t.expiring, n.heapIndex)
	case !m.Expiry.IsZero():
		heap.Push(&t.expiring, n)
	}
}

// Delete removes the retained message for topic and reports whether there was
// one. When the Store fails the tree is unchanged and the error wraps the Store's.
func (t *Tree) Delete(topic string) (bool, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	n := t.find(topic)
	if n == nil || n.msg == nil {
		return false, nil
	}
	if t.store != nil {
		if err := t.store.Delete(topic); err != nil {
			return false, fmt.Errorf("retain: delete %q: store: %w", topic, err)
		}
	}
	t.mu.Lock()
	t.remove(n)
	t.mu.Unlock()
	return true, nil
}

// remove takes the message out of n and prunes the levels left empty. Call with
// writeMu and mu held.
func (t *Tree) remove(n *node) {
	if n.heapIndex >= 0 {
		heap.Remove(&t.expiring, n.heapIndex)
	}
	t.count.Add(-1)
	t.bytes.Add(-msgSize(n.msg))
	n.msg, n.expiry = nil, never
	t.prune(n)
}

// prune removes n and then its ancestors for as long as they hold nothing.
// Call with writeMu and mu held.
func (t *Tree) prune(n *node) {
	for n != t.root && n.msg == nil && len(n.children) == 0 {
		p := n.parent
		p.removeChild(n)
		n.parent = nil
		n = p
	}
}

// Sweep removes the messages that have expired at now and returns how many it
// removed. The broker calls it periodically; it costs a little for each expired
// message and nothing for the others. When the Store fails Sweep stops, keeps the
// messages it has not yet removed, and returns the error with the count so far.
func (t *Tree) Sweep(now time.Time) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	return t.sweep(now)
}

// sweep is Sweep with writeMu held.
func (t *Tree) sweep(now time.Time) (int, error) {
	batch := t.swept[:0]
	ns := nowNano(now)
	for len(t.expiring) > 0 && !t.expiring[0].live(ns) {
		batch = append(batch, heap.Pop(&t.expiring).(*node))
	}
	if len(batch) == 0 {
		return 0, nil
	}
	done := len(batch)
	var err error
	if t.store != nil {
		for i, n := range batch {
			if err = t.store.Delete(n.msg.Topic); err != nil {
				err = fmt.Errorf("retain: delete expired %q: store: %w", n.msg.Topic, err)
				done = i
				for _, n := range batch[i:] {
					heap.Push(&t.expiring, n)
				}
				break
			}
		}
	}
	t.mu.Lock()
	for _, n := range batch[:done] {
		t.remove(n)
	}
	t.mu.Unlock()
	clear(batch)
	t.swept = batch[:0]
	return done, err
}

// Get returns the retained message for topic. It may have expired and not yet
// been swept; check m.Expired.
func (t *Tree) Get(topic string) (*mqtt.Message, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n := t.find(topic); n != nil && n.msg != nil {
		return n.msg, true
	}
	return nil, false
}

// Len returns how many retained messages the tree holds, counting those that have
// expired and not yet been swept. It takes no lock.
func (t *Tree) Len() int { return int(t.count.Load()) }

// Bytes returns how many bytes of topic names and payloads the tree holds, the
// amount Options.MaxBytes bounds. It takes no lock.
func (t *Tree) Bytes() int64 { return t.bytes.Load() }

// find returns the node of topic, nil when there is none. Call with writeMu or mu
// held.
func (t *Tree) find(topic string) *node {
	n := t.root
	for rest, more := topic, true; more && n != nil; {
		var level string
		level, rest, more = cutLevel(rest)
		n = n.child(level)
	}
	return n
}

// nodeFor returns the node of topic, making the missing levels. Call with writeMu
// and mu held.
func (t *Tree) nodeFor(topic string) *node {
	n := t.root
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = cutLevel(rest)
		next := n.child(level)
		if next == nil {
			// Clone the level so that the node does not keep the whole topic,
			// and the payload-sized string it may be part of, alive.
			next = newNode(n, strings.Clone(level))
			n.addChild(next)
		}
		n = next
	}
	return n
}

// indexAt is how many children a node has when it begins to index them by level
// in a map; it drops the map when they fall below half as many.
const indexAt = 8

// child returns the child of n at level, nil when there is none.
func (n *node) child(level string) *node {
	if n.index != nil {
		return n.index[level]
	}
	for _, c := range n.children {
		if c.level == level {
			return c
		}
	}
	return nil
}

func (n *node) addChild(c *node) {
	c.pos = len(n.children)
	n.children = append(n.children, c)
	switch {
	case n.index != nil:
		n.index[c.level] = c
	case len(n.children) >= indexAt:
		n.index = make(map[string]*node, len(n.children))
		for _, c := range n.children {
			n.index[c.level] = c
		}
	}
}

func (n *node) removeChild(c *node) {
	last := len(n.children) - 1
	if c.pos != last {
		moved := n.children[last]
		n.children[c.pos] = moved
		moved.pos = c.pos
	}
	n.children[last] = nil
	n.children = n.children[:last]
	if n.index != nil {
		delete(n.index, c.level)
		if last < indexAt/2 {
			n.index = nil
		}
	}
	switch {
	case last == 0:
		n.children = nil
	case cap(n.children) >= 64 && last <= cap(n.children)/4:
		// Give back what a crowd of departed levels left behind.
		n.children = slices.Clone(n.children)
	}
}

// cutLevel splits off the first level of a topic name or filter; more reports
// whether rest holds at least one level (possibly empty, as in "a/").
func cutLevel(s string) (level, rest string, more bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// expiryHeap orders nodes by the expiry of their message, soonest first, for
// container/heap. Each node knows its index, so that a replaced or deleted message
// leaves the heap directly.
type expiryHeap []*node

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }

func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}

func (h *expiryHeap) Push(x any) {
	n := x.(*node)
	n.heapIndex = len(*h)
	*h = append(*h, n)
}

func (h *expiryHeap) Pop() any {
	old := *h
	last := len(old) - 1
	n := old[last]
	old[last] = nil
	n.heapIndex = -1
	*h = old[:last]
	return n
}
