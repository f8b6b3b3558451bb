package session

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Record is one key and value of a session as a Store holds it.
type Record struct {
	Key   string
	Value []byte
}

// Snapshot returns the whole state of the session as the records a Store would
// hold for it, in key order: its meta record (with offline as the time it went
// offline), the subscriptions subs, the queued and inflight messages, and the QoS 2
// packet identifiers awaiting PUBREL. It works whether or not the session has a
// store, so that a session held in memory can move to another node too. Restore
// makes a session from the records. Take the snapshot of an offline session.
// The session ends with it: it takes no more messages (Enqueue returns
// ErrEnded), so that none is left behind; Purge and Free it next.
func (s *Session) Snapshot(subs []SubscriptionRecord, offline time.Time) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.freed = true
	recs := []Record{{Key: prefixMeta + s.id, Value: s.metaLocked(offline)}}
	for _, r := range subs {
		recs = append(recs, Record{Key: subKey(s.id, r.Filter), Value: encodeSubscription(r)})
	}
	add := func(d *Delivery) {
		if b, ok := encodeDelivery(d); ok {
			recs = append(recs, Record{Key: seqKey(prefixQueued, s.id, d.seq), Value: b})
		}
	}
	for i := range s.inflight {
		f := &s.inflight[i]
		if f.State != AwaitPubcomp {
			add(&f.Delivery)
		}
		recs = append(recs, Record{Key: seqKey(prefixInflight, s.id, f.seq), Value: encodeInflight(f)})
	}
	for i := 0; i < s.queue.len(); i++ {
		add(s.queue.at(i))
	}
	for pid := range s.awaitRel {
		recs = append(recs, Record{Key: releaseKey(s.id, pid), Value: []byte{1}})
	}
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.Key, b.Key) })
	return recs
}

// Restore makes a session from the records of one session that Snapshot made,
// as Load would have read them from a store. The session writes to store from
// now on (nil: memory only), and when it is persistent the records are written
// to store first. now stands for the offline time when the records carry none.
func Restore(records []Record, store Store, limits Limits, now time.Time) (*Loaded, error) {
	rs := make(recordStore, len(records))
	for _, r := range records {
		rs[r.Key] = r.Value
	}
	var loaded *Loaded
	err := Load(rs, limits, now, func(l *Loaded) error {
		if loaded != nil {
			return fmt.Errorf("session: restore: records of more than one session: %q and %q", loaded.Session.id, l.Session.id)
		}
		loaded = l
		return nil
	})
	if err != nil {
		if loaded != nil {
			loaded.Session.Free()
		}
		return nil, fmt.Errorf("session: restore: %w", err)
	}
	if loaded == nil {
		return nil, errors.New("session: restore: no session record")
	}
	s := loaded.Session
	s.mu.Lock()
	s.store = store
	if s.persistentLocked() {
		for _, r := range records {
			store.Set(r.Key, r.Value)
		}
	}
	s.mu.Unlock()
	return loaded, nil
}

// ClientOf returns the client identifier of the session that records, as
// Snapshot makes them, hold; false when they hold no session record.
func ClientOf(records []Record) (string, bool) {
	for _, r := range records {
		if id, ok := strings.CutPrefix(r.Key, prefixMeta); ok {
			return id, true
		}
	}
	return "", false
}

// recordStore is a read-only Store over records in memory, for Restore.
type recordStore map[string][]byte

func (rs recordStore) Set(key string, value []byte) { rs[key] = value }
func (rs recordStore) Delete(key string)            { delete(rs, key) }
func (rs recordStore) Barrier(fn func(error))       { fn(nil) }
func (rs recordStore) Scan(prefix string, fn func(string, []byte) error) error {
	var keys []string
	for k := range rs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(k, rs[k]); err != nil {
			return err
		}
	}
	return nil
}
