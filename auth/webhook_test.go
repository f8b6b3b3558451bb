package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// hookCall is one request a hookServer received.
type hookCall struct {
	hook  string // the vernemq-hook header
	ctype string
	body  map[string]any
}

// hookServer is an endpoint that records what it receives and answers with
// answer (default {"result":"ok"}).
type hookServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer func(w http.ResponseWriter, c hookCall)
}

func newHookServer(t *testing.T, answer func(w http.ResponseWriter, c hookCall)) *hookServer {
	t.Helper()
	s := &hookServer{t: t, answer: answer}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		c := hookCall{hook: r.Header.Get("vernemq-hook"), ctype: r.Header.Get("Content-Type")}
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if err := json.Unmarshal(data, &c.body); err != nil {
			t.Errorf("%s: body %q is not a JSON object: %v", c.hook, data, err)
		}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		if s.answer != nil {
			s.answer(w, c)
			return
		}
		_, _ = io.WriteString(w, `{"result":"ok"}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *hookServer) received() []hookCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hookCall(nil), s.calls...)
}

// reply answers with body and, when maxAge is not empty, cache-control: max-age.
func reply(body, maxAge string) func(http.ResponseWriter, hookCall) {
	return func(w http.ResponseWriter, _ hookCall) {
		if maxAge != "" {
			w.Header().Set("Cache-Control", "max-age="+maxAge)
		}
		_, _ = io.WriteString(w, body)
	}
}

// newTestWebhooks makes Webhooks with one endpoint per hook at url, closed
// when the test ends.
func newTestWebhooks(t *testing.T, url string, opts WebhookOptions, hooks ...Hook) *Webhooks {
	t.Helper()
	for _, h := range hooks {
		opts.Endpoints = append(opts.Endpoints, Endpoint{Hook: h, URL: url + "/" + h.String(), Timeout: 5 * time.Second})
	}
	w, err := NewWebhooks(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// jsonOf decodes a JSON text for comparison with a received body.
func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

var alice = &Client{ClientID: "c1", Username: "alice", Listener: "tcp",
	RemoteAddr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50123}, Version: mqtt.Version311}

// otherAddr is a net.Addr that is not a *net.TCPAddr, as WebSocket and PROXY
// protocol connections may have.
type otherAddr string

func (a otherAddr) Network() string { return "test" }
func (a otherAddr) String() string  { return string(a) }

// TestWebhookRequests checks the request of every hook: header, content type
// and body, field by field in VerneMQ's shapes.
func TestWebhookRequests(t *testing.T) {
	s := newHookServer(t, nil)
	var all []Hook
	for h := HookAuthOnRegister; h < numHooks; h++ {
		all = append(all, h)
	}
	w := newTestWebhooks(t, s.srv.URL, WebhookOptions{}, all...)
	anon := &Client{ClientID: "c2", RemoteAddr: otherAddr("[2001:db8::1]:1883"), Version: mqtt.Version5}

	w.AuthOnRegister(&RegisterRequest{ClientID: "c1", Username: "alice", HasUser: true, Password: []byte("s3cret"),
		Listener: "tcp", RemoteAddr: alice.RemoteAddr, Version: mqtt.Version311})
	w.AuthOnRegister(&RegisterRequest{ClientID: "c2", Version: mqtt.Version5})
	w.AuthOnPublish(alice, &PublishRequest{Topic: "a/b", QoS: 1, Payload: []byte("hello")})
	w.AuthOnPublish(anon, &PublishRequest{Topic: "a/c", QoS: 0, Retain: true})
	w.AuthOnSubscribe(alice, []SubscriptionRequest{{Filter: "a/b", QoS: 1}, {Filter: "c/#", QoS: 2}})
	w.OnRegister(alice)
	w.OnRegister(anon)
	w.OnSubscribe(alice, []SubscriptionRequest{{Filter: "a/b", QoS: 1}})
	filters := []string{"a/b", "c/#"}
	w.OnUnsubscribe(alice, filters)
	filters[0] = "changed after the call"
	w.OnDeliver(alice, "a/b", []byte("hello"))
	w.OnDeliver(anon, "a/b", nil)
	w.OnClientOffline(alice)
	w.OnClientGone(alice)
	w.OnSessionExpired("c3")
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	want := []struct{ hook, body string }{
		{"auth_on_register", `{"peer_addr":"192.0.2.1","peer_port":50123,"username":"alice","password":"s3cret","mountpoint":"","client_id":"c1"}`},
		{"auth_on_register", `{"peer_addr":null,"peer_port":null,"username":null,"password":null,"mountpoint":"","client_id":"c2"}`},
		{"auth_on_publish", `{"username":"alice","client_id":"c1","mountpoint":"","qos":1,"topic":"a/b","payload":"aGVsbG8=","retain":false}`},
		{"auth_on_publish", `{"username":null,"client_id":"c2","mountpoint":"","qos":0,"topic":"a/c","payload":"","retain":true}`},
		{"auth_on_subscribe", `{"client_id":"c1","mountpoint":"","username":"alice","topics":[{"topic":"a/b","qos":1},{"topic":"c/#","qos":2}]}`},
		{"on_register", `{"peer_addr":"192.0.2.1","peer_port":50123,"username":"alice","mountpoint":"","client_id":"c1"}`},
		{"on_register", `{"peer_addr":"2001:db8::1","peer_port":1883,"username":null,"mountpoint":"","client_id":"c2"}`},
		{"on_subscribe", `{"client_id":"c1","mountpoint":"","username":"alice","topics":[{"topic":"a/b","qos":1}]}`},
		{"on_unsubscribe", `{"username":"alice","client_id":"c1","mountpoint":"","topics":["a/b","c/#"]}`},
		{"on_deliver", `{"username":"alice","client_id":"c1","mountpoint":"","topic":"a/b","payload":"aGVsbG8="}`},
		{"on_deliver", `{"username":null,"client_id":"c2","mountpoint":"","topic":"a/b","payload":""}`},
		{"on_client_offline", `{"client_id":"c1","mountpoint":""}`},
		{"on_client_gone", `{"client_id":"c1","mountpoint":""}`},
		{"on_session_expired", `{"client_id":"c3","mountpoint":""}`},
	}
	got := s.received()
	if len(got) != len(want) {
		t.Fatalf("received %d calls, want %d: %v", len(got), len(want), got)
	}
	// Notifications may arrive in any order; match each wanted call once.
	used := make([]bool, len(got))
	for _, wc := range want {
		wb := jsonOf(t, wc.body)
		found := false
		for i, c := range got {
			if !used[i] && c.hook == wc.hook && reflect.DeepEqual(c.body, wb) {
				used[i], found = true, true
				if c.ctype != "application/json" {
					t.Errorf("%s: Content-Type %q", c.hook, c.ctype)
				}
				break
			}
		}
		if !found {
			t.Errorf("no %s call with body %s; received %v", wc.hook, wc.body, got)
		}
	}
}

// TestWebhookAnswers has a row per answer of an auth hook: the Result and how
// the request was changed.
func TestWebhookAnswers(t *testing.T) {
	type row struct {
		name   string
		answer string
		want   Result
	}
	t.Run("auth_on_register", func(t *testing.T) {
		for _, tt := range []struct {
			row
			user string
		}{
			{row{"ok", `{"result":"ok"}`, Result{Decision: Allow}}, "alice"},
			{row{"ok with empty modifiers list", `{"result":"ok","modifiers":[]}`, Result{Decision: Allow}}, "alice"},
			{row{"next", `{"result":"next"}`, Result{Decision: Next}}, "alice"},
			{row{"error", `{"result":{"error":"not_allowed"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, "alice"},
			{row{"invalid credentials", `{"result":{"error":"invalid_credentials"}}`, Result{Decision: Deny, Code: mqtt.BadUserNameOrPassword}}, "alice"},
			{row{"unknown error text", `{"result":{"error":"some error message"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, "alice"},
			{row{"reason code name", `{"result":{"error":{"reason_code":"banned"}}}`, Result{Decision: Deny, Code: mqtt.Banned}}, "alice"},
			{row{"reason code number", `{"result":{"error":{"reason_code":136}}}`, Result{Decision: Deny, Code: mqtt.ServerUnavailable}}, "alice"},
			{row{"not a CONNACK code", `{"result":{"error":"topic_filter_invalid"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, "alice"},
			{row{"username modifier", `{"result":"ok","modifiers":{"username":"bob","max_inflight_messages":10}}`, Result{Decision: Allow}}, "bob"},
			{row{"empty username modifier", `{"result":"ok","modifiers":{"username":""}}`, Result{Decision: Allow}}, "alice"},
			{row{"unknown result", `{"result":"maybe"}`, Result{Decision: Deny, Code: mqtt.ServerUnavailable}}, "alice"},
			{row{"no result", `{}`, Result{Decision: Deny, Code: mqtt.ServerUnavailable}}, "alice"},
			{row{"not JSON", `ok`, Result{Decision: Deny, Code: mqtt.ServerUnavailable}}, "alice"},
			{row{"bad modifier type", `{"result":"ok","modifiers":{"username":7}}`, Result{Decision: Deny, Code: mqtt.ServerUnavailable}}, "alice"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := newHookServer(t, reply(tt.answer, ""))
				w := newTestWebhooks(t, s.srv.URL, WebhookOptions{}, HookAuthOnRegister)
				r := &RegisterRequest{ClientID: "c1", Username: "alice", HasUser: true, Password: []byte("p")}
				if got := w.AuthOnRegister(r); got != tt.want {
					t.Errorf("result %+v, want %+v", got, tt.want)
				}
				if r.Username != tt.user {
					t.Errorf("username %q, want %q", r.Username, tt.user)
				}
			})
		}
	})
	t.Run("auth_on_publish", func(t *testing.T) {
		in := PublishRequest{Topic: "in/x", QoS: 1, Payload: []byte("orig")}
		for _, tt := range []struct {
			row
			out PublishRequest
		}{
			{row{"ok", `{"result":"ok"}`, Result{Decision: Allow}}, in},
			{row{"next", `{"result":"next"}`, Result{Decision: Next}}, in},
			{row{"error", `{"result":{"error":"some error message"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"quota", `{"result":{"error":{"reason_code":"quota_exceeded"}}}`, Result{Decision: Deny, Code: mqtt.QuotaExceeded}}, in},
			{row{"all modifiers", `{"result":"ok","modifiers":{"topic":"out/x","qos":0,"retain":true,"payload":"bmV3"}}`, Result{Decision: Allow}},
				PublishRequest{Topic: "out/x", QoS: 0, Retain: true, Payload: []byte("new")}},
			{row{"qos is not raised", `{"result":"ok","modifiers":{"qos":2}}`, Result{Decision: Allow}}, in},
			{row{"empty payload", `{"result":"ok","modifiers":{"payload":""}}`, Result{Decision: Allow}},
				PublishRequest{Topic: "in/x", QoS: 1, Payload: []byte{}}},
			{row{"wildcard topic", `{"result":"ok","modifiers":{"topic":"out/+"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"qos 3", `{"result":"ok","modifiers":{"qos":3}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"payload not base64", `{"result":"ok","modifiers":{"payload":"@@"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := newHookServer(t, reply(tt.answer, ""))
				w := newTestWebhooks(t, s.srv.URL, WebhookOptions{}, HookAuthOnPublish)
				p := in
				if got := w.AuthOnPublish(alice, &p); got != tt.want {
					t.Errorf("result %+v, want %+v", got, tt.want)
				}
				if !reflect.DeepEqual(p, tt.out) {
					t.Errorf("request %+v, want %+v", p, tt.out)
				}
			})
		}
	})
	t.Run("auth_on_subscribe", func(t *testing.T) {
		in := []SubscriptionRequest{{Filter: "a/b", QoS: 1}, {Filter: "secret/#", QoS: 2}, {Filter: "c", QoS: 0}}
		for _, tt := range []struct {
			row
			out []SubscriptionRequest
		}{
			{row{"ok", `{"result":"ok"}`, Result{Decision: Allow}}, in},
			{row{"next", `{"result":"next"}`, Result{Decision: Next}}, in},
			{row{"error", `{"result":{"error":"not_allowed"}}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"rewrite and refuse", `{"result":"ok","topics":[{"topic":"x/a/b","qos":0},{"topic":"secret/#","qos":128},{"topic":"c","qos":151}]}`,
				Result{Decision: Allow}},
				[]SubscriptionRequest{{Filter: "x/a/b", QoS: 0}, {Filter: "secret/#", QoS: 2, Code: mqtt.NotAuthorized},
					{Filter: "c", QoS: 0, Code: mqtt.QuotaExceeded}}},
			{row{"topics in modifiers, qos not raised", `{"result":"ok","modifiers":{"topics":[{"topic":"a/b","qos":2},{"topic":"secret/#","qos":135},{"topic":"c","qos":0}]}}`,
				Result{Decision: Allow}},
				[]SubscriptionRequest{{Filter: "a/b", QoS: 1}, {Filter: "secret/#", QoS: 2, Code: mqtt.NotAuthorized}, {Filter: "c", QoS: 0}}},
			{row{"too few topics", `{"result":"ok","topics":[{"topic":"a/b","qos":0}]}`, Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"qos 3", `{"result":"ok","topics":[{"topic":"a/b","qos":3},{"topic":"s","qos":0},{"topic":"c","qos":0}]}`,
				Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
			{row{"invalid filter", `{"result":"ok","topics":[{"topic":"a/#/b","qos":0},{"topic":"s","qos":0},{"topic":"c","qos":0}]}`,
				Result{Decision: Deny, Code: mqtt.NotAuthorized}}, in},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := newHookServer(t, reply(tt.answer, ""))
				w := newTestWebhooks(t, s.srv.URL, WebhookOptions{}, HookAuthOnSubscribe)
				subs := append([]SubscriptionRequest(nil), in...)
				if got := w.AuthOnSubscribe(alice, subs); got != tt.want {
					t.Errorf("result %+v, want %+v", got, tt.want)
				}
				if !reflect.DeepEqual(subs, tt.out) {
					t.Errorf("subscriptions %+v, want %+v", subs, tt.out)
				}
			})
		}
	})
}

func TestWebhookNotConfigured(t *testing.T) {
	w := newTestWebhooks(t, "http://127.0.0.1:1", WebhookOptions{}, HookOnRegister)
	if w.Has(HookAuthOnPublish) || !w.Has(HookOnRegister) {
		t.Fatal("Has is wrong")
	}
	p := PublishRequest{Topic: "a"}
	if got := w.AuthOnPublish(alice, &p); got.Decision != Next {
		t.Errorf("unconfigured auth_on_publish: %+v", got)
	}
	if got := w.AuthOnRegister(&RegisterRequest{}); got.Decision != Next {
		t.Errorf("unconfigured auth_on_register: %+v", got)
	}
	if got := w.AuthOnSubscribe(alice, nil); got.Decision != Next {
		t.Errorf("unconfigured auth_on_subscribe: %+v", got)
	}
	w.OnDeliver(alice, "a", nil) // not configured: nothing queued
	if st := w.Stats(HookOnDeliver); st != (WebhookStats{}) {
		t.Errorf("stats of an unconfigured hook: %+v", st)
	}
}

// TestWebhookFailures: a slow endpoint, a status other than 200 and a refused
// connection each apply on_error, are counted, and are logged once per
// interval without the URL's secrets.
func TestWebhookFailures(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer broken.Close()
	redirect := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusTemporaryRedirect))
	defer redirect.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	for _, tt := range []struct {
		name  string
		url   string
		allow bool
		want  [3]Result // register, publish, subscribe
	}{
		{"timeout deny", slow.URL, false, [3]Result{{Deny, mqtt.ServerUnavailable}, {Deny, mqtt.NotAuthorized}, {Deny, mqtt.NotAuthorized}}},
		{"timeout allow", slow.URL, true, [3]Result{{Decision: Allow}, {Decision: Allow}, {Decision: Allow}}},
		{"status 500 deny", broken.URL, false, [3]Result{{Deny, mqtt.ServerUnavailable}, {Deny, mqtt.NotAuthorized}, {Deny, mqtt.NotAuthorized}}},
		{"redirect deny", redirect.URL, false, [3]Result{{Deny, mqtt.ServerUnavailable}, {Deny, mqtt.NotAuthorized}, {Deny, mqtt.NotAuthorized}}},
		{"refused allow", refused, true, [3]Result{{Decision: Allow}, {Decision: Allow}, {Decision: Allow}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := WebhookOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			u := strings.Replace(tt.url, "http://", "http://user:pw-secret@", 1) + "/hook?token=tok-secret"
			for _, h := range []Hook{HookAuthOnRegister, HookAuthOnPublish, HookAuthOnSubscribe} {
				opts.Endpoints = append(opts.Endpoints, Endpoint{Hook: h, URL: u, Timeout: 100 * time.Millisecond, AllowOnError: tt.allow})
			}
			w, err := NewWebhooks(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(context.Background())
			for range 2 {
				start := time.Now()
				got := [3]Result{
					w.AuthOnRegister(&RegisterRequest{ClientID: "c1", Password: []byte("pw-client")}),
					w.AuthOnPublish(alice, &PublishRequest{Topic: "a"}),
					w.AuthOnSubscribe(alice, []SubscriptionRequest{{Filter: "a"}}),
				}
				if got != tt.want {
					t.Errorf("results %+v, want %+v", got, tt.want)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("three calls took %v with a 100ms timeout", d)
				}
			}
			for _, h := range []Hook{HookAuthOnRegister, HookAuthOnPublish, HookAuthOnSubscribe} {
				if st := w.Stats(h); st.Requests != 2 || st.Failures != 2 {
					t.Errorf("%s stats %+v, want 2 requests, 2 failures", h, st)
				}
			}
			out := logs.String()
			if n := strings.Count(out, "webhook failed"); n != 3 {
				t.Errorf("%d failure lines for 6 failures on 3 endpoints, want 3 (one per endpoint per interval):\n%s", n, out)
			}
			for _, secret := range []string{"pw-secret", "tok-secret", "pw-client"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log shows %q:\n%s", secret, out)
				}
			}
		})
	}
}

// TestWebhookCache: an ok answer with max-age is reused for the same request
// until it expires; other answers and answers without max-age are not.
func TestWebhookCache(t *testing.T) {
	var mu sync.Mutex
	answer, age := `{"result":"ok"}`, "10"
	s := newHookServer(t, func(w http.ResponseWriter, c hookCall) {
		mu.Lock()
		defer mu.Unlock()
		reply(answer, age)(w, c)
	})
	set := func(a, m string) { mu.Lock(); answer, age = a, m; mu.Unlock() }
	now := time.Unix(1700000000, 0)
	w := newTestWebhooks(t, s.srv.URL, WebhookOptions{}, HookAuthOnRegister, HookAuthOnPublish, HookAuthOnSubscribe)
	w.now = func() time.Time { return now }
	calls := func() int { return len(s.received()) }

	reg := func(pass, addr string) Result {
		return w.AuthOnRegister(&RegisterRequest{ClientID: "c1", Username: "u", HasUser: true, Password: []byte(pass),
			RemoteAddr: otherAddr(addr)})
	}
	for i := range 3 {
		if r := reg("p", "192.0.2.1:"+string(rune('1'+i))+"000"); r.Decision != Allow {
			t.Fatalf("register %d: %+v", i, r)
		}
	}
	if calls() != 1 || w.Stats(HookAuthOnRegister).CacheHits != 2 {
		t.Fatalf("three registers from one address, new ports: %d calls, stats %+v; want 1 call, 2 hits",
			calls(), w.Stats(HookAuthOnRegister))
	}
	reg("other", "192.0.2.1:1000")
	reg("p", "192.0.2.9:1000")
	if calls() != 3 {
		t.Fatalf("another password and another address: %d calls, want 3", calls())
	}
	now = now.Add(11 * time.Second)
	reg("p", "192.0.2.1:1000")
	if calls() != 4 {
		t.Fatalf("after max-age: %d calls, want 4", calls())
	}

	// auth_on_publish: the payload is not part of the key, and the payload
	// modifier is not cached; the other modifiers are.
	set(`{"result":"ok","modifiers":{"topic":"out/x","payload":"bmV3"}}`, "10")
	p1 := PublishRequest{Topic: "in/x", QoS: 1, Payload: []byte("one")}
	w.AuthOnPublish(alice, &p1)
	p2 := PublishRequest{Topic: "in/x", QoS: 1, Payload: []byte("two")}
	w.AuthOnPublish(alice, &p2)
	if calls() != 5 {
		t.Fatalf("publish twice: %d calls, want 5", calls())
	}
	if p1.Topic != "out/x" || string(p1.Payload) != "new" || p2.Topic != "out/x" || string(p2.Payload) != "two" {
		t.Errorf("first publish %+v, second (cached) %+v", p1, p2)
	}
	p3 := PublishRequest{Topic: "in/x", QoS: 0, Payload: []byte("one")}
	w.AuthOnPublish(alice, &p3)
	if calls() != 6 {
		t.Fatalf("publish at another QoS: %d calls, want 6", calls())
	}

	// auth_on_subscribe: the topics with their QoS are the key.
	set(`{"result":"ok","topics":[{"topic":"a","qos":0},{"topic":"b","qos":128}]}`, "10")
	for range 2 {
		subs := []SubscriptionRequest{{Filter: "a", QoS: 1}, {Filter: "b", QoS: 1}}
		w.AuthOnSubscribe(alice, subs)
		if subs[0].QoS != 0 || subs[1].Code != mqtt.NotAuthorized {
			t.Errorf("subscribe: %+v", subs)
		}
	}
	if calls() != 7 {
		t.Fatalf("subscribe twice: %d calls, want 7", calls())
	}

	// Refusals, next and answers without max-age are not cached.
	for _, a := range []struct{ body, age string }{
		{`{"result":{"error":"not_allowed"}}`, "10"},
		{`{"result":"next"}`, "10"},
		{`{"result":"ok"}`, ""},
		{`{"result":"ok"}`, "0"},
	} {
		set(a.body, a.age)
		before := calls()
		w.AuthOnPublish(alice, &PublishRequest{Topic: "uncached"})
		w.AuthOnPublish(alice, &PublishRequest{Topic: "uncached"})
		if calls() != before+2 {
			t.Errorf("answer %s with max-age %q was cached", a.body, a.age)
		}
	}
}

func TestWebhookCacheIsBounded(t *testing.T) {
	s := newHookServer(t, reply(`{"result":"ok"}`, "60"))
	w := newTestWebhooks(t, s.srv.URL, WebhookOptions{CacheSize: 3}, HookAuthOnPublish)
	for _, topic := range []string{"a", "b", "c", "d", "e"} {
		w.AuthOnPublish(alice, &PublishRequest{Topic: topic})
	}
	if n := w.cache.len(); n != 3 {
		t.Errorf("cache holds %d answers, want 3", n)
	}
	w.AuthOnPublish(alice, &PublishRequest{Topic: "e"})
	if st := w.Stats(HookAuthOnPublish); st.Requests != 5 || st.CacheHits != 1 {
		t.Errorf("stats %+v: the newest answer should be cached", st)
	}
}

func TestWebhookChain(t *testing.T) {
	next := newHookServer(t, reply(`{"result":"next"}`, ""))
	modify := newHookServer(t, reply(`{"result":"ok","modifiers":{"topic":"second"}}`, ""))
	deny := newHookServer(t, reply(`{"result":{"error":"not_allowed"}}`, ""))
	mk := func(urls ...string) *Webhooks {
		var opts WebhookOptions
		for _, u := range urls {
			opts.Endpoints = append(opts.Endpoints, Endpoint{Hook: HookAuthOnPublish, URL: u})
		}
		w, err := NewWebhooks(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		return w
	}
	p := PublishRequest{Topic: "t"}
	if r := mk(next.srv.URL, modify.srv.URL).AuthOnPublish(alice, &p); r.Decision != Allow || p.Topic != "second" {
		t.Errorf("next then ok: %+v, topic %q", r, p.Topic)
	}
	if r := mk(deny.srv.URL, modify.srv.URL).AuthOnPublish(alice, &p); r.Decision != Deny {
		t.Errorf("error then ok: %+v", r)
	}
	if n := len(modify.received()); n != 1 {
		t.Errorf("the second endpoint was asked %d times, want once (not after a refusal)", n)
	}
	if r := mk(next.srv.URL, next.srv.URL).AuthOnPublish(alice, &p); r.Decision != Next {
		t.Errorf("next twice: %+v", r)
	}
}

// TestWebhookNotificationQueue: notifications never block; a full queue drops
// and counts; Close sends what is queued and drops what comes after.
func TestWebhookNotificationQueue(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	s := newHookServer(t, func(w http.ResponseWriter, c hookCall) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "{}")
	})
	w := newTestWebhooks(t, s.srv.URL, WebhookOptions{Workers: 1, QueueSize: 2}, HookOnClientGone)
	w.OnClientGone(&Client{ClientID: "first"})
	<-arrived // the worker is busy with it
	start := time.Now()
	for _, id := range []string{"q1", "q2", "d1", "d2"} {
		w.OnClientGone(&Client{ClientID: id})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("enqueueing took %v", d)
	}
	if st := w.Stats(HookOnClientGone); st.Dropped != 2 {
		t.Errorf("dropped %d, want 2", st.Dropped)
	}
	close(release)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range s.received() {
		ids = append(ids, c.body["client_id"].(string))
	}
	if !reflect.DeepEqual(ids, []string{"first", "q1", "q2"}) {
		t.Errorf("delivered %v, want first, q1, q2", ids)
	}
	w.OnClientGone(&Client{ClientID: "late"})
	if st := w.Stats(HookOnClientGone); st.Dropped != 3 || st.Requests != 3 {
		t.Errorf("after Close: stats %+v, want 3 requests, 3 dropped", st)
	}
}

func TestWebhookNotificationFailures(t *testing.T) {
	s := newHookServer(t, func(w http.ResponseWriter, c hookCall) { w.WriteHeader(http.StatusBadGateway) })
	var logs syncBuffer
	w := newTestWebhooks(t, s.srv.URL, WebhookOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, HookOnRegister)
	for range 3 {
		w.OnRegister(alice)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(HookOnRegister); st.Requests != 3 || st.Failures != 3 {
		t.Errorf("stats %+v, want 3 requests, 3 failures", st)
	}
	if out := logs.String(); strings.Count(out, "webhook failed") != 1 || !strings.Contains(out, "502") {
		t.Errorf("want one failure line naming the status:\n%s", out)
	}
}

// TestWebhookCloseGivesUp: Close returns at its deadline and cancels the call
// that is still running.
func TestWebhookCloseGivesUp(t *testing.T) {
	cancelled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server sees the client go only once the body is read
		<-r.Context().Done()
		close(cancelled)
	}))
	defer srv.Close()
	w, err := NewWebhooks(WebhookOptions{Endpoints: []Endpoint{{Hook: HookOnClientOffline, URL: srv.URL, Timeout: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	w.OnClientOffline(alice)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Error("the running call was not cancelled")
	}
	if r := w.AuthOnRegister(&RegisterRequest{}); r.Decision != Next {
		t.Errorf("unconfigured hook after Close: %+v", r)
	}
}

func TestWebhookHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"result":{"error":"banned"}}`)
	}))
	defer srv.Close()
	w, err := NewWebhooks(WebhookOptions{HTTPClient: srv.Client(),
		Endpoints: []Endpoint{{Hook: HookAuthOnRegister, URL: srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	if r := w.AuthOnRegister(&RegisterRequest{ClientID: "c"}); r != (Result{Deny, mqtt.Banned}) {
		t.Errorf("over HTTPS: %+v", r)
	}
	// Without the test server's root, the default client refuses the certificate.
	w2, err := NewWebhooks(WebhookOptions{Endpoints: []Endpoint{{Hook: HookAuthOnRegister, URL: srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(context.Background())
	if r := w2.AuthOnRegister(&RegisterRequest{ClientID: "c"}); r != (Result{Deny, mqtt.ServerUnavailable}) {
		t.Errorf("untrusted certificate: %+v", r)
	}
}

func TestNewWebhooksErrors(t *testing.T) {
	for _, e := range []Endpoint{
		{Hook: 0, URL: "http://x"},
		{Hook: numHooks, URL: "http://x"},
		{Hook: HookOnRegister, URL: "ftp://x"},
		{Hook: HookOnRegister, URL: "http://"},
		{Hook: HookOnRegister, URL: "::"},
	} {
		if _, err := NewWebhooks(WebhookOptions{Endpoints: []Endpoint{e}}); err == nil {
			t.Errorf("NewWebhooks(%+v) succeeded", e)
		}
	}
}

func TestHookNames(t *testing.T) {
	for h := HookAuthOnRegister; h < numHooks; h++ {
		got, err := ParseHook(h.String())
		if err != nil || got != h {
			t.Errorf("ParseHook(%q) = %v, %v", h.String(), got, err)
		}
		if h.IsAuth() != strings.HasPrefix(h.String(), "auth_") {
			t.Errorf("%s.IsAuth() = %v", h, h.IsAuth())
		}
	}
	if _, err := ParseHook("on_publish"); err == nil {
		t.Error("ParseHook(on_publish) succeeded")
	}
	if Hook(99).String() != "Hook(99)" || Allow.String() != "allow" || Decision(0).String() != "Decision(0)" {
		t.Error("String of an unknown value")
	}
}

func TestMaxAge(t *testing.T) {
	for _, tt := range []struct {
		header []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"max-age=45"}, 45 * time.Second},
		{[]string{"  max-age=45,sthelse"}, 45 * time.Second},
		{[]string{"no-store", "private, Max-Age=7"}, 7 * time.Second},
		{[]string{"max-age="}, 0},
		{[]string{"max-age=x"}, 0},
		{[]string{"max-age=-1"}, 0},
		{[]string{"no-cache"}, 0},
	} {
		h := http.Header{}
		for _, v := range tt.header {
			h.Add("Cache-Control", v)
		}
		if got := maxAge(h); got != tt.want {
			t.Errorf("maxAge(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// NopHooks and Webhooks are both Hooks; an in-process implementation embeds
// NopHooks.
func TestNopHooks(t *testing.T) {
	var h Hooks = struct{ NopHooks }{}
	if r := h.AuthOnPublish(alice, &PublishRequest{}); r.Decision != Next {
		t.Errorf("NopHooks.AuthOnPublish = %+v", r)
	}
	h.OnDeliver(alice, "a", nil)
}

// syncBuffer is a bytes.Buffer safe for the workers' concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
