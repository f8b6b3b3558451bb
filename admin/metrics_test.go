package admin

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics and parses the text exposition.
func (e *env) scrape(t testing.TB) scraped {
	t.Helper()
	code, body := e.do(t, "GET", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return scraped{t: t, fams: fams}
}

type scraped struct {
	t    testing.TB
	fams map[string]*dto.MetricFamily
}

// value returns the sample of family name whose labels include labels
// (name=value pairs); it fails the test when there is none.
func (s scraped) value(name string, labels ...string) float64 {
	s.t.Helper()
	f, ok := s.fams[name]
	if !ok {
		s.t.Fatalf("no metric family %s", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				return m.GetUntyped().GetValue()
			}
			s.t.Fatalf("%s is a %v", name, f.GetType())
		}
	}
	s.t.Fatalf("no sample of %s with labels %q", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// brokerFamilies are the families the broker's collector always exposes,
// with a store and listeners.
var brokerFamilies = []string{
	"avocet_info", "avocet_draining",
	"avocet_connections", "avocet_connections_total", "avocet_connections_refused_total", "avocet_clients_connected",
	"avocet_packets_received_total", "avocet_packets_sent_total", "avocet_bytes_received_total", "avocet_bytes_sent_total",
	"avocet_messages_received_total", "avocet_messages_sent_total", "avocet_messages_dropped_total",
	"avocet_messages_expired_total", "avocet_protocol_errors_total",
	"avocet_publishers_paced_total", "avocet_pace_stalls_total",
	"avocet_sessions", "avocet_subscriptions", "avocet_retained_messages", "avocet_retained_bytes",
	"avocet_outbound_bytes", "avocet_queued_messages", "avocet_inflight_messages",
	"avocet_store_size_bytes", "avocet_store_batches_total", "avocet_store_last_batch_seconds",
	"avocet_store_failures_total", "avocet_store_written_bytes_total", "avocet_store_pending",
	"avocet_listener_up", "avocet_listener_connections", "avocet_listener_accepted_total", "avocet_listener_rejected_total",
	"avocet_trace_events_dropped_total",
}

func TestMetricsExposition(t *testing.T) {
	fl := &fakeListeners{list: []ListenerInfo{{Name: "tcp", Kind: "tcp", Address: "127.0.0.1:1883", Running: true, Connections: 4, Accepted: 7, Rejected: 2}}}
	e := newEnv(t, envOptions{store: true, admin: func(o *Options) { o.Listeners = fl }})
	s := e.scrape(t)

	var avocet []string
	for name, f := range s.fams {
		switch {
		case strings.HasPrefix(name, "avocet_"):
			avocet = append(avocet, name)
			if strings.HasSuffix(name, "_total") != (f.GetType() == dto.MetricType_COUNTER) {
				t.Errorf("%s is a %v: counters, and only they, end in _total", name, f.GetType())
			}
			if f.GetHelp() == "" {
				t.Errorf("%s has no help", name)
			}
		case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"), strings.HasPrefix(name, "promhttp_"):
		default:
			t.Errorf("unexpected family %s", name)
		}
	}
	slices.Sort(avocet)
	want := slices.Sorted(slices.Values(brokerFamilies))
	if !slices.Equal(avocet, want) {
		t.Errorf("avocet families:\n%q\nwant\n%q", avocet, want)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := s.fams[name]; !ok {
			t.Errorf("runtime family %s missing", name)
		}
	}
	if v := s.value("avocet_info", "node", "avocet@test", "version", "1.2.3"); v != 1 {
		t.Errorf("avocet_info = %v", v)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"avocet_listener_up", []string{"listener", "tcp", "kind", "tcp"}, 1},
		{"avocet_listener_connections", []string{"listener", "tcp"}, 4},
		{"avocet_listener_accepted_total", []string{"listener", "tcp"}, 7},
		{"avocet_listener_rejected_total", []string{"listener", "tcp"}, 2},
		{"avocet_connections_refused_total", []string{"reason", "bad_user_name_or_password"}, 0},
		{"avocet_messages_dropped_total", []string{"reason", "queue_full"}, 0},
		{"avocet_packets_received_total", []string{"type", "AUTH"}, 0},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	e := newEnv(t, envOptions{store: true})
	before := e.scrape(t)

	sub := dial(t, e.mqtt, mqtt.Version5, "sub", nil)
	sub.subscribe("m/#")
	pub := dial(t, e.mqtt, mqtt.Version311, "pub", nil)
	for i := range 3 {
		pub.publish("m/"+strconv.Itoa(i), []byte("payload"), i == 0)
	}
	for range 3 {
		sub.expect(mqtt.PUBLISH)
	}
	// A QoS 0 message for an offline session is dropped, reason offline.
	dial(t, e.mqtt, mqtt.Version5, "away", persistent).subscribe("m/#")
	eventually(t, "away's subscription", func() bool { return e.status(t).Subscriptions == 2 })
	// A refused CONNECT: 3.1 allows no empty client identifier.
	if _, ack := dialAck(t, e.mqtt, mqtt.Version31, "", nil); ack.ReasonCode != mqtt.ClientIdentifierNotValid {
		t.Fatalf("CONNECT of 3.1 without client id: %v", ack.ReasonCode)
	}

	var after scraped
	eventually(t, "the figures to settle", func() bool {
		after = e.scrape(t)
		return after.value("avocet_clients_connected") == 3 && after.value("avocet_connections") == 3
	})
	e.b.Disconnect("away")
	eventually(t, "away offline", func() bool { return e.status(t).Sessions.Offline == 1 })
	pub.send(&mqtt.Publish{Topic: "m/qos0", QoS: 0, Payload: []byte("x")})
	pub.publish("m/sync", nil, false) // handled after the QoS 0 message
	sub.expect(mqtt.PUBLISH)
	sub.expect(mqtt.PUBLISH)
	eventually(t, "the offline drop", func() bool {
		after = e.scrape(t)
		return after.value("avocet_messages_dropped_total", "reason", "offline") == 1
	})

	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"avocet_messages_received_total", nil, 5},
		{"avocet_packets_received_total", []string{"type", "PUBLISH"}, 5},
		{"avocet_packets_received_total", []string{"type", "SUBSCRIBE"}, 2},
		{"avocet_packets_sent_total", []string{"type", "SUBACK"}, 2},
		{"avocet_connections_total", nil, 4},
		{"avocet_connections_refused_total", []string{"reason", "client_identifier_not_valid"}, 1},
		{"avocet_messages_dropped_total", []string{"reason", "offline"}, 1},
		{"avocet_messages_dropped_total", []string{"reason", "queue_full"}, 0},
	} {
		if got := delta(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%q rose by %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The broker counts the CONNACKs of accepted clients; a refusal's may count too.
	if d := delta("avocet_packets_sent_total", "type", "CONNACK"); d < 3 || d > 4 {
		t.Errorf("avocet_packets_sent_total{type=CONNACK} rose by %v, want 3 or 4", d)
	}
	if d := delta("avocet_messages_sent_total"); d < 5 {
		t.Errorf("avocet_messages_sent_total rose by %v, want at least 5", d)
	}
	if after.value("avocet_bytes_received_total") <= before.value("avocet_bytes_received_total") ||
		after.value("avocet_bytes_sent_total") <= before.value("avocet_bytes_sent_total") {
		t.Error("the byte counters did not move")
	}
	if after.value("avocet_retained_messages") != 1 || after.value("avocet_subscriptions") != 2 ||
		after.value("avocet_sessions", "state", "online") != 2 || after.value("avocet_sessions", "state", "offline") != 1 {
		t.Error("retained, subscriptions or sessions gauges are wrong")
	}
	if after.value("avocet_store_batches_total") == 0 || after.value("avocet_store_size_bytes") == 0 {
		t.Error("the store figures did not move")
	}

	// One source of counters: the metrics, $SYS and the status agree, and
	// the drops by reason add up to the broker's total.
	pairs := map[string]string{
		"avocet_messages_received_total": "$SYS/broker/messages/received",
		"avocet_messages_sent_total":     "$SYS/broker/messages/sent",
		"avocet_connections_total":       "$SYS/broker/connections/total",
		"avocet_bytes_received_total":    "$SYS/broker/bytes/received",
		"avocet_bytes_sent_total":        "$SYS/broker/bytes/sent",
		"avocet_retained_messages":       "$SYS/broker/retained messages/count",
		"avocet_subscriptions":           "$SYS/broker/subscriptions/count",
	}
	settle(t, "the metrics to agree with $SYS once the last acknowledgements are in", func() string {
		after = e.scrape(t)
		sys := e.b.SysTopics()
		var differ []string
		for name, topic := range pairs {
			if got := strconv.FormatFloat(after.value(name), 'f', -1, 64); got != sys[topic] {
				differ = append(differ, name+" = "+got+", "+topic+" = "+sys[topic])
			}
		}
		return strings.Join(differ, "; ")
	})
	st := e.b.Stats()
	var drops float64
	for _, m := range after.fams["avocet_messages_dropped_total"].GetMetric() {
		drops += m.GetCounter().GetValue()
	}
	if drops != float64(st.MessagesDropped.Load()) {
		t.Errorf("drops by reason add up to %v, the broker counted %d", drops, st.MessagesDropped.Load())
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"bad user name or password": "bad_user_name_or_password",
		"QoS not supported":         "qos_not_supported",
		"re-authenticate":           "re_authenticate",
		"reason code 0x5":           "reason_code_0x5",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
	for c := range 256 {
		l := reasonLabels[c]
		if l == "" || !model.LabelValue(l).IsValid() {
			t.Errorf("reason code %#x has label %q", c, l)
		}
	}
}
