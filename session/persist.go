package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Keys of a persistent session in its Store. A client identifier never holds
// U+0000 [MQTT-1.5.4-2], so it ends the identifier within a key.
//
//	m/{id}                  the session: expiry interval, when it went offline, the username
//	s/{id}\x00{filter}      a subscription and its options
//	q/{id}\x00{seq}         a QoS 1 or 2 message owed to the client, queued or inflight
//	i/{id}\x00{seq}         the packet identifier and state of an inflight message
//	p/{id}\x00{packet id}   a QoS 2 packet identifier received and awaiting PUBREL
//
// seq is the message's position in the session's queue, sixteen hex digits, so
// that key order is queue order.
const (
	prefixMeta     = "m/"
	prefixSub      = "s/"
	prefixQueued   = "q/"
	prefixInflight = "i/"
	prefixRelease  = "p/"
)

func seqKey(prefix, id string, seq uint64) string {
	return prefix + id + "\x00" + fmt.Sprintf("%016x", seq)
}

func releaseKey(id string, pid uint16) string {
	return prefixRelease + id + "\x00" + fmt.Sprintf("%04x", pid)
}

func subKey(id, filter string) string { return prefixSub + id + "\x00" + filter }

// SubscriptionRecord is a persistent session's subscription as stored.
type SubscriptionRecord struct {
	Filter         string
	Options        mqtt.Subscription // QoS, NoLocal, RetainAsPublished, RetainHandling; Filter unused
	SubscriptionID uint32
}

// Persistent reports whether the session's state is written to its store: it has a
// store and a non-zero expiry interval.
func (s *Session) Persistent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistentLocked()
}

func (s *Session) persistentLocked() bool { return s.store != nil && s.expiry != 0 }

// SaveMeta writes the session's expiry interval and, when offline is not zero, the
// time it went offline; a zero offline marks it connected.
func (s *Session) SaveMeta(offline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.persistentLocked() {
		return
	}
	s.store.Set(prefixMeta+s.id, s.metaLocked(offline))
}

// metaLocked encodes the session's meta record. Called with mu held.
func (s *Session) metaLocked(offline time.Time) []byte {
	b := make([]byte, 12, 12+len(s.username))
	binary.BigEndian.PutUint32(b[0:], s.expiry)
	if !offline.IsZero() {
		binary.BigEndian.PutUint64(b[4:], uint64(offline.Unix()))
	}
	return append(b, s.username...)
}

// SaveSubscription records a subscription of a persistent session.
func (s *Session) SaveSubscription(r SubscriptionRecord) {
	if !s.Persistent() {
		return
	}
	s.store.Set(subKey(s.id, r.Filter), encodeSubscription(r))
}

func encodeSubscription(r SubscriptionRecord) []byte {
	b := make([]byte, 0, 7)
	var flags byte
	if r.Options.NoLocal {
		flags |= 1
	}
	if r.Options.RetainAsPublished {
		flags |= 2
	}
	b = append(b, byte(r.Options.QoS), flags, r.Options.RetainHandling)
	return binary.BigEndian.AppendUint32(b, r.SubscriptionID)
}

// DeleteSubscription removes a stored subscription, if the session has a store.
func (s *Session) DeleteSubscription(filter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		s.store.Delete(subKey(s.id, filter))
	}
}

// Purge removes everything the store holds of the session but its
// subscriptions, which the caller removes with DeleteSubscription. The session
// is not persistent afterwards.
func (s *Session) Purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		return
	}
	s.store.Delete(prefixMeta + s.id)
	for i := 0; i < s.queue.len(); i++ {
		s.deleteDelivery(s.queue.at(i).seq)
	}
	for i := range s.inflight {
		s.deleteDelivery(s.inflight[i].seq)
	}
	for pid := range s.awaitRel {
		s.store.Delete(releaseKey(s.id, pid))
	}
	s.store = nil
}

// writeDelivery stores a queued QoS 1 or 2 message. Called with mu held.
func (s *Session) writeDelivery(d *Delivery) {
	if b, ok := encodeDelivery(d); ok {
		s.store.Set(seqKey(prefixQueued, s.id, d.seq), b)
	}
}

// encodeDelivery encodes a queued message as its q/ record holds it.
func encodeDelivery(d *Delivery) ([]byte, bool) {
	b := make([]byte, 0, 64+len(d.Msg.Payload))
	var retain byte
	if d.Retain {
		retain = 1
	}
	b = append(b, byte(d.QoS), retain)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Group)))
	b = append(b, d.Group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SubscriptionIDs)))
	for _, id := range d.SubscriptionIDs {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	b, err := d.Msg.AppendBinary(b)
	// A message that decoded can be encoded; there is nothing to keep otherwise.
	return b, err == nil
}

// writeInflight stores the packet identifier and state of an inflight message.
func (s *Session) writeInflight(f *Inflight) {
	s.store.Set(seqKey(prefixInflight, s.id, f.seq), encodeInflight(f))
}

func encodeInflight(f *Inflight) []byte {
	return []byte{byte(f.PacketID >> 8), byte(f.PacketID), byte(f.State)}
}

func (s *Session) deleteDelivery(seq uint64) {
	s.store.Delete(seqKey(prefixQueued, s.id, seq))
	s.store.Delete(seqKey(prefixInflight, s.id, seq))
}

// Loaded is a persistent session read back from a Store.
type Loaded struct {
	Session       *Session
	Subscriptions []SubscriptionRecord
	// Offline is when the session went offline; for a session that was connected
	// when the broker stopped, the time of loading.
	Offline time.Time
}

var errCorrupt = errors.New("corrupt record")

// Load reads every persistent session from store and calls fn for each, in
// client identifier order. now stands for the offline time of sessions that were
// connected when the broker stopped. Loaded sessions write to store from now on.
func Load(store Store, limits Limits, now time.Time, fn func(*Loaded) error) error {
	sessions := map[string]*Loaded{}
	var order []string
	get := func(id string) *Loaded {
		l := sessions[id]
		if l == nil {
			l = &Loaded{Session: New(id, limits), Offline: now}
			l.Session.store = store
			sessions[id] = l
			order = append(order, id)
		}
		return l
	}
	err := store.Scan(prefixMeta, func(key string, v []byte) error {
		if len(v) < 12 {
			return fmt.Errorf("session: %q: %w", key, errCorrupt)
		}
		l := get(strings.TrimPrefix(key, prefixMeta))
		l.Session.expiry = binary.BigEndian.Uint32(v)
		l.Session.username = string(v[12:])
		if off := binary.BigEndian.Uint64(v[4:]); off != 0 {
			l.Offline = time.Unix(int64(off), 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	split := func(prefix, key string) (*Loaded, string, error) {
		id, rest, ok := strings.Cut(strings.TrimPrefix(key, prefix), "\x00")
		l := sessions[id]
		if !ok || l == nil {
			return nil, "", fmt.Errorf("session: %q: no session record: %w", key, errCorrupt)
		}
		return l, rest, nil
	}
	if err := store.Scan(prefixSub, func(key string, v []byte) error {
		l, filter, err := split(prefixSub, key)
		if err != nil {
			return err
		}
		if len(v) != 7 {
			return fmt.Errorf("session: %q: %w", key, errCorrupt)
		}
		l.Subscriptions = append(l.Subscriptions, SubscriptionRecord{Filter: filter,
			Options: mqtt.Subscription{QoS: mqtt.QoS(v[0]), NoLocal: v[1]&1 != 0, RetainAsPublished: v[1]&2 != 0,
				RetainHandling: v[2]}, SubscriptionID: binary.BigEndian.Uint32(v[3:])})
		return nil
	}); err != nil {
		return err
	}
	// Queued messages in queue order, then the inflight state of those sent.
	queued := map[string]map[uint64]Delivery{}
	if err := store.Scan(prefixQueued, func(key string, v []byte) error {
		l, rest, err := split(prefixQueued, key)
		if err != nil {
			return err
		}
		seq, err := strconv.ParseUint(rest, 16, 64)
		if err != nil {
			return fmt.Errorf("session: %q: %w", key, errCorrupt)
		}
		d, err := decodeDelivery(v)
		if err != nil {
			return fmt.Errorf("session: %q: %w", key, err)
		}
		d.seq = seq
		id := l.Session.id
		if queued[id] == nil {
			queued[id] = map[uint64]Delivery{}
		}
		queued[id][seq] = d
		l.Session.queue.push(d)
		l.Session.seq = max(l.Session.seq, seq)
		return nil
	}); err != nil {
		return err
	}
	sent := map[*Session]map[uint64]bool{}
	if err := store.Scan(prefixInflight, func(key string, v []byte) error {
		l, rest, err := split(prefixInflight, key)
		if err != nil {
			return err
		}
		seq, err := strconv.ParseUint(rest, 16, 64)
		if err != nil || len(v) != 3 {
			return fmt.Errorf("session: %q: %w", key, errCorrupt)
		}
		s := l.Session
		f := Inflight{PacketID: uint16(v[0])<<8 | uint16(v[1]), State: State(v[2])}
		d, ok := queued[s.id][seq]
		switch {
		case f.State == AwaitPubcomp:
			// The PUBLISH is never sent again; only the PUBREL.
			f.Delivery = Delivery{QoS: mqtt.ExactlyOnce, seq: seq}
		case ok:
			f.Delivery = d
		default:
			return nil // completed: its message was removed before its state
		}
		s.inflight = append(s.inflight, f)
		s.seq = max(s.seq, seq)
		if sent[s] == nil {
			sent[s] = map[uint64]bool{}
		}
		sent[s][seq] = true
		return nil
	}); err != nil {
		return err
	}
	for s, seqs := range sent {
		s.queue.filter(func(q *Delivery) bool { return !seqs[q.seq] })
	}
	if err := store.Scan(prefixRelease, func(key string, v []byte) error {
		l, rest, err := split(prefixRelease, key)
		if err != nil {
			return err
		}
		pid, err := strconv.ParseUint(rest, 16, 16)
		if err != nil {
			return fmt.Errorf("session: %q: %w", key, errCorrupt)
		}
		l.Session.awaitRel[uint16(pid)] = now
		return nil
	}); err != nil {
		return err
	}
	for _, id := range order {
		s := sessions[id].Session
		for i := 0; i < s.queue.len(); i++ {
			limits.Budget.force(cost(s.queue.at(i)))
		}
		for i := range s.inflight {
			limits.Budget.force(cost(&s.inflight[i].Delivery))
		}
		if err := fn(sessions[id]); err != nil {
			return err
		}
	}
	return nil
}

func decodeDelivery(v []byte) (Delivery, error) {
	var d Delivery
	if len(v) < 6 {
		return d, errCorrupt
	}
	d.QoS, d.Retain = mqtt.QoS(v[0]), v[1] == 1
	n := int(binary.BigEndian.Uint16(v[2:]))
	v = v[4:]
	if len(v) < n+2 {
		return d, errCorrupt
	}
	d.Group, v = string(v[:n]), v[n:]
	k := int(binary.BigEndian.Uint16(v))
	v = v[2:]
	if len(v) < 4*k {
		return d, errCorrupt
	}
	for i := 0; i < k; i++ {
		d.SubscriptionIDs = append(d.SubscriptionIDs, binary.BigEndian.Uint32(v[4*i:]))
	}
	m, err := mqtt.UnmarshalMessage(v[4*k:])
	if err != nil {
		return d, err
	}
	d.Msg = m
	return d, nil
}
