package session

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// NeverExpire is the session expiry interval of a session that does not expire
// (MQTT 5.0 section 3.1.2.11.2), and of a 3.x session with Clean Session 0.
const NeverExpire = 0xFFFFFFFF

// DropPolicy says which message goes when a session's queue is full.
type DropPolicy int

// The drop policies.
const (
	DropOldest DropPolicy = iota + 1 // make room by dropping the oldest queued message
	DropNewest                       // refuse the message that does not fit
)

// String returns "oldest" or "newest".
func (p DropPolicy) String() string {
	switch p {
	case DropOldest:
		return "oldest"
	case DropNewest:
		return "newest"
	}
	return "DropPolicy(?)"
}

// Delivery is one message on its way to one session, with what is particular to
// this receiver. Msg and SubscriptionIDs are shared and read-only.
type Delivery struct {
	Msg             *mqtt.Message
	QoS             mqtt.QoS // the QoS it is sent with
	Retain          bool     // the RETAIN flag it is sent with
	SubscriptionIDs []uint32 // 5.0: identifiers of the matching subscriptions
	// Group is the shared subscription, as "$share/{ShareName}/{filter}", through
	// which the message came; empty for non-shared subscriptions.
	Group string

	seq uint64 // position in the session's queue, for its store keys
}

// State is where a sent QoS 1 or QoS 2 message stands.
type State byte

// The states of an inflight message.
const (
	AwaitPuback  State = iota + 1 // QoS 1 sent, PUBACK not yet received
	AwaitPubrec                   // QoS 2 sent, PUBREC not yet received
	AwaitPubcomp                  // QoS 2 PUBREC received, PUBREL sent, PUBCOMP not yet received
)

// String names the state by the packet awaited.
func (s State) String() string {
	switch s {
	case AwaitPuback:
		return "await PUBACK"
	case AwaitPubrec:
		return "await PUBREC"
	case AwaitPubcomp:
		return "await PUBCOMP"
	}
	return "State(?)"
}

// Inflight is a QoS 1 or QoS 2 message sent to the client and not yet acknowledged.
type Inflight struct {
	Delivery
	PacketID uint16
	State    State
	// Sent reports whether the PUBLISH (or, in AwaitPubcomp, the PUBREL) went out
	// on the current connection; false after a reconnect, until it is resent with DUP.
	Sent bool
}

// Errors of Session methods.
var (
	// ErrQueueFull is returned by Enqueue when the queue is full under DropNewest.
	ErrQueueFull = errors.New("session: queue full")
	// ErrEnded is returned by Enqueue once the session has ended (Free).
	ErrEnded = errors.New("session: ended")
	// ErrUnknownPacketID is returned for an acknowledgement of a packet identifier
	// that is not inflight in the expected state.
	ErrUnknownPacketID = errors.New("session: packet identifier not inflight")
)

// Limits bound a session's memory.
type Limits struct {
	MaxQueued int        // messages waiting to be sent; 0 = unlimited
	Drop      DropPolicy // what goes when MaxQueued or Budget is reached
	// Budget, shared by every session, bounds the payload bytes they hold
	// together; nil is unlimited.
	Budget *Budget
}

// Session is the state of one client's session. Its methods are safe for
// concurrent use: publishers' goroutines enqueue while the connection's reader
// acknowledges and its writer dequeues.
type Session struct {
	id     string
	limits Limits

	mu         sync.Mutex
	expiry     uint32                 // session expiry interval, seconds; guarded by mu
	queue      ring                   // waiting to be sent; guarded by mu
	inflight   []Inflight             // in send order; guarded by mu
	nextID     uint16                 // last packet identifier handed out; guarded by mu
	awaitRel   map[uint16]time.Time   // QoS 2 received, PUBREC sent, PUBREL awaited; guarded by mu
	waker      atomic.Pointer[func()] // called when something is queued; nil: none
	crowded    atomic.Bool            // the queue is at least half full: see WaitRoom
	stalled    bool                   // a wait for room timed out; guarded by mu
	room       chan struct{}          // closed when the queue has room again; guarded by mu
	droppedCnt int64                  // messages dropped by the queue policy; guarded by mu
	store      Store                  // nil: memory only; guarded by mu
	freed      bool                   // the session ended; guarded by mu
	username   string                 // of the last connection; guarded by mu
	seq        uint64                 // last queue position handed out; guarded by mu
}

// New returns an empty session for client id.
func New(id string, limits Limits) *Session {
	if limits.Drop == 0 {
		limits.Drop = DropOldest
	}
	return &Session{id: id, limits: limits, awaitRel: map[uint16]time.Time{}}
}

// AttachStore makes the session write its state to st whenever its expiry
// interval is not zero. Call it before the session is used.
func (s *Session) AttachStore(st Store) {
	s.mu.Lock()
	s.store = st
	s.mu.Unlock()
}

// SetUsername records the username of the session's connection, kept with the
// session in its store (SaveMeta writes it).
func (s *Session) SetUsername(u string) {
	s.mu.Lock()
	s.username = u
	s.mu.Unlock()
}

// Username returns the username of the session's last connection.
func (s *Session) Username() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.username
}

// ID returns the client identifier.
func (s *Session) ID() string { return s.id }

// Expiry returns the session expiry interval in seconds.
func (s *Session) Expiry() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiry
}

// SetExpiry sets the session expiry interval in seconds.
func (s *Session) SetExpiry(sec uint32) {
	s.mu.Lock()
	s.expiry = sec
	s.mu.Unlock()
}

// SetWaker makes the session call f whenever a message is queued or an inflight
// slot is freed, so that a connection can start its writer only when there is
// something to send. f must not block; nil removes it. A writer that drains the
// session until NextBatch returns nothing after its last call of f misses no work.
func (s *Session) SetWaker(f func()) {
	if f == nil {
		s.waker.Store(nil)
		return
	}
	s.waker.Store(&f)
}

func (s *Session) signal() {
	if f := s.waker.Load(); f != nil {
		(*f)()
	}
}

// Enqueue queues d to be sent. When the queue is full, the policy decides: under
// DropOldest the oldest queued message is dropped and returned, under DropNewest
// d is refused with ErrQueueFull. stored reports whether d was written to the
// session's store, so that the caller waits for a Barrier before acknowledging.
func (s *Session) Enqueue(d Delivery) (dropped *Delivery, stored bool, err error) {
	return s.enqueue(d, false)
}

// EnqueueAll is Enqueue for the retained messages a new subscription asked for:
// they are queued beyond MaxQueued, so that a client subscribing to many retained
// topics gets all of them, but never beyond the Budget.
func (s *Session) EnqueueAll(d Delivery) (dropped *Delivery, stored bool, err error) {
	return s.enqueue(d, true)
}

func (s *Session) enqueue(d Delivery, beyondMax bool) (dropped *Delivery, stored bool, err error) {
	s.mu.Lock()
	if s.freed {
		s.mu.Unlock()
		return nil, false, ErrEnded
	}
	persist := s.persistentLocked() && d.QoS > mqtt.AtMostOnce
	full := !beyondMax && s.limits.MaxQueued > 0 && s.queue.len() >= s.limits.MaxQueued
	for full || !s.limits.Budget.take(cost(&d)) {
		if s.limits.Drop == DropNewest || s.queue.len() == 0 {
			s.droppedCnt++
			s.mu.Unlock()
			return nil, false, ErrQueueFull
		}
		old := s.queue.pop()
		s.limits.Budget.give(cost(&old))
		if persist && old.seq != 0 {
			s.deleteDelivery(old.seq)
		}
		dropped = &old
		s.droppedCnt++
		full = false
	}
	s.seq++
	d.seq = s.seq
	if persist {
		s.writeDelivery(&d)
	}
	s.queue.push(d)
	if max := s.limits.MaxQueued; max > 0 && !s.stalled && s.queue.len() >= max/2 && !s.crowded.Load() {
		s.crowded.Store(true)
	}
	s.mu.Unlock()
	s.signal()
	return dropped, persist, nil
}

// Queued returns the number of messages waiting to be sent.
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.len()
}

// InflightCount returns the number of sent QoS 1 and 2 messages not yet complete.
func (s *Session) InflightCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// Dropped returns how many messages the queue policy has dropped.
func (s *Session) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.droppedCnt
}

// Next takes the next message to send. Expired messages are skipped and passed to
// expired (which may be nil; it runs with the session locked and must not call it). A QoS 0 message is returned with packet identifier
// 0. A QoS 1 or 2 message is given a packet identifier and moved to the inflight
// list, but only while fewer than window messages are inflight; otherwise it
// stays queued, ok is false, and Next must be called again after an
// acknowledgement. ok is false when nothing can be sent.
func (s *Session) Next(window int, now time.Time, expired func(Delivery)) (d Delivery, packetID uint16, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextLocked(window, now, expired)
}

// Outgoing is a message that NextBatch handed out, with its packet identifier
// (0 for QoS 0).
type Outgoing struct {
	Delivery
	PacketID uint16
}

// NextBatch appends to out up to max messages to send, as Next would give them one
// by one, under one lock: a writer that drains a busy session takes the lock once
// per batch, not once per message, so publishers filling the queue do not starve it.
func (s *Session) NextBatch(out []Outgoing, max, window int, now time.Time, expired func(Delivery)) []Outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(out) < max {
		d, id, ok := s.nextLocked(window, now, expired)
		if !ok {
			break
		}
		out = append(out, Outgoing{Delivery: d, PacketID: id})
	}
	return out
}

// nextLocked is Next with mu held.
func (s *Session) nextLocked(window int, now time.Time, expired func(Delivery)) (d Delivery, packetID uint16, ok bool) {
	for s.queue.len() > 0 {
		head := s.queue.peek()
		if head.Msg.Expired(now) { // MQTT 5.0 section 3.3.2.3.3
			gone := s.queue.pop()
			s.limits.Budget.give(cost(&gone))
			if expired != nil {
				expired(gone)
			}
			continue
		}
		if head.QoS == mqtt.AtMostOnce {
			d = s.queue.pop()
			s.limits.Budget.give(cost(&d))
			s.roomLocked()
			return d, 0, true
		}
		if len(s.inflight) >= window {
			return Delivery{}, 0, false
		}
		id, found := s.freeID()
		if !found {
			return Delivery{}, 0, false
		}
		d = s.queue.pop()
		s.roomLocked()
		state := AwaitPuback
		if d.QoS == mqtt.ExactlyOnce {
			state = AwaitPubrec
		}
		s.inflight = append(s.inflight, Inflight{Delivery: d, PacketID: id, State: state, Sent: true})
		if s.persistentLocked() {
			s.writeInflight(&s.inflight[len(s.inflight)-1])
		}
		return d, id, true
	}
	return Delivery{}, 0, false
}

// freeID returns a packet identifier not in use by an inflight message. Called with mu held.
func (s *Session) freeID() (uint16, bool) {
	for range 65535 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if s.findInflight(s.nextID) < 0 {
			return s.nextID, true
		}
	}
	return 0, false
}

func (s *Session) findInflight(id uint16) int {
	for i := range s.inflight {
		if s.inflight[i].PacketID == id {
			return i
		}
	}
	return -1
}

func (s *Session) removeInflight(i int) Inflight {
	f := s.inflight[i]
	copy(s.inflight[i:], s.inflight[i+1:])
	s.inflight[len(s.inflight)-1] = Inflight{}
	s.inflight = s.inflight[:len(s.inflight)-1]
	return f
}

// Puback completes the QoS 1 message with packet identifier id.
func (s *Session) Puback(id uint16) (Inflight, error) {
	return s.complete(id, AwaitPuback)
}

// Pubrec records the PUBREC of the QoS 2 message with packet identifier id: the
// broker then sends PUBREL. With failed set (a 5.0 reason code of 0x80 or more)
// the message is complete and its packet identifier free again (MQTT 5.0
// section 4.3.3); the broker sends no PUBREL.
func (s *Session) Pubrec(id uint16, failed bool) (Inflight, error) {
	if failed {
		return s.complete(id, AwaitPubrec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findInflight(id)
	if i < 0 {
		return Inflight{}, ErrUnknownPacketID
	}
	f := &s.inflight[i]
	switch f.State {
	case AwaitPubrec:
		f.State = AwaitPubcomp
		s.limits.Budget.give(cost(&f.Delivery))
		f.Msg = nil // the PUBLISH is never sent again [MQTT-4.3.3-6]: only the identifier is kept
		if s.persistentLocked() {
			s.writeInflight(f)
			s.store.Delete(seqKey(prefixQueued, s.id, f.seq))
		}
		return *f, nil
	case AwaitPubcomp: // a repeated PUBREC: send PUBREL again
		return *f, nil
	}
	return Inflight{}, ErrUnknownPacketID
}

// Discard completes the inflight message with packet identifier id whatever its
// state: the broker could not send it (too large for the client, say).
func (s *Session) Discard(id uint16) {
	s.mu.Lock()
	if i := s.findInflight(id); i >= 0 {
		f := s.removeInflight(i)
		s.limits.Budget.give(cost(&f.Delivery))
		if s.persistentLocked() {
			s.deleteDelivery(f.seq)
		}
	}
	s.mu.Unlock()
	s.signal()
}

// Pubcomp completes the QoS 2 message with packet identifier id.
func (s *Session) Pubcomp(id uint16) (Inflight, error) {
	return s.complete(id, AwaitPubcomp)
}

func (s *Session) complete(id uint16, want State) (Inflight, error) {
	s.mu.Lock()
	i := s.findInflight(id)
	if i < 0 || s.inflight[i].State != want {
		s.mu.Unlock()
		return Inflight{}, ErrUnknownPacketID
	}
	f := s.removeInflight(i)
	s.limits.Budget.give(cost(&f.Delivery))
	if s.persistentLocked() {
		s.deleteDelivery(f.seq)
	}
	s.mu.Unlock()
	s.signal() // a slot is free
	return f, nil
}

// Resend returns the inflight messages to send again on a new connection, in the
// order they were first sent [MQTT-4.4.0-1]: PUBLISH with DUP for those awaiting
// PUBACK or PUBREC, PUBREL for those awaiting PUBCOMP. The caller sends them
// before anything from Next.
func (s *Session) Resend() []Inflight {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Inflight, len(s.inflight))
	copy(out, s.inflight)
	return out
}

// Unsent marks every inflight message as not yet sent on the current connection;
// the broker calls it when a connection ends.
func (s *Session) Unsent() {
	s.mu.Lock()
	for i := range s.inflight {
		s.inflight[i].Sent = false
	}
	s.mu.Unlock()
}

// TakeShared removes and returns the messages that came through a shared
// subscription and that the client has not received for sure: queued ones, and
// inflight ones still awaiting PUBACK or PUBREC. The broker offers them to
// another member of their group when this client leaves (MQTT 5.0 section 4.8.2).
func (s *Session) TakeShared() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Delivery
	kept := s.inflight[:0]
	for _, f := range s.inflight {
		if f.Group != "" && f.State != AwaitPubcomp {
			out = append(out, f.Delivery)
			continue
		}
		kept = append(kept, f)
	}
	clear(s.inflight[len(kept):])
	s.inflight = kept
	out = append(out, s.queue.filter(func(d *Delivery) bool { return d.Group == "" })...)
	for i := range out {
		s.limits.Budget.give(cost(&out[i]))
		if s.persistentLocked() {
			s.deleteDelivery(out[i].seq)
		}
	}
	s.roomLocked()
	return out
}

// Free gives back to the budget what the session holds, when it ends; the
// session must not be used afterwards.
func (s *Session) Free() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < s.queue.len(); i++ {
		s.limits.Budget.give(cost(s.queue.at(i)))
	}
	for i := range s.inflight {
		s.limits.Budget.give(cost(&s.inflight[i].Delivery))
	}
	s.queue = ring{}
	s.inflight = nil
	s.freed = true
	s.roomLocked()
}

// DropQoS0 removes QoS 0 messages from the queue, which are not kept for an
// offline session, and returns how many it removed.
func (s *Session) DropQoS0() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := s.queue.filter(func(d *Delivery) bool { return d.QoS != mqtt.AtMostOnce })
	for i := range gone {
		s.limits.Budget.give(cost(&gone[i]))
	}
	s.roomLocked()
	return len(gone)
}

// ReceiveQoS2 records that a QoS 2 PUBLISH with packet identifier id arrived at
// now. It returns false when id was already awaiting PUBREL: the message is a
// duplicate and must not be delivered again [MQTT-4.3.3-9]. max bounds the identifiers awaiting PUBREL (the receive maximum
// the broker announced); exceeding it returns ErrQueueFull.
func (s *Session) ReceiveQoS2(id uint16, now time.Time, max int) (first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.awaitRel[id]; dup {
		return false, nil
	}
	if max > 0 && len(s.awaitRel) >= max {
		return false, ErrQueueFull
	}
	s.awaitRel[id] = now
	if s.persistentLocked() {
		s.store.Set(releaseKey(s.id, id), []byte{1})
	}
	return true, nil
}

// Release handles PUBREL for packet identifier id: the identifier may be used
// again. It reports whether id was awaiting PUBREL.
func (s *Session) Release(id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.awaitRel[id]
	delete(s.awaitRel, id)
	if ok && s.persistentLocked() {
		s.store.Delete(releaseKey(s.id, id))
	}
	return ok
}

// AwaitingRelease returns how many QoS 2 packet identifiers await PUBREL.
func (s *Session) AwaitingRelease() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.awaitRel)
}
