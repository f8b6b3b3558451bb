package admin

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// Status is the body of GET /api/v1/status.
type Status struct {
	Node           string          `json:"node"`
	Version        string          `json:"version"`
	Health         string          `json:"health"` // "ok", or "draining" once a drain began
	UptimeSeconds  int64           `json:"uptime_seconds"`
	Connections    ConnectionStats `json:"connections"`
	Sessions       SessionCounts   `json:"sessions"`
	Subscriptions  int64           `json:"subscriptions"`
	Retained       RetainedStats   `json:"retained"`
	Messages       MessageStats    `json:"messages"`
	Bytes          ByteStats       `json:"bytes"`
	OutboundBytes  int64           `json:"outbound_bytes"`    // payload bytes held in all queues and inflight windows
	Queued         int64           `json:"queued_messages"`   // in all session queues; up to 2 s old
	Inflight       int64           `json:"inflight_messages"` // sent, not yet acknowledged; up to 2 s old
	ProtocolErrors int64           `json:"protocol_errors"`
	Store          *StoreStatus    `json:"store,omitempty"` // absent when sessions live in memory only
	Listeners      []ListenerInfo  `json:"listeners"`
	Bridges        BridgeSummary   `json:"bridges"`
	// Cluster is absent on a single node; GET /api/v1/cluster shows more.
	Cluster *ClusterSummary `json:"cluster,omitempty"`
}

// BridgeSummary counts the running bridges; GET /api/v1/bridges lists them.
type BridgeSummary struct {
	Count     int `json:"count"`
	Connected int `json:"connected"` // those connected to their remote broker now
}

// ConnectionStats are the broker's network connections and clients.
type ConnectionStats struct {
	Current int64 `json:"current"` // open network connections
	Total   int64 `json:"total"`   // accepted since start
	Clients int64 `json:"clients"` // connections past a successful CONNACK
	Refused int64 `json:"refused"` // CONNECTs refused since start
}

// SessionCounts are the sessions with and without a connection.
type SessionCounts struct {
	Online  int64 `json:"online"`
	Offline int64 `json:"offline"`
}

// RetainedStats are the retained messages held.
type RetainedStats struct {
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"` // topic names and payloads
}

// MessageStats count PUBLISH packets since start.
type MessageStats struct {
	Received int64            `json:"received"`
	Sent     int64            `json:"sent"`
	Dropped  map[string]int64 `json:"dropped"` // by reason: queue_full, offline, too_large, not_authorized
	Expired  int64            `json:"expired"`
	Paced    int64            `json:"paced"`       // times a publisher waited for a crowded subscriber queue
	Stalls   int64            `json:"pace_stalls"` // of those, waits that timed out
}

// ByteStats count the bytes of every packet since start.
type ByteStats struct {
	Received int64 `json:"received"`
	Sent     int64 `json:"sent"`
}

// StoreStatus describes the durable store.
type StoreStatus struct {
	Path        string  `json:"path"`
	Size        int64   `json:"size"`          // bytes of the data file
	Batches     int64   `json:"batches"`       // group commits run
	LastBatchMS float64 `json:"last_batch_ms"` // how long the last one took to write and sync
	Failures    int64   `json:"failures"`      // batches that failed to be written or synced
	Pending     int     `json:"pending"`       // changes waiting for the writer
}

// Drop reasons, as the status and the metrics label them.
const (
	dropQueueFull     = "queue_full"
	dropOffline       = "offline"
	dropTooLarge      = "too_large"
	dropNotAuthorized = "not_authorized"
)

// dropped returns the broker's dropped messages by reason.
func dropped(st *broker.Stats) map[string]int64 {
	return map[string]int64{
		dropQueueFull:     st.DroppedQueueFull.Load(),
		dropOffline:       st.DroppedOffline.Load(),
		dropTooLarge:      st.DroppedTooLarge.Load(),
		dropNotAuthorized: st.DroppedNotAuthorized.Load(),
	}
}

// currentStatus reads every figure of the status.
func (s *Server) currentStatus() Status {
	st := s.b.Stats()
	sys := s.sysFigures()
	queued, inflight := s.queueTotals()
	ret := s.b.Retained()
	out := Status{
		Node:          s.nodeName(),
		Version:       s.version(),
		Health:        "ok",
		UptimeSeconds: int64(sys.uptime / time.Second),
		Connections: ConnectionStats{
			Current: st.ConnectionsCurrent.Load(),
			Total:   st.ConnectionsTotal.Load(),
			Clients: st.ClientsConnected.Load(),
			Refused: st.ConnectsRefused.Load(),
		},
		Sessions:      SessionCounts{Online: sys.online, Offline: sys.offline},
		Subscriptions: int64(s.b.Tree().SubscriptionCount()),
		Retained:      RetainedStats{Messages: int64(ret.Len()), Bytes: ret.Bytes()},
		Messages: MessageStats{
			Received: st.MessagesReceived.Load(),
			Sent:     st.MessagesSent.Load(),
			Dropped:  dropped(st),
			Expired:  st.MessagesExpired.Load(),
			Paced:    st.PublishersPaced.Load(),
			Stalls:   st.PaceStalls.Load(),
		},
		Bytes:          ByteStats{Received: st.BytesReceived.Load(), Sent: st.BytesSent.Load()},
		OutboundBytes:  s.b.OutboundBytes(),
		Queued:         queued,
		Inflight:       inflight,
		ProtocolErrors: st.ProtocolErrors.Load(),
		Listeners:      s.listenerList(),
		Cluster:        s.clusterSummary(),
	}
	for _, br := range s.bridgeList() {
		out.Bridges.Count++
		if br.Connected {
			out.Bridges.Connected++
		}
	}
	if s.b.Draining() {
		out.Health = "draining"
	}
	if s.opts.Store != nil {
		ss := s.opts.Store.Stats()
		out.Store = &StoreStatus{
			Path:        s.opts.Store.Path(),
			Size:        ss.FileSize,
			Batches:     ss.Batches,
			LastBatchMS: float64(ss.LastBatch) / float64(time.Millisecond),
			Failures:    ss.Failures,
			Pending:     ss.Pending,
		}
	}
	return out
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.currentStatus())
}

// ---------------------------------------------------------------------------
// Bridges

// listBridges answers a page of the running bridges, sorted by name.
func (s *Server) listBridges(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, paginate(s.bridgeList(), limit, offset))
}

// ---------------------------------------------------------------------------
// Listeners

func (s *Server) listListeners(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.listenerList())
}

// ListenerAction is the answer to a listener's stop or start.
type ListenerAction struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
}

func (s *Server) stopListener(w http.ResponseWriter, r *http.Request) {
	s.listenerAction(w, r, false)
}

func (s *Server) startListener(w http.ResponseWriter, r *http.Request) {
	s.listenerAction(w, r, true)
}

func (s *Server) listenerAction(w http.ResponseWriter, r *http.Request, start bool) {
	name := r.PathValue("name")
	if s.opts.Listeners == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no listener named %q", name))
		return
	}
	var err error
	verb := "stop"
	if start {
		verb = "start"
		err = s.opts.Listeners.Start(name)
	} else {
		err = s.opts.Listeners.Stop(name)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no listener named %q", name))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s listener %q: %v", verb, name, err))
		return
	}
	if start {
		s.log.Info("listener started by the admin API", "listener", name, "remote_addr", r.RemoteAddr)
	} else {
		s.log.Info("listener stopped by the admin API", "listener", name, "remote_addr", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, ListenerAction{Name: name, Running: start})
}

// ---------------------------------------------------------------------------
// Sessions

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	idGlob, user := q.Get("client_id"), q.Get("username")
	hasID, hasUser := idGlob != "", user != "" // an empty parameter filters nothing
	var online, hasOnline bool
	switch v := q.Get("online"); v {
	case "":
	case "true", "false":
		online, hasOnline = v == "true", true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("online must be true or false, not %q", v))
		return
	}
	all := s.b.Sessions()
	list := all[:0]
	for _, si := range all {
		if hasID && !globMatch(idGlob, si.ClientID) ||
			hasUser && si.Username != user ||
			hasOnline && si.Online != online {
			continue
		}
		list = append(list, si)
	}
	writeJSON(w, http.StatusOK, paginate(list, limit, offset))
}

// SessionDetail is the body of GET /api/v1/sessions/{client_id}: the
// session and its subscriptions, which replace the count SessionInfo has.
type SessionDetail struct {
	broker.SessionInfo
	Subscriptions []SubscriptionInfo `json:"subscriptions"`
}

// SubscriptionInfo is one subscription of a client.
type SubscriptionInfo struct {
	ClientID          string `json:"client_id"`
	Filter            string `json:"filter"` // as subscribed; $share/{group}/{filter} when shared
	QoS               byte   `json:"qos"`    // the maximum QoS
	NoLocal           bool   `json:"no_local"`
	RetainAsPublished bool   `json:"retain_as_published"`
	RetainHandling    byte   `json:"retain_handling"`
	SubscriptionID    uint32 `json:"subscription_id,omitempty"`
}

func subscriptionInfo(clientID string, sub broker.Subscription) SubscriptionInfo {
	o := sub.Options
	return SubscriptionInfo{
		ClientID:          clientID,
		Filter:            sub.Filter,
		QoS:               byte(o.QoS),
		NoLocal:           o.NoLocal,
		RetainAsPublished: o.RetainAsPublished,
		RetainHandling:    o.RetainHandling,
		SubscriptionID:    o.SubscriptionID,
	}
}

func (s *Server) showSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("client_id")
	si, subs, ok := s.b.Session(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no session of client %q", id))
		return
	}
	d := SessionDetail{SessionInfo: si, Subscriptions: make([]SubscriptionInfo, 0, len(subs))}
	for _, sub := range subs {
		d.Subscriptions = append(d.Subscriptions, subscriptionInfo(id, sub))
	}
	writeJSON(w, http.StatusOK, d)
}

// SessionAction is the answer to a session's disconnect or delete.
type SessionAction struct {
	ClientID     string `json:"client_id"`
	Disconnected bool   `json:"disconnected,omitempty"`
	Deleted      bool   `json:"deleted,omitempty"`
}

func (s *Server) disconnectSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("client_id")
	if _, _, ok := s.b.Session(id); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no session of client %q", id))
		return
	}
	if !s.b.Disconnect(id) {
		writeError(w, http.StatusConflict, fmt.Sprintf("client %q is not connected", id))
		return
	}
	s.log.Info("client disconnected by the admin API", "client_id", id, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, SessionAction{ClientID: id, Disconnected: true})
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("client_id")
	if !s.b.DeleteSession(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no session of client %q", id))
		return
	}
	s.log.Info("session deleted by the admin API", "client_id", id, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, SessionAction{ClientID: id, Deleted: true})
}

// ---------------------------------------------------------------------------
// Subscriptions

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	idGlob, filter, topic := q.Get("client_id"), q.Get("filter"), q.Get("topic")
	hasID, hasFilter, hasTopic := idGlob != "", filter != "", topic != "" // an empty parameter filters nothing
	if hasTopic {
		if err := mqtt.ValidTopicName(topic); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("topic %q: %v", topic, err))
			return
		}
	}
	var ids []string
	if hasID && !strings.ContainsAny(idGlob, "*?") {
		ids = []string{idGlob}
	} else {
		for _, si := range s.b.Sessions() { // sorted by client id
			if si.Subscriptions > 0 && (!hasID || globMatch(idGlob, si.ClientID)) {
				ids = append(ids, si.ClientID)
			}
		}
	}
	list := []SubscriptionInfo{}
	tree := s.b.Tree()
	for _, id := range ids {
		for _, sub := range tree.Subscriptions(id) { // sorted by filter
			if hasFilter && sub.Filter != filter || hasTopic && !filterMatches(sub.Filter, topic) {
				continue
			}
			list = append(list, subscriptionInfo(id, sub))
		}
	}
	writeJSON(w, http.StatusOK, paginate(list, limit, offset))
}

// filterMatches reports whether a subscription's filter, shared or not,
// matches topic.
func filterMatches(filter, topic string) bool {
	if _, f, ok := mqtt.SplitShared(filter); ok {
		filter = f
	}
	return mqtt.Match(filter, topic)
}

// ---------------------------------------------------------------------------
// Retained messages

// RetainedMessage is one retained message as the API lists it.
type RetainedMessage struct {
	Topic       string `json:"topic"`
	QoS         byte   `json:"qos"`
	PayloadSize int    `json:"payload_size"`
	// Payload holds the payload's first bytes as text when the payload is
	// UTF-8; otherwise PayloadBase64 holds them in base64.
	Payload       string    `json:"payload,omitempty"`
	PayloadBase64 string    `json:"payload_base64,omitempty"`
	Truncated     bool      `json:"truncated,omitempty"` // the payload is longer than shown
	Expiry        time.Time `json:"expiry,omitzero"`     // absent when it never expires
}

// retainedPayloadMax is how many payload bytes a listed retained message shows.
const retainedPayloadMax = 256

func (s *Server) listRetained(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "#"
	}
	if err := mqtt.ValidTopicFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("filter %q: %v", filter, err))
		return
	}
	if _, _, shared := mqtt.SplitShared(filter); shared {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("filter %q: a shared subscription has no retained messages", filter))
		return
	}
	var msgs []*mqtt.Message
	s.b.Retained().Match(filter, time.Now(), func(m *mqtt.Message) bool {
		msgs = append(msgs, m)
		return true
	})
	slices.SortFunc(msgs, func(a, b *mqtt.Message) int { return strings.Compare(a.Topic, b.Topic) })
	pg := paginate(msgs, limit, offset)
	out := Page[RetainedMessage]{Total: pg.Total, Offset: pg.Offset, Limit: pg.Limit, Items: make([]RetainedMessage, 0, len(pg.Items))}
	for _, m := range pg.Items {
		rm := RetainedMessage{Topic: m.Topic, QoS: byte(m.QoS), PayloadSize: len(m.Payload)}
		rm.Payload, rm.PayloadBase64, rm.Truncated = payloadPreview(m.Payload, retainedPayloadMax)
		if !m.Expiry.IsZero() {
			rm.Expiry = m.Expiry.UTC()
		}
		out.Items = append(out.Items, rm)
	}
	writeJSON(w, http.StatusOK, out)
}

// payloadPreview returns up to max bytes of p: as text when p is UTF-8 (cut
// at a character boundary), else in base64.
func payloadPreview(p []byte, max int) (text, b64 string, truncated bool) {
	if utf8.Valid(p) {
		n := min(len(p), max)
		for n < len(p) && n > 0 && !utf8.RuneStart(p[n]) {
			n--
		}
		return string(p[:n]), "", n < len(p)
	}
	n := min(len(p), max)
	return "", base64.StdEncoding.EncodeToString(p[:n]), n < len(p)
}

// RetainedAction is the answer to a retained message's delete.
type RetainedAction struct {
	Topic   string `json:"topic"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) deleteRetained(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		writeError(w, http.StatusBadRequest, "topic is required: the topic name of the retained message to delete")
		return
	}
	if err := mqtt.ValidTopicName(topic); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("topic %q: %v", topic, err))
		return
	}
	ok, err := s.b.Retained().Delete(topic)
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no retained message on topic %q", topic))
		return
	}
	s.log.Info("retained message deleted by the admin API", "topic", topic, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, RetainedAction{Topic: topic, Deleted: true})
}

// ---------------------------------------------------------------------------
// Configuration

// showConfig answers with the configuration in effect as JSON: what
// (*config.Config).Write prints, secrets masked and the keys of features this
// version lacks left out, with the same table and key names.
func (s *Server) showConfig(w http.ResponseWriter, r *http.Request) {
	if s.opts.Config == nil {
		writeError(w, http.StatusNotImplemented, "the configuration is not available from this server")
		return
	}
	cfg := s.opts.Config()
	if cfg == nil {
		writeError(w, http.StatusNotImplemented, "the configuration is not available from this server")
		return
	}
	var buf bytes.Buffer
	if err := cfg.Write(&buf); err != nil {
		writeError(w, http.StatusInternalServerError, "print configuration: "+err.Error())
		return
	}
	out := map[string]any{}
	if _, err := toml.NewDecoder(&buf).Decode(&out); err != nil {
		writeError(w, http.StatusInternalServerError, "read configuration back: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Drain

// DrainAction is the answer to POST /api/v1/drain.
type DrainAction struct {
	Status string `json:"status"` // "draining"
}

func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	d := s.opts.Drainer
	if d == nil {
		writeError(w, http.StatusNotImplemented, "draining is not available from this server")
		return
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if s.draining {
		writeError(w, http.StatusConflict, "a drain is already in progress")
		return
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "the admin server is shutting down")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.draining = true
	s.log.Info("drain started by the admin API", "remote_addr", r.RemoteAddr)
	go func() {
		defer s.wg.Done()
		start := time.Now()
		err := d.Drain(s.ctx)
		s.drainMu.Lock()
		s.draining = false
		s.drainMu.Unlock()
		if err != nil {
			s.log.Error("drain failed", "err", err, "duration", time.Since(start))
			return
		}
		s.log.Info("drain finished", "duration", time.Since(start))
	}()
	writeJSON(w, http.StatusAccepted, DrainAction{Status: "draining"})
}
