package retain

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// t0 is the time the tests start from.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func msg(topic, payload string) *mqtt.Message {
	return &mqtt.Message{Topic: topic, Payload: []byte(payload), Retain: true}
}

func expiring(topic, payload string, expiry time.Time) *mqtt.Message {
	m := msg(topic, payload)
	m.Expiry = expiry
	return m
}

func newTree(t testing.TB, store Store, opts Options) *Tree {
	t.Helper()
	tr, err := New(store, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

func mustSet(t testing.TB, tr *Tree, m *mqtt.Message, now time.Time) {
	t.Helper()
	if err := tr.Set(m, now); err != nil {
		t.Fatalf("Set(%q): %v", m.Topic, err)
	}
}

// matched returns the sorted topics of the messages Match gives for filter at now.
func matched(tr *Tree, filter string, now time.Time) []string {
	var out []string
	tr.Match(filter, now, func(m *mqtt.Message) bool {
		out = append(out, m.Topic)
		return true
	})
	slices.Sort(out)
	return out
}

// heldTopics returns the sorted topics of every message the tree holds.
func heldTopics(tr *Tree) []string {
	var out []string
	tr.Range(func(m *mqtt.Message) bool {
		out = append(out, m.Topic)
		return true
	})
	slices.Sort(out)
	return out
}

// nodeCount returns how many nodes the tree has below its root.
func nodeCount(tr *Tree) int {
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	var count func(n *node) int
	count = func(n *node) int {
		c := 0
		for _, child := range n.children {
			c += 1 + count(child)
		}
		return c
	}
	return count(tr.root)
}

// checkInvariants walks the whole tree and fails t when its structure disagrees
// with itself: parent links, pruned levels, counters and the expiry heap.
func checkInvariants(t testing.TB, tr *Tree) {
	t.Helper()
	tr.writeMu.Lock()
	defer tr.writeMu.Unlock()
	if tr.root.msg != nil {
		t.Errorf("root holds a message")
	}
	var count, bytes int64
	var expiringNodes int
	var walk func(n *node, topic string)
	walk = func(n *node, topic string) {
		if n.index != nil && len(n.index) != len(n.children) {
			t.Errorf("node %q: %d children but %d indexed", topic, len(n.children), len(n.index))
		}
		if n.index == nil && len(n.children) >= indexAt {
			t.Errorf("node %q: %d children, not indexed", topic, len(n.children))
		}
		if n.children != nil && len(n.children) == 0 {
			t.Errorf("node %q: empty children slice kept", topic)
		}
		for i, child := range n.children {
			level := child.level
			if child.parent != n || child.pos != i {
				t.Errorf("node %q: parent or position wrong", topic+"/"+level)
			}
			if n.child(level) != child {
				t.Errorf("node %q: lookup of %q does not find it", topic, level)
			}
			ct := level
			if n != tr.root {
				ct = topic + "/" + level
			}
			if child.msg == nil && len(child.children) == 0 {
				t.Errorf("node %q: empty and not pruned", ct)
			}
			if m := child.msg; m != nil {
				if m.Topic != ct {
					t.Errorf("node %q holds a message for %q", ct, m.Topic)
				}
				count++
				bytes += int64(len(m.Topic) + len(m.Payload))
				if m.Expiry.IsZero() != (child.heapIndex < 0) {
					t.Errorf("node %q: expiry %v but heap index %d", ct, m.Expiry, child.heapIndex)
				}
				if child.heapIndex >= 0 {
					expiringNodes++
					if child.heapIndex >= len(tr.expiring) || tr.expiring[child.heapIndex] != child {
						t.Errorf("node %q: heap index %d wrong", ct, child.heapIndex)
					}
				}
			} else if child.heapIndex >= 0 {
				t.Errorf("node %q: no message but in the heap", ct)
			}
			walk(child, ct)
		}
	}
	walk(tr.root, "")
	if got := tr.count.Load(); got != count {
		t.Errorf("count = %d, tree holds %d", got, count)
	}
	if got := tr.bytes.Load(); got != bytes {
		t.Errorf("bytes = %d, tree holds %d", got, bytes)
	}
	if len(tr.expiring) != expiringNodes {
		t.Errorf("heap holds %d nodes, tree has %d expiring messages", len(tr.expiring), expiringNodes)
	}
	for i := 1; i < len(tr.expiring); i++ {
		if tr.expiring.Less(i, (i-1)/2) {
			t.Errorf("heap order broken at %d", i)
		}
	}
}

// checkStore fails t when store does not hold exactly the messages the tree holds.
func checkStore(t testing.TB, tr *Tree, store *MemStore) {
	t.Helper()
	topics := heldTopics(tr)
	if got := store.Topics(); !slices.Equal(got, topics) {
		t.Errorf("store holds %q, tree holds %q", got, topics)
	}
	for _, topic := range topics {
		want, _ := tr.Get(topic)
		if got, _ := store.Get(topic); got != want {
			t.Errorf("store's message for %q is not the tree's", topic)
		}
	}
}

var errStore = errors.New("store failure")

// faultyStore is a MemStore whose Put, Delete or Load fail on demand.
type faultyStore struct {
	MemStore
	mu                            sync.Mutex
	failPut, failDelete, failLoad bool
}

func (s *faultyStore) fail(put, del, load bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPut, s.failDelete, s.failLoad = put, del, load
}

func (s *faultyStore) Put(m *mqtt.Message) error {
	s.mu.Lock()
	fail := s.failPut
	s.mu.Unlock()
	if fail {
		return errStore
	}
	return s.MemStore.Put(m)
}

func (s *faultyStore) Delete(topic string) error {
	s.mu.Lock()
	fail := s.failDelete
	s.mu.Unlock()
	if fail {
		return errStore
	}
	return s.MemStore.Delete(topic)
}

func (s *faultyStore) Load(fn func(m *mqtt.Message) error) error {
	s.mu.Lock()
	fail := s.failLoad
	s.mu.Unlock()
	if fail {
		return errStore
	}
	return s.MemStore.Load(fn)
}
