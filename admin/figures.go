package admin

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/avocet-mqtt/avocet/bridge"
)

// The $SYS topics whose values the status and the metrics share with the
// broker's own publication, so that they never disagree.
const (
	sysUptime    = "$SYS/broker/uptime" // "N seconds"
	sysConnected = "$SYS/broker/clients/connected"
	sysSessions  = "$SYS/broker/clients/total"
)

// sysFigures are the figures the broker computes for $SYS that it keeps no
// counter for.
type sysFigures struct {
	uptime          time.Duration
	online, offline int64 // sessions with and without a connection
}

// sysFigures reads them from (*broker.Broker).SysTopics: the uptime and the
// sessions, online and offline, exactly as $SYS publishes them.
func (s *Server) sysFigures() sysFigures {
	t := s.b.SysTopics()
	f := sysFigures{uptime: time.Since(s.start)}
	if v, _, ok := strings.Cut(t[sysUptime], " "); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			f.uptime = time.Duration(n) * time.Second
		}
	}
	f.online, _ = strconv.ParseInt(t[sysConnected], 10, 64)
	total, _ := strconv.ParseInt(t[sysSessions], 10, 64)
	f.offline = max(0, total-f.online)
	return f
}

// sessionTotals caches the sums over every session that the broker keeps no
// counter for, queued and inflight messages, which cost a walk of all
// sessions: the walk runs at most once per ttl, however often the status
// page polls and Prometheus scrapes.
type sessionTotals struct {
	mu       sync.Mutex
	at       time.Time // of the last walk; guarded by mu
	queued   int64     // guarded by mu
	inflight int64     // guarded by mu
	ttl      time.Duration
}

// defaultTotalsTTL bounds how stale the queued and inflight sums may be.
const defaultTotalsTTL = 2 * time.Second

// queueTotals returns the messages queued for and inflight to all sessions.
func (s *Server) queueTotals() (queued, inflight int64) {
	t := &s.totals
	t.mu.Lock()
	defer t.mu.Unlock()
	ttl := t.ttl
	if ttl == 0 {
		ttl = defaultTotalsTTL
	}
	if now := time.Now(); t.at.IsZero() || now.Sub(t.at) >= ttl || ttl < 0 {
		t.queued, t.inflight = 0, 0
		for _, si := range s.b.Sessions() {
			t.queued += int64(si.Queued)
			t.inflight += int64(si.Inflight)
		}
		t.at = now
	}
	return t.queued, t.inflight
}

// listenerList returns the listeners, none when the server has no Listeners.
func (s *Server) listenerList() []ListenerInfo {
	if s.opts.Listeners == nil {
		return []ListenerInfo{}
	}
	l := s.opts.Listeners.List()
	if l == nil {
		l = []ListenerInfo{}
	}
	return l
}

// bridgeList returns the bridges sorted by name, none when the server has
// no Bridges.
func (s *Server) bridgeList() []bridge.Status {
	if s.opts.Bridges == nil {
		return []bridge.Status{}
	}
	l := slices.Clone(s.opts.Bridges())
	if l == nil {
		return []bridge.Status{}
	}
	slices.SortFunc(l, func(a, b bridge.Status) int { return cmp.Compare(a.Name, b.Name) })
	return l
}

// nodeName and version fall back on the broker's options.
func (s *Server) nodeName() string {
	if s.opts.NodeName != "" {
		return s.opts.NodeName
	}
	return s.b.Options().NodeName
}

func (s *Server) version() string {
	if s.opts.Version != "" {
		return s.opts.Version
	}
	return s.b.Options().Version
}
