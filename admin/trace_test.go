package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// traceLines opens a trace of clientID and returns its lines as they come,
// and a function that ends the stream.
func (e *env) traceLines(t *testing.T, clientID string) (<-chan string, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/trace?client_id="+clientID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("trace: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stop := func() {
		cancel()
		<-done
		_ = res.Body.Close()
	}
	t.Cleanup(stop)
	return lines, stop
}

func TestTraceStream(t *testing.T) {
	const password = "hunter2-Secret-Pass"
	logs := &logBuffer{}
	e := newEnv(t, envOptions{logs: logs})
	lines, stop := e.traceLines(t, "traced")

	c := dial(t, e.mqtt, mqtt.Version5, "traced", func(cp *mqtt.Connect) {
		cp.UsernameFlag, cp.Username = true, "alice"
		cp.PasswordFlag, cp.Password = true, []byte(password)
	})
	c.subscribe("t/#")
	c.publish("t/1", []byte("hello trace"), false)
	c.expect(mqtt.PUBLISH)

	var all []string
	var in, out, suback bool
	deadline := time.After(waitTimeout)
	for !(in && out && suback) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended early; lines:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, l)
			var ev TraceEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if ev.ClientID != "traced" || ev.Time.IsZero() {
				t.Errorf("line %q: client id or time missing", l)
			}
			switch {
			case ev.Type == "PUBLISH" && ev.Direction == "in":
				in = ev.Topic == "t/1" && ev.Payload == "hello trace" && *ev.QoS == 1 && ev.PacketID != 0 && *ev.PayloadSize == 11
			case ev.Type == "PUBLISH" && ev.Direction == "out":
				out = ev.Topic == "t/1" && ev.Payload == "hello trace"
			case ev.Type == "SUBACK":
				suback = len(ev.ReasonCodes) == 1 && ev.ReasonCodes[0] == 1
			}
		case <-deadline:
			t.Fatalf("no PUBLISH both ways and SUBACK in the trace within %v; lines:\n%s", waitTimeout, strings.Join(all, "\n"))
		}
	}
	stop()
	for l := range lines {
		all = append(all, l)
	}
	if text := strings.Join(all, "\n"); strings.Contains(text, password) {
		t.Fatalf("the trace shows the password:\n%s", text)
	}
	eventually(t, "the server to end the trace when its client went away", func() bool {
		return strings.Contains(logs.String(), "trace ended")
	})
	if strings.Contains(logs.String(), password) {
		t.Fatal("the log shows the password")
	}
	e.wantError(t, "GET", "/api/v1/trace", http.StatusBadRequest, "client_id is required")
}

func TestTraceEventHidesSecrets(t *testing.T) {
	secrets := []string{"pw-Secret", "auth-Secret", "will-Secret"}
	cp := &mqtt.Connect{Version: mqtt.Version5, ClientID: "c", UsernameFlag: true, Username: "bob",
		PasswordFlag: true, Password: []byte(secrets[0]),
		WillFlag: true, WillTopic: "last/words", WillQoS: 1, WillPayload: []byte(secrets[2])}
	cp.Properties.AuthMethod = "SCRAM-SHA-1"
	cp.Properties.AuthData = []byte(secrets[1])
	cp.Properties.Set(mqtt.PropAuthMethod)
	cp.Properties.Set(mqtt.PropAuthData)
	auth := &mqtt.Auth{ReasonCode: mqtt.ContinueAuthentication}
	auth.Properties.AuthData = []byte(secrets[1])
	auth.Properties.Set(mqtt.PropAuthData)

	for _, p := range []mqtt.Packet{cp, auth} {
		b, err := json.Marshal(traceEvent(broker.TraceEvent{Time: time.Now(), ClientID: "c", Inbound: true, Packet: p}))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("the trace of %v shows %q: %s", p.Type(), s, b)
			}
		}
		if p == cp && (!strings.Contains(string(b), `"username":"bob"`) || !strings.Contains(string(b), `"will_topic":"last/words"`)) {
			t.Errorf("the trace of CONNECT lacks its user name or will topic: %s", b)
		}
	}

	pub := &mqtt.Publish{Topic: "x", QoS: 0, Payload: []byte(strings.Repeat("y", 100))}
	ev := traceEvent(broker.TraceEvent{Time: time.Now(), ClientID: "c", Packet: pub})
	if ev.Direction != "out" || len(ev.Payload) != tracePayloadMax || !ev.Truncated || *ev.PayloadSize != 100 || *ev.QoS != 0 {
		t.Errorf("outbound PUBLISH traced as %+v", ev)
	}
	ev = traceEvent(broker.TraceEvent{Time: time.Now(), ClientID: "c", Packet: &mqtt.Disconnect{ReasonCode: mqtt.AdministrativeAction}})
	if ev.ReasonCode == nil || *ev.ReasonCode != 0x98 || ev.Reason != "administrative action" {
		t.Errorf("DISCONNECT traced as %+v", ev)
	}
}

// stalledWriter is a ResponseWriter whose body writes block until released,
// as a trace client that stopped reading.
type stalledWriter struct {
	header  http.Header
	started chan struct{} // closed at the first flush: the trace is registered
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	body    strings.Builder // guarded by mu
}

func (w *stalledWriter) Header() http.Header { return w.header }
func (w *stalledWriter) WriteHeader(int)     {}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(p)
}

func (w *stalledWriter) Flush() { w.once.Do(func() { close(w.started) }) }

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

func TestTraceDropsWhenTheReaderStalls(t *testing.T) {
	e := newEnv(t, envOptions{})
	w := &stalledWriter{header: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "/api/v1/trace?client_id=chatty", nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		e.srv.Handler().ServeHTTP(w, req)
	}()
	<-w.started

	// Each PINGREQ and PINGRESP is a trace event: far more than the buffer
	// holds while the writer is stalled. The broker must not wait for it.
	c := dial(t, e.mqtt, mqtt.Version311, "chatty", nil)
	const pings = 2 * traceBuffer
	for range pings {
		c.send(&mqtt.Pingreq{})
	}
	for range pings {
		c.expect(mqtt.PINGRESP)
	}
	if e.srv.traceDropped.Load() == 0 {
		t.Fatal("no trace event was dropped while the reader stalled")
	}
	code, body := e.do(t, "GET", "/metrics")
	if code != http.StatusOK || !strings.Contains(string(body), "avocet_trace_events_dropped_total ") ||
		strings.Contains(string(body), "avocet_trace_events_dropped_total 0\n") {
		t.Errorf("metrics do not count the dropped trace events:\n%s", body)
	}

	close(w.release)
	eventually(t, "a notice of the dropped events", func() bool { return strings.Contains(w.String(), `"dropped":`) })
	cancel()
	select {
	case <-served:
	case <-time.After(waitTimeout):
		t.Fatal("the trace handler did not return when its request ended")
	}
	var sawPing bool
	for _, l := range strings.Split(strings.TrimSpace(w.String()), "\n") {
		var ev TraceEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		sawPing = sawPing || ev.Type == "PINGREQ"
	}
	if !sawPing {
		t.Error("the buffered events were not written once the reader resumed")
	}
}
