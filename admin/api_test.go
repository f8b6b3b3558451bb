package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
)

func TestStatus(t *testing.T) {
	fl := &fakeListeners{list: []ListenerInfo{
		{Name: "tcp://0.0.0.0:1883", Kind: "tcp", Address: "0.0.0.0:1883", Running: true, Connections: 2, Accepted: 5, Rejected: 1},
	}}
	e := newEnv(t, envOptions{store: true, admin: func(o *Options) { o.Listeners = fl }})

	st := e.status(t)
	if st.Node != "avocet@test" || st.Version != "1.2.3" || st.Health != "ok" {
		t.Errorf("node %q version %q health %q", st.Node, st.Version, st.Health)
	}
	if st.Connections.Current != 0 || st.Sessions.Online != 0 || st.Subscriptions != 0 || st.Retained.Messages != 0 {
		t.Errorf("an idle broker's status: %+v", st)
	}
	for _, r := range []string{"queue_full", "offline", "too_large", "not_authorized"} {
		if n, ok := st.Messages.Dropped[r]; !ok || n != 0 {
			t.Errorf("messages.dropped[%q] = %d, %t; want 0, present", r, n, ok)
		}
	}
	if st.Store == nil || st.Store.Path != e.db.Path() {
		t.Fatalf("store = %+v, want the path %s", st.Store, e.db.Path())
	}
	if len(st.Listeners) != 1 || st.Listeners[0] != fl.list[0] {
		t.Errorf("listeners = %+v", st.Listeners)
	}

	sub := dial(t, e.mqtt, mqtt.Version5, "sub", nil)
	sub.subscribe("s/#")
	pub := dial(t, e.mqtt, mqtt.Version311, "pub", nil)
	pub.publish("s/1", []byte("hello"), true)
	sub.expect(mqtt.PUBLISH)
	offline := dial(t, e.mqtt, mqtt.Version5, "gone", persistent)
	offline.disconnect()

	settle(t, "the status to show the traffic", func() string {
		st = e.status(t)
		if st.Connections.Current == 2 && st.Sessions.Online == 2 && st.Sessions.Offline == 1 &&
			st.Messages.Received == 1 && st.Messages.Sent == 1 {
			return ""
		}
		return fmt.Sprintf("%+v", st)
	})
	if st.Connections.Total != 3 || st.Connections.Clients != 2 || st.Subscriptions != 1 ||
		st.Retained.Messages != 1 || st.Retained.Bytes != int64(len("s/1")+len("hello")) ||
		st.Bytes.Received == 0 || st.Bytes.Sent == 0 {
		t.Errorf("status after traffic: %+v", st)
	}
	eventually(t, "a store batch", func() bool { return e.status(t).Store.Batches > 0 })
	if st := e.status(t); st.Store.Size <= 0 || st.UptimeSeconds < 0 {
		t.Errorf("store %+v, uptime %d", st.Store, st.UptimeSeconds)
	}
}

func TestStatusWithoutStoreOrListeners(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, body := e.do(t, "GET", "/api/v1/status")
	if code != http.StatusOK || strings.Contains(string(body), `"store"`) || !strings.Contains(string(body), `"listeners": []`) {
		t.Fatalf("status %d:\n%s\nwant no store and an empty listener list", code, body)
	}
}

func TestListeners(t *testing.T) {
	fl := &fakeListeners{list: []ListenerInfo{
		{Name: "tcp://0.0.0.0:1883", Kind: "tcp", Address: "0.0.0.0:1883", Running: true, Connections: 3, Accepted: 9, Rejected: 1},
		{Name: "ws", Kind: "ws", Address: "0.0.0.0:8080", Running: true},
	}}
	e := newEnv(t, envOptions{admin: func(o *Options) { o.Listeners = fl }})

	var list []ListenerInfo
	e.call(t, "GET", "/api/v1/listeners", http.StatusOK, &list)
	if !slices.Equal(list, fl.List()) {
		t.Fatalf("listeners = %+v, want %+v", list, fl.List())
	}

	var act ListenerAction
	e.call(t, "POST", "/api/v1/listeners/"+esc("tcp://0.0.0.0:1883")+"/stop", http.StatusOK, &act)
	if act != (ListenerAction{Name: "tcp://0.0.0.0:1883", Running: false}) {
		t.Errorf("stop answered %+v", act)
	}
	e.call(t, "GET", "/api/v1/listeners", http.StatusOK, &list)
	if list[0].Running {
		t.Errorf("the stopped listener is listed running: %+v", list[0])
	}
	e.call(t, "POST", "/api/v1/listeners/tcp:%2F%2F0.0.0.0:1883/start", http.StatusOK, &act)
	if !act.Running {
		t.Errorf("start answered %+v", act)
	}
	e.wantError(t, "POST", "/api/v1/listeners/nope/stop", http.StatusNotFound, `no listener named "nope"`)
	e.wantError(t, "GET", "/api/v1/listeners/ws/stop", http.StatusMethodNotAllowed, "no such endpoint")
	want := []string{"stop tcp://0.0.0.0:1883", "start tcp://0.0.0.0:1883", "stop nope"}
	if got := fl.called(); !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}

	fl.mu.Lock()
	fl.fail = errors.New("address already in use")
	fl.mu.Unlock()
	e.wantError(t, "POST", "/api/v1/listeners/ws/start", http.StatusInternalServerError, "address already in use")
}

func TestListenersNone(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, body := e.do(t, "GET", "/api/v1/listeners")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("listeners without Listeners: %d %s, want 200 []", code, body)
	}
	e.wantError(t, "POST", "/api/v1/listeners/tcp/stop", http.StatusNotFound, "no listener")
}

// sessionIDs returns the client ids of a page of sessions.
func sessionIDs(p Page[sessionJSON]) []string {
	var ids []string
	for _, s := range p.Items {
		ids = append(ids, s.ClientID)
	}
	return ids
}

// sessionJSON is the part of a listed session the tests read.
type sessionJSON struct {
	ClientID      string `json:"client_id"`
	Online        bool   `json:"online"`
	Username      string `json:"username"`
	Version       string `json:"protocol_version"`
	Persistent    bool   `json:"persistent"`
	Subscriptions int    `json:"subscriptions"`
}

func TestSessionsListFilters(t *testing.T) {
	e := newEnv(t, envOptions{})
	user := func(name string) func(*mqtt.Connect) {
		return func(cp *mqtt.Connect) { cp.UsernameFlag, cp.Username = true, name }
	}
	for _, id := range []string{"sensor-1", "sensor-2", "sensor-3"} {
		dial(t, e.mqtt, mqtt.Version311, id, user("dev"))
	}
	dial(t, e.mqtt, mqtt.Version5, "cam/1", user("ops"))
	dial(t, e.mqtt, mqtt.Version5, "sensor-offline", persistent).disconnect()
	eventually(t, "one offline session", func() bool { return e.status(t).Sessions.Offline == 1 })

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"cam/1", "sensor-1", "sensor-2", "sensor-3", "sensor-offline"}},
		{"?client_id=&username=&online=", []string{"cam/1", "sensor-1", "sensor-2", "sensor-3", "sensor-offline"}},
		{"?client_id=sensor-*", []string{"sensor-1", "sensor-2", "sensor-3", "sensor-offline"}},
		{"?client_id=sensor-%3F", []string{"sensor-1", "sensor-2", "sensor-3"}},
		{"?client_id=cam/1", []string{"cam/1"}},
		{"?client_id=*/*", []string{"cam/1"}},
		{"?client_id=nobody", nil},
		{"?username=ops", []string{"cam/1"}},
		{"?username=dev&client_id=*2", []string{"sensor-2"}},
		{"?online=false", []string{"sensor-offline"}},
		{"?online=true&client_id=sensor*", []string{"sensor-1", "sensor-2", "sensor-3"}},
		{"?limit=2", []string{"cam/1", "sensor-1"}},
		{"?limit=2&offset=3", []string{"sensor-3", "sensor-offline"}},
		{"?offset=9", nil},
	} {
		var p Page[sessionJSON]
		e.call(t, "GET", "/api/v1/sessions"+tc.query, http.StatusOK, &p)
		if got := sessionIDs(p); !slices.Equal(got, tc.want) {
			t.Errorf("sessions%s = %q, want %q", tc.query, got, tc.want)
		}
		if p.Items == nil {
			t.Errorf("sessions%s: items is null, want []", tc.query)
		}
	}

	var p Page[sessionJSON]
	e.call(t, "GET", "/api/v1/sessions?client_id=sensor-*&limit=1&offset=1", http.StatusOK, &p)
	if p.Total != 4 || p.Limit != 1 || p.Offset != 1 || len(p.Items) != 1 {
		t.Errorf("page = total %d limit %d offset %d items %d, want 4 1 1 1", p.Total, p.Limit, p.Offset, len(p.Items))
	}
	s := p.Items[0]
	if s.ClientID != "sensor-2" || !s.Online || s.Username != "dev" || s.Version != "3.1.1" || s.Persistent {
		t.Errorf("sensor-2 listed as %+v", s)
	}
	e.call(t, "GET", "/api/v1/sessions?limit=5000", http.StatusOK, &p)
	if p.Limit != maxLimit {
		t.Errorf("limit=5000 gave a limit of %d, want %d", p.Limit, maxLimit)
	}
	if e.call(t, "GET", "/api/v1/sessions", http.StatusOK, &p); p.Limit != defaultLimit {
		t.Errorf("default limit %d, want %d", p.Limit, defaultLimit)
	}
	e.wantError(t, "GET", "/api/v1/sessions?online=yes", http.StatusBadRequest, "online must be true or false")
	e.wantError(t, "GET", "/api/v1/sessions?limit=0", http.StatusBadRequest, "limit")
	e.wantError(t, "GET", "/api/v1/sessions?limit=ten", http.StatusBadRequest, "limit")
	e.wantError(t, "GET", "/api/v1/sessions?offset=-1", http.StatusBadRequest, "offset")
}

func TestSessionShow(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.mqtt, mqtt.Version5, "plant/line-1", nil)
	sp := &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{
		{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
		{Filter: "$share/g/b/#", QoS: 0},
	}}
	sp.Properties.SubscriptionIDs = []uint32{42}
	c.subscribeWith(sp)

	var d struct {
		ClientID      string             `json:"client_id"`
		Online        bool               `json:"online"`
		Queued        *int               `json:"queued"`
		Inflight      *int               `json:"inflight"`
		Subscriptions []SubscriptionInfo `json:"subscriptions"`
	}
	e.call(t, "GET", "/api/v1/sessions/"+esc("plant/line-1"), http.StatusOK, &d)
	want := []SubscriptionInfo{
		{ClientID: "plant/line-1", Filter: "$share/g/b/#", QoS: 0, SubscriptionID: 42},
		{ClientID: "plant/line-1", Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubscriptionID: 42},
	}
	if d.ClientID != "plant/line-1" || !d.Online || d.Queued == nil || d.Inflight == nil || !slices.Equal(d.Subscriptions, want) {
		t.Fatalf("session = %+v\nwant its subscriptions %+v and queue depths", d, want)
	}
	e.wantError(t, "GET", "/api/v1/sessions/nobody", http.StatusNotFound, `no session of client "nobody"`)
}

func TestSessionDisconnect(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.mqtt, mqtt.Version5, "kick-me", persistent)

	var act SessionAction
	e.call(t, "POST", "/api/v1/sessions/kick-me/disconnect", http.StatusOK, &act)
	if act != (SessionAction{ClientID: "kick-me", Disconnected: true}) {
		t.Errorf("disconnect answered %+v", act)
	}
	d, ok := c.expect(mqtt.DISCONNECT).(*mqtt.Disconnect)
	if !ok || d.ReasonCode != mqtt.AdministrativeAction {
		t.Fatalf("the client got %+v, want DISCONNECT 0x98 administrative action", d)
	}
	eventually(t, "the session to be offline", func() bool {
		var s struct{ Online bool }
		e.call(t, "GET", "/api/v1/sessions/kick-me", http.StatusOK, &s)
		return !s.Online
	})
	e.wantError(t, "POST", "/api/v1/sessions/kick-me/disconnect", http.StatusConflict, "not connected")
	e.wantError(t, "POST", "/api/v1/sessions/nobody/disconnect", http.StatusNotFound, "no session")
}

func TestSessionDelete(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.mqtt, mqtt.Version5, "doomed", persistent)
	c.subscribe("x/#")

	var act SessionAction
	e.call(t, "DELETE", "/api/v1/sessions/doomed", http.StatusOK, &act)
	if act != (SessionAction{ClientID: "doomed", Deleted: true}) {
		t.Errorf("delete answered %+v", act)
	}
	if d, ok := c.expect(mqtt.DISCONNECT).(*mqtt.Disconnect); !ok || d.ReasonCode != mqtt.AdministrativeAction {
		t.Errorf("the connected client got %+v, want DISCONNECT 0x98", d)
	}
	e.wantError(t, "GET", "/api/v1/sessions/doomed", http.StatusNotFound, "no session")
	e.wantError(t, "DELETE", "/api/v1/sessions/doomed", http.StatusNotFound, "no session")
	if st := e.status(t); st.Subscriptions != 0 {
		t.Errorf("%d subscriptions remain after the delete", st.Subscriptions)
	}
}

func TestSubscriptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	dial(t, e.mqtt, mqtt.Version5, "a", nil).subscribe("home/+/temp", "home/#")
	dial(t, e.mqtt, mqtt.Version5, "b", nil).subscribe("office/temp", "$share/workers/home/kitchen/temp")
	dial(t, e.mqtt, mqtt.Version5, "c", nil) // none

	type row struct{ id, filter string }
	rows := func(p Page[SubscriptionInfo]) []row {
		var out []row
		for _, s := range p.Items {
			out = append(out, row{s.ClientID, s.Filter})
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []row
	}{
		{"", []row{{"a", "home/#"}, {"a", "home/+/temp"}, {"b", "$share/workers/home/kitchen/temp"}, {"b", "office/temp"}}},
		{"?client_id=b", []row{{"b", "$share/workers/home/kitchen/temp"}, {"b", "office/temp"}}},
		{"?client_id=%5Ba%5D", nil},
		{"?client_id=*&filter=home/%23", []row{{"a", "home/#"}}},
		{"?topic=home/kitchen/temp", []row{{"a", "home/#"}, {"a", "home/+/temp"}, {"b", "$share/workers/home/kitchen/temp"}}},
		{"?topic=office/temp", []row{{"b", "office/temp"}}},
		{"?limit=1&offset=3", []row{{"b", "office/temp"}}},
		{"?client_id=c", nil},
		{"?client_id=&filter=&topic=&limit=1", []row{{"a", "home/#"}}},
	} {
		var p Page[SubscriptionInfo]
		e.call(t, "GET", "/api/v1/subscriptions"+tc.query, http.StatusOK, &p)
		if got := rows(p); !slices.Equal(got, tc.want) {
			t.Errorf("subscriptions%s = %v, want %v", tc.query, got, tc.want)
		}
	}
	var p Page[SubscriptionInfo]
	e.call(t, "GET", "/api/v1/subscriptions?limit=1", http.StatusOK, &p)
	if p.Total != 4 || p.Items[0].QoS != 1 {
		t.Errorf("total %d, first %+v", p.Total, p.Items[0])
	}
	e.wantError(t, "GET", "/api/v1/subscriptions?topic=home/%2B", http.StatusBadRequest, "topic")
}

func TestRetained(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.mqtt, mqtt.Version5, "retainer", nil)
	long := strings.Repeat("é", 200) // 400 bytes of UTF-8
	binary := []byte{0xff, 0x00, 0x01, 0xfe}
	c.publish("r/text", []byte("on"), true)
	c.publish("r/long", []byte(long), true)
	c.publish("r/bin", binary, true)
	expiring := &mqtt.Publish{Topic: "r/expiring", Payload: []byte("soon"), Retain: true}
	expiring.Properties.MessageExpiry = 3600
	expiring.Properties.Set(mqtt.PropMessageExpiry)
	c.publishWith(expiring)
	c.publish("other/x", []byte("x"), true)

	var p Page[RetainedMessage]
	e.call(t, "GET", "/api/v1/retained?filter=r/%23", http.StatusOK, &p)
	var topics []string
	byTopic := map[string]RetainedMessage{}
	for _, m := range p.Items {
		topics = append(topics, m.Topic)
		byTopic[m.Topic] = m
	}
	if want := []string{"r/bin", "r/expiring", "r/long", "r/text"}; !slices.Equal(topics, want) || p.Total != 4 {
		t.Fatalf("retained r/# = %q (total %d), want %q", topics, p.Total, want)
	}
	if m := byTopic["r/text"]; m.Payload != "on" || m.PayloadBase64 != "" || m.PayloadSize != 2 || m.QoS != 1 || m.Truncated || !m.Expiry.IsZero() {
		t.Errorf("r/text = %+v", m)
	}
	if m := byTopic["r/long"]; m.Payload != long[:256] || !m.Truncated || m.PayloadSize != 400 {
		t.Errorf("r/long = %d bytes of payload, truncated %t, size %d; want the first 256 bytes", len(m.Payload), m.Truncated, m.PayloadSize)
	}
	if m := byTopic["r/bin"]; m.Payload != "" || m.PayloadBase64 != base64.StdEncoding.EncodeToString(binary) {
		t.Errorf("r/bin = %+v, want its payload in base64", m)
	}
	if m := byTopic["r/expiring"]; m.Expiry.Before(time.Now().Add(time.Hour-time.Minute)) || m.Expiry.After(time.Now().Add(time.Hour)) {
		t.Errorf("r/expiring expires at %v, want in an hour", m.Expiry)
	}

	e.call(t, "GET", "/api/v1/retained", http.StatusOK, &p)
	if p.Total != 5 {
		t.Errorf("retained with the default filter: total %d, want 5", p.Total)
	}
	e.call(t, "GET", "/api/v1/retained?filter=r/text&limit=1", http.StatusOK, &p)
	if p.Total != 1 || p.Items[0].Topic != "r/text" {
		t.Errorf("retained r/text = %+v", p)
	}

	var act RetainedAction
	e.call(t, "DELETE", "/api/v1/retained?topic=r/text", http.StatusOK, &act)
	if act != (RetainedAction{Topic: "r/text", Deleted: true}) {
		t.Errorf("delete answered %+v", act)
	}
	e.wantError(t, "DELETE", "/api/v1/retained?topic=r/text", http.StatusNotFound, "no retained message")
	e.wantError(t, "DELETE", "/api/v1/retained", http.StatusBadRequest, "topic is required")
	e.wantError(t, "DELETE", "/api/v1/retained?topic=", http.StatusBadRequest, "topic is required")
	e.wantError(t, "DELETE", "/api/v1/retained?topic=r/%23", http.StatusBadRequest, "topic")
	e.wantError(t, "GET", "/api/v1/retained?filter=a/%23/b", http.StatusBadRequest, "filter")
	e.wantError(t, "GET", "/api/v1/retained?filter=$share/g/a", http.StatusBadRequest, "shared")
	if st := e.status(t); st.Retained.Messages != 4 {
		t.Errorf("%d retained messages after the delete, want 4", st.Retained.Messages)
	}

	// A new subscriber no longer gets the deleted message.
	s := dial(t, e.mqtt, mqtt.Version5, "late", nil)
	s.subscribe("r/text", "r/marker")
	c.publish("r/marker", []byte("m"), false)
	if p := s.expect(mqtt.PUBLISH).(*mqtt.Publish); p.Topic != "r/marker" {
		t.Errorf("a new subscriber got %q, which was deleted", p.Topic)
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	const secret = "s3cret-Admin-Token"
	cfg := config.Default()
	cfg.Node.Name = "avocet@config-test"
	cfg.Admin.Token = secret
	cfg.Cluster.Secret = "cluster-" + secret
	e := newEnv(t, envOptions{admin: func(o *Options) {
		o.Config = func() *config.Config { return cfg }
		o.Token = secret
	}})

	code, body := e.do(t, "GET", "/api/v1/config")
	if code != http.StatusOK {
		t.Fatalf("config: %d %s", code, body)
	}
	if strings.Contains(string(body), secret) {
		t.Fatalf("the config shows a secret:\n%s", body)
	}
	var got map[string]any
	e.call(t, "GET", "/api/v1/config", http.StatusOK, &got)
	node, _ := got["node"].(map[string]any)
	if node["name"] != "avocet@config-test" {
		t.Errorf("node = %v, want the configured name", got["node"])
	}
	if _, ok := got["mqtt"].(map[string]any)["max_inflight"]; !ok {
		t.Errorf("mqtt.max_inflight missing: %v", got["mqtt"])
	}
	// The admin table shows once its feature is available; its token is then masked.
	if admin, ok := got["admin"].(map[string]any); ok && admin["token"] != config.Masked {
		t.Errorf("admin.token = %v, want %q", admin["token"], config.Masked)
	}
}

func TestConfigUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.wantError(t, "GET", "/api/v1/config", http.StatusNotImplemented, "not available")
}

// fakeDrainer records drains and holds each until released.
type fakeDrainer struct {
	calls   chan struct{}
	release chan struct{}
	mu      sync.Mutex
	ctxErr  error // of the last drain's context when it returned; guarded by mu
}

func (d *fakeDrainer) Drain(ctx context.Context) error {
	d.calls <- struct{}{}
	select {
	case <-d.release:
	case <-ctx.Done():
	}
	d.mu.Lock()
	d.ctxErr = ctx.Err()
	d.mu.Unlock()
	return nil
}

func TestDrain(t *testing.T) {
	d := &fakeDrainer{calls: make(chan struct{}, 4), release: make(chan struct{})}
	e := newEnv(t, envOptions{admin: func(o *Options) { o.Drainer = d }})

	var act DrainAction
	e.call(t, "POST", "/api/v1/drain", http.StatusAccepted, &act)
	if act.Status != "draining" {
		t.Errorf("drain answered %+v", act)
	}
	select {
	case <-d.calls:
	case <-time.After(waitTimeout):
		t.Fatal("the Drainer was not called")
	}
	e.wantError(t, "POST", "/api/v1/drain", http.StatusConflict, "already in progress")
	e.wantError(t, "GET", "/api/v1/drain", http.StatusMethodNotAllowed, "no such endpoint")
	d.release <- struct{}{}
	eventually(t, "a second drain to be accepted", func() bool {
		code, _ := e.do(t, "POST", "/api/v1/drain")
		return code == http.StatusAccepted
	})
	<-d.calls
	// Shutdown cancels the drain still running; the cleanup checks it returns.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(d.ctxErr, context.Canceled) {
		t.Errorf("the running drain's context ended with %v, want canceled by Shutdown", d.ctxErr)
	}
}

func TestDrainUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.wantError(t, "POST", "/api/v1/drain", http.StatusNotImplemented, "not available")
}

func TestHealthzAndUnknownPaths(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, body := e.do(t, "GET", "/healthz"); code != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	e.wantError(t, "GET", "/api/v1/nothing", http.StatusNotFound, "no such endpoint")
	e.wantError(t, "PUT", "/api/v1/status", http.StatusMethodNotAllowed, "no such endpoint")
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "a/b/c", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "aéc", true},
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "a-c-b", false},
		{"sensor-[1]", "sensor-[1]", true},
		{"sensor-[1]", "sensor-1", false},
		{"**x", "yyx", true},
		{"a/*", "a/b/c", true},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %t, want %t", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestPayloadPreview(t *testing.T) {
	for _, tc := range []struct {
		in        []byte
		max       int
		text, b64 string
		truncated bool
	}{
		{nil, 8, "", "", false},
		{[]byte("hi"), 8, "hi", "", false},
		{[]byte("abcdefghij"), 8, "abcdefgh", "", true},
		{[]byte("aaaaaaaé"), 8, "aaaaaaa", "", true}, // é does not fit whole
		{[]byte{0xff, 1, 2}, 8, "", "/wEC", false},
		{[]byte{0xff, 1, 2}, 2, "", "/wE=", true},
	} {
		text, b64, trunc := payloadPreview(tc.in, tc.max)
		if text != tc.text || b64 != tc.b64 || trunc != tc.truncated {
			t.Errorf("payloadPreview(%q, %d) = %q %q %t, want %q %q %t", tc.in, tc.max, text, b64, trunc, tc.text, tc.b64, tc.truncated)
		}
	}
}
