package broker

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// SessionInfo describes a session for operators: the admin API, the status page.
type SessionInfo struct {
	ClientID      string    `json:"client_id"`
	Online        bool      `json:"online"`
	Username      string    `json:"username,omitempty"`
	Listener      string    `json:"listener,omitempty"`
	RemoteAddr    string    `json:"remote_addr,omitempty"`
	Version       string    `json:"protocol_version,omitempty"`
	ConnectedAt   time.Time `json:"connected_at,omitzero"`
	KeepAlive     int       `json:"keep_alive,omitempty"` // seconds
	Expiry        uint32    `json:"session_expiry"`       // seconds; 4294967295 never
	Persistent    bool      `json:"persistent"`           // outlives its connection
	Queued        int       `json:"queued"`
	Inflight      int       `json:"inflight"`
	Subscriptions int       `json:"subscriptions"`
}

func (b *Broker) info(cs *clientSession) SessionInfo {
	exp := cs.s.Expiry()
	si := SessionInfo{ClientID: cs.id, Expiry: exp, Persistent: exp != 0,
		Queued: cs.s.Queued(), Inflight: cs.s.InflightCount()}
	if c := cs.conn.Load(); c != nil {
		si.Online = true
		si.Username = c.username
		si.Listener = c.listener
		si.RemoteAddr = c.nc.RemoteAddr().String()
		si.Version = c.version.String()
		si.ConnectedAt = c.connectedAt
		si.KeepAlive = int(c.keepAlive / time.Second)
	}
	return si
}

// Sessions returns every session, online or not, sorted by client identifier.
func (b *Broker) Sessions() []SessionInfo {
	b.mu.RLock()
	list := make([]*clientSession, 0, len(b.sessions))
	for _, cs := range b.sessions {
		list = append(list, cs)
	}
	b.mu.RUnlock()
	out := make([]SessionInfo, 0, len(list))
	for _, cs := range list {
		si := b.info(cs)
		si.Subscriptions = len(b.tree.Subscriptions(cs.id))
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

// Session returns one session and its subscriptions.
func (b *Broker) Session(id string) (SessionInfo, []Subscription, bool) {
	b.mu.RLock()
	cs := b.sessions[id]
	b.mu.RUnlock()
	if cs == nil {
		return SessionInfo{}, nil, false
	}
	subs := b.tree.Subscriptions(id)
	si := b.info(cs)
	si.Subscriptions = len(subs)
	return si, subs, true
}

// Disconnect closes the connection of client id (5.0 clients get DISCONNECT
// 0x98, administrative action); its session follows the usual rules. It reports
// whether the client was connected.
func (b *Broker) Disconnect(id string) bool {
	b.mu.RLock()
	cs := b.sessions[id]
	b.mu.RUnlock()
	if cs == nil {
		return false
	}
	c := cs.conn.Load()
	if c == nil {
		return false
	}
	c.kick(mqtt.AdministrativeAction)
	return true
}

// DeleteSession disconnects client id if it is connected and removes its session,
// subscriptions and queued messages. It reports whether the session existed.
func (b *Broker) DeleteSession(id string) bool {
	b.mu.RLock()
	cs := b.sessions[id]
	b.mu.RUnlock()
	if cs == nil {
		return false
	}
	if c := cs.conn.Load(); c != nil {
		c.kick(mqtt.AdministrativeAction)
		<-c.settled()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sessions[id] != cs {
		return true // ended with its connection
	}
	cs.will = nil
	b.endSessionLocked(cs, false)
	return true
}

// TraceEvent is one packet of a traced client.
type TraceEvent struct {
	Time     time.Time
	ClientID string
	Inbound  bool // from the client
	Packet   mqtt.Packet
}

type tracer struct {
	clientID string
	fn       func(TraceEvent)
}

// Trace calls fn for every packet client id sends or receives from now on (also
// after it reconnects), until stop is called. fn runs on the connection's
// goroutines and must not block; the packet is only valid during the call. The
// caller hides secrets and truncates payloads as it sees fit.
func (b *Broker) Trace(clientID string, fn func(TraceEvent)) (stop func()) {
	t := &tracer{clientID: clientID, fn: fn}
	b.traceMu.Lock()
	b.traces = append(b.traces, t)
	b.tracing.Store(int32(len(b.traces)))
	b.traceMu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		b.traceMu.Lock()
		b.traces = slices.DeleteFunc(b.traces, func(x *tracer) bool { return x == t })
		b.tracing.Store(int32(len(b.traces)))
		b.traceMu.Unlock()
	}
}

func (b *Broker) trace(c *conn, in bool, p mqtt.Packet) {
	b.traceMu.Lock()
	defer b.traceMu.Unlock()
	for _, t := range b.traces {
		if t.clientID == c.clientID {
			t.fn(TraceEvent{Time: time.Now(), ClientID: c.clientID, Inbound: in, Packet: p})
		}
	}
}

func (b *Broker) traceIn(c *conn, p mqtt.Packet) {
	if b.tracing.Load() > 0 {
		b.trace(c, true, p)
	}
}

func (b *Broker) traceOut(c *conn, p mqtt.Packet) {
	if b.tracing.Load() > 0 {
		b.trace(c, false, p)
	}
}
