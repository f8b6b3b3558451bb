package admin

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// TraceEvent is one line of a trace stream: a packet the traced client sent
// (direction "in") or was sent ("out"), or, with Dropped set and no Type, a
// notice that the stream fell behind and lost that many packets.
//
// Passwords, authentication data and will payloads are never included;
// payloads show their first 64 bytes.
type TraceEvent struct {
	Time      time.Time `json:"time"`
	ClientID  string    `json:"client_id"`
	Direction string    `json:"direction,omitempty"` // "in" from the client, "out" to it
	Type      string    `json:"type,omitempty"`      // PUBLISH, PUBACK, ...
	PacketID  uint16    `json:"packet_id,omitempty"`

	// PUBLISH
	Topic         string `json:"topic,omitempty"`
	TopicAlias    uint16 `json:"topic_alias,omitempty"`
	QoS           *byte  `json:"qos,omitempty"` // also the will QoS of a CONNECT
	Retain        bool   `json:"retain,omitempty"`
	Dup           bool   `json:"dup,omitempty"`
	PayloadSize   *int   `json:"payload_size,omitempty"`
	Payload       string `json:"payload,omitempty"`        // the first bytes, when the payload is UTF-8
	PayloadBase64 string `json:"payload_base64,omitempty"` // the first bytes otherwise
	Truncated     bool   `json:"truncated,omitempty"`

	// CONNACK, the acknowledgements of 5.0, DISCONNECT and AUTH; SUBACK and
	// UNSUBACK carry ReasonCodes instead.
	ReasonCode  *byte  `json:"reason_code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	ReasonCodes []int  `json:"reason_codes,omitempty"`

	// SUBSCRIBE and UNSUBSCRIBE
	Filters []TraceFilter `json:"filters,omitempty"`

	// CONNECT (never its password) and CONNACK
	Version        string `json:"protocol_version,omitempty"`
	Username       string `json:"username,omitempty"`
	CleanStart     *bool  `json:"clean_start,omitempty"`
	KeepAlive      *int   `json:"keep_alive,omitempty"`
	WillTopic      string `json:"will_topic,omitempty"`
	SessionPresent bool   `json:"session_present,omitempty"`

	// Dropped is set on a notice line only.
	Dropped int64 `json:"dropped,omitempty"`
}

// TraceFilter is a topic filter of a traced SUBSCRIBE or UNSUBSCRIBE.
type TraceFilter struct {
	Filter string `json:"filter"`
	QoS    *byte  `json:"qos,omitempty"` // SUBSCRIBE only
}

// Trace stream tuning.
const (
	tracePayloadMax = 64              // payload bytes shown per PUBLISH
	traceBuffer     = 256             // events held between the broker and a slow HTTP client
	traceNotice     = 1 * time.Second // how often a lagging stream reports its drops
)

// traceEvent converts a broker trace event into what the stream shows. It
// runs on the traced connection's goroutine and copies what it keeps out of
// the packet, which is only valid during the broker's call.
func traceEvent(e broker.TraceEvent) TraceEvent {
	ev := TraceEvent{Time: e.Time.UTC(), ClientID: e.ClientID, Direction: "out", Type: e.Packet.Type().String()}
	if e.Inbound {
		ev.Direction = "in"
	}
	reason := func(c mqtt.ReasonCode) {
		b := byte(c)
		ev.ReasonCode, ev.Reason = &b, c.String()
	}
	codes := func(cs []mqtt.ReasonCode) {
		ev.ReasonCodes = make([]int, len(cs))
		for i, c := range cs {
			ev.ReasonCodes[i] = int(c)
		}
	}
	switch p := e.Packet.(type) {
	case *mqtt.Connect:
		// Password, WillPayload and Properties.AuthData stay out.
		ev.Version = p.Version.String()
		if p.UsernameFlag {
			ev.Username = p.Username
		}
		ev.CleanStart = &p.CleanStart
		ka := int(p.KeepAlive)
		ev.KeepAlive = &ka
		if p.WillFlag {
			ev.WillTopic = p.WillTopic
			q := byte(p.WillQoS)
			ev.QoS = &q
			ev.Retain = p.WillRetain
		}
	case *mqtt.Connack:
		ev.SessionPresent = p.SessionPresent
		reason(p.ReasonCode)
	case *mqtt.Publish:
		q := byte(p.QoS)
		ev.QoS, ev.Retain, ev.Dup, ev.PacketID = &q, p.Retain, p.Dup, p.PacketID
		ev.Topic = p.Topic
		if p.Properties.Has(mqtt.PropTopicAlias) {
			ev.TopicAlias = p.Properties.TopicAlias
		}
		n := len(p.Payload)
		ev.PayloadSize = &n
		ev.Payload, ev.PayloadBase64, ev.Truncated = payloadPreview(p.Payload, tracePayloadMax)
	case *mqtt.Puback:
		ev.PacketID = p.PacketID
		reason(p.ReasonCode)
	case *mqtt.Pubrec:
		ev.PacketID = p.PacketID
		reason(p.ReasonCode)
	case *mqtt.Pubrel:
		ev.PacketID = p.PacketID
		reason(p.ReasonCode)
	case *mqtt.Pubcomp:
		ev.PacketID = p.PacketID
		reason(p.ReasonCode)
	case *mqtt.Subscribe:
		ev.PacketID = p.PacketID
		for _, sub := range p.Subscriptions {
			q := byte(sub.QoS)
			ev.Filters = append(ev.Filters, TraceFilter{Filter: sub.Filter, QoS: &q})
		}
	case *mqtt.Suback:
		ev.PacketID = p.PacketID
		codes(p.ReasonCodes)
	case *mqtt.Unsubscribe:
		ev.PacketID = p.PacketID
		for _, f := range p.Filters {
			ev.Filters = append(ev.Filters, TraceFilter{Filter: f})
		}
	case *mqtt.Unsuback:
		ev.PacketID = p.PacketID
		codes(p.ReasonCodes)
	case *mqtt.Disconnect:
		reason(p.ReasonCode)
	case *mqtt.Auth:
		// Properties.AuthData stays out.
		reason(p.ReasonCode)
	}
	return ev
}

// trace streams the packets of one client as newline-delimited JSON until
// the HTTP client goes away or the server shuts down. The broker's callback
// never blocks: it hands events over a bounded channel and counts what does
// not fit, which the stream then reports.
func (s *Server) trace(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("client_id")
	if id == "" {
		writeError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	events := make(chan TraceEvent, traceBuffer)
	var dropped atomic.Int64
	stop := s.b.Trace(id, func(e broker.TraceEvent) {
		select {
		case events <- traceEvent(e):
		default:
			dropped.Add(1)
			s.traceDropped.Add(1)
		}
	})
	defer stop()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // ask proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	s.log.Info("trace started", "client_id", id, "remote_addr", r.RemoteAddr)
	defer s.log.Info("trace ended", "client_id", id, "remote_addr", r.RemoteAddr)

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	tick := time.NewTicker(traceNotice)
	defer tick.Stop()
	send := func(ev TraceEvent) bool {
		return enc.Encode(ev) == nil && rc.Flush() == nil
	}
	// notice reports the events dropped, once those queued before them are out.
	notice := func() bool {
		if len(events) > 0 {
			return true
		}
		if n := dropped.Swap(0); n > 0 {
			return send(TraceEvent{Time: time.Now().UTC(), ClientID: id, Dropped: n})
		}
		return true
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
			if !notice() {
				return
			}
		case ev := <-events:
			if !send(ev) || !notice() {
				return
			}
		}
	}
}
