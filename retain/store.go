package retain

import (
	"maps"
	"slices"
	"sync"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Store keeps retained messages across restarts, one per topic name. A Tree calls
// its Store; nothing else should write to it while the tree is in use.
//
// Put and Delete are called synchronously by Tree.Set, Tree.Delete and Tree.Sweep
// (and Delete by New, for the expired messages Load gave), one at a time and in
// the order the changes take effect: the tree never calls them concurrently. They are called without the tree's lock held, so lookups go
// on while they run, but every other change to the tree waits for them. A Store
// should therefore be fast; it may batch, handing the change to a writer that
// commits several at once, as long as a later Load sees the changes in the order
// they were made. When Put or Delete returns an error the tree is left unchanged
// and the error is returned to the caller of Set, Delete or Sweep.
type Store interface {
	// Put stores m as the retained message for m.Topic, replacing any. m is shared
	// and immutable: the store may keep it and encode it later, but must not
	// modify it, its Payload or its Properties.
	Put(m *mqtt.Message) error
	// Delete removes the retained message for topic. Deleting a topic that holds
	// none is not an error.
	Delete(topic string) error
	// Load calls fn for every message the store holds, in any order, one at a time
	// from the goroutine that called Load. It stops at the first error fn returns
	// and returns it. fn keeps the messages it is given: the store must not reuse
	// them or their slices afterwards. fn does not call the store. New calls Load
	// once, before the tree is used.
	Load(fn func(m *mqtt.Message) error) error
}

// MemStore is a Store that keeps messages in a map: the in-memory twin of the
// BuntDB store, for tests. It keeps the messages it is given, not copies. The zero
// value is an empty store ready to use; it is safe for concurrent use.
type MemStore struct {
	mu   sync.Mutex
	msgs map[string]*mqtt.Message // by topic; guarded by mu
}

// Put stores m as the retained message for m.Topic.
func (s *MemStore) Put(m *mqtt.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs == nil {
		s.msgs = make(map[string]*mqtt.Message)
	}
	s.msgs[m.Topic] = m
	return nil
}

// Delete removes the retained message for topic, if any.
func (s *MemStore) Delete(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, topic)
	return nil
}

// Load calls fn for every stored message in topic order, without the store's lock
// held, and returns the first error fn returns.
func (s *MemStore) Load(fn func(m *mqtt.Message) error) error {
	for _, m := range s.snapshot() {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the message stored for topic.
func (s *MemStore) Get(topic string) (*mqtt.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[topic]
	return m, ok
}

// Len returns how many messages the store holds.
func (s *MemStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Topics returns the topics of the stored messages in ascending order. The slice
// is the caller's.
func (s *MemStore) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.msgs))
}

func (s *MemStore) snapshot() []*mqtt.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*mqtt.Message, 0, len(s.msgs))
	for _, topic := range slices.Sorted(maps.Keys(s.msgs)) {
		out = append(out, s.msgs[topic])
	}
	return out
}
