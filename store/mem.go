package store

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/avocet-mqtt/avocet/retain"
)

// Mem is the in-memory twin of DB, for tests of the packages that use a store:
// a session.Store, and a retain.Store through Retained, keeping its records in a
// map. Set and Delete take effect at once, so Scan sees them when they return.
// Like a DB's, a Mem's barrier callbacks run in the order the barriers were
// made, on a goroutine of the Mem's (one at a time), never on the goroutine that
// called Barrier: code that holds a lock while calling Barrier, and whose
// callback takes that lock, works with a Mem as it does with a DB. The zero
// value is not usable; call NewMem. A Mem needs no closing.
type Mem struct {
	mu   sync.Mutex
	data map[string][]byte // values are owned by the Mem and never modified; guarded by mu

	cbMu    sync.Mutex
	cbs     []func(error) // barrier callbacks not yet called, oldest first; guarded by cbMu
	calling bool          // a goroutine is calling cbs; guarded by cbMu
}

// NewMem returns an empty Mem.
func NewMem() *Mem {
	return &Mem{data: make(map[string][]byte)}
}

// Set sets key to value; the Mem keeps value, not a copy.
func (m *Mem) Set(key string, value []byte) { _ = m.put(key, value) }

// Delete removes key.
func (m *Mem) Delete(key string) { _ = m.del(key) }

func (m *Mem) put(key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[key] = value
	return nil
}

func (m *Mem) del(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

// Barrier queues fn to be called with nil from the Mem's callback goroutine,
// after the callbacks of the barriers made before it.
func (m *Mem) Barrier(fn func(err error)) {
	m.cbMu.Lock()
	defer m.cbMu.Unlock()
	m.cbs = append(m.cbs, fn)
	if !m.calling {
		m.calling = true
		go m.callBarriers()
	}
}

// callBarriers calls the queued callbacks until none is left. At most one runs
// at a time, which keeps the callbacks in order.
func (m *Mem) callBarriers() {
	var cbs []func(error)
	for {
		m.cbMu.Lock()
		if len(m.cbs) == 0 {
			m.calling = false
			m.cbMu.Unlock()
			return
		}
		cbs, m.cbs = m.cbs, cbs[:0]
		m.cbMu.Unlock()
		for _, fn := range cbs {
			fn(nil)
		}
		clear(cbs)
	}
}

// Scan calls fn for every key with the given prefix, in key order, with a copy
// of its value that is valid until fn returns. fn runs without the Mem's lock
// held.
func (m *Mem) Scan(prefix string, fn func(key string, value []byte) error) error {
	type record struct {
		key string
		val []byte
	}
	m.mu.Lock()
	var recs []record
	for k, v := range m.data {
		if strings.HasPrefix(k, prefix) {
			recs = append(recs, record{k, v})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.key, b.key) })
	var buf []byte
	for _, r := range recs {
		buf = append(buf[:0], r.val...)
		if err := fn(r.key, buf); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the value stored under key; the caller must not modify it.
func (m *Mem) Get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[key]
	return v, ok
}

// Keys returns the stored keys in order.
func (m *Mem) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.data))
}

// Retained returns the retain.Store kept in m, with the same keys and encoding
// as DB.Retained: Put encodes the message and Load decodes it.
func (m *Mem) Retained() retain.Store { return retained{m} }
