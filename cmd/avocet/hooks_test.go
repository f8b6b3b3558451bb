package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/auth"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// webhookEndpoint answers the hooks of TestWebhooksEndToEnd as a VerneMQ
// endpoint would and records the notifications it receives.
type webhookEndpoint struct {
	mu     sync.Mutex
	events []string // "hook client_id"
}

func (e *webhookEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ClientID string `json:"client_id"`
		Topic    string `json:"topic"`
		Topics   []struct {
			Topic string `json:"topic"`
			QoS   int    `json:"qos"`
		} `json:"topics"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	hook := r.Header.Get("vernemq-hook")
	switch hook {
	case "auth_on_register":
		if body.ClientID == "banned" {
			_, _ = io.WriteString(w, `{"result":{"error":"not_allowed"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"result":"ok"}`)
	case "auth_on_publish":
		if body.Topic == "in/x" {
			_, _ = io.WriteString(w, `{"result":"ok","modifiers":{"topic":"out/x"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"result":"next"}`)
	case "auth_on_subscribe":
		for i, t := range body.Topics {
			if strings.HasPrefix(t.Topic, "secret/") {
				body.Topics[i].QoS = 128
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"result": "ok", "topics": body.Topics})
	default:
		e.mu.Lock()
		e.events = append(e.events, hook+" "+body.ClientID)
		e.mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}
}

func (e *webhookEndpoint) seen(event string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.events, event)
}

// waitFor polls cond until it holds or 15 seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhooksEndToEnd runs the binary with [[webhook]] entries pointing at an
// endpoint in the test: it refuses a client id, rewrites a topic, refuses a
// filter and hears of connections and disconnections.
func TestWebhooksEndToEnd(t *testing.T) {
	ep := &webhookEndpoint{}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	cfg := withStore(testConfig, t.TempDir())
	for _, hook := range []string{"auth_on_register", "auth_on_publish", "auth_on_subscribe", "on_register", "on_client_gone"} {
		cfg += "\n[[webhook]]\nhook = \"" + hook + "\"\nurl = \"" + srv.URL + "/" + hook + "\"\ntimeout = \"5s\"\non_error = \"deny\"\n"
	}
	_, addrs := startAvocet(t, cfg)
	addr := addrs["tcp"]

	// auth_on_register refuses the client id: 0x87 for 5.0, return code 5 for 3.1.1.
	if _, code := connectAs(t, addr, "banned", "", ""); code != mqtt.NotAuthorized {
		t.Fatalf("5.0 CONNACK %v, want not authorized", code)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	cp, err := (&mqtt.Connect{Version: mqtt.Version311, CleanStart: true, ClientID: "banned", KeepAlive: 30}).Encode(nil, mqtt.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(cp); err != nil {
		t.Fatal(err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(nc, ack[:]); err != nil {
		t.Fatal(err)
	}
	if ack != [4]byte{0x20, 0x02, 0x00, 0x05} {
		t.Fatalf("3.1.1 CONNACK % x, want 20 02 00 05", ack)
	}

	// auth_on_subscribe refuses secret/#: 0x87 for 5.0, 0x80 for 3.1.1.
	sc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sub := newClient(t, sc, mqtt.Version5, "sub")
	sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "out/#", QoS: 1}, {Filter: "secret/#", QoS: 1}}})
	if sa, ok := sub.read().(*mqtt.Suback); !ok || !slices.Equal(sa.ReasonCodes, []mqtt.ReasonCode{mqtt.GrantedQoS1, mqtt.NotAuthorized}) {
		t.Fatalf("5.0 SUBACK %#v, want granted QoS 1 and not authorized", sa)
	}
	oc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	old := newClient(t, oc, mqtt.Version311, "sub311")
	old.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "secret/x", QoS: 0}}})
	if sa, ok := old.read().(*mqtt.Suback); !ok || !slices.Equal(sa.ReasonCodes, []mqtt.ReasonCode{0x80}) {
		t.Fatalf("3.1.1 SUBACK %#v, want 0x80", sa)
	}

	// auth_on_publish rewrites in/x to out/x, which the subscriber receives.
	pc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pub := newClient(t, pc, mqtt.Version311, "pub")
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 9, Topic: "in/x", Payload: []byte("rewritten")})
	if pa, ok := pub.read().(*mqtt.Puback); !ok || pa.PacketID != 9 {
		t.Fatalf("PUBACK %#v", pa)
	}
	if got, ok := sub.read().(*mqtt.Publish); !ok || got.Topic != "out/x" || string(got.Payload) != "rewritten" {
		t.Fatalf("subscriber got %#v, want the message on out/x", got)
	}

	// on_register and on_client_gone reach the endpoint.
	waitFor(t, "on_register of pub", func() bool { return ep.seen("on_register pub") })
	if ep.seen("on_register banned") {
		t.Error("on_register for a refused client")
	}
	pub.send(&mqtt.Disconnect{})
	waitFor(t, "on_client_gone of pub", func() bool { return ep.seen("on_client_gone pub") })
}

// fakeHooks is an in-process auth.Hooks whose register answer a test sets.
type fakeHooks struct {
	auth.NopHooks
	answer auth.Result
	rename string
	asked  []auth.RegisterRequest
}

func (f *fakeHooks) AuthOnRegister(r *auth.RegisterRequest) auth.Result {
	f.asked = append(f.asked, *r)
	if f.rename != "" {
		r.Username = f.rename
	}
	return f.answer
}

func (f *fakeHooks) AuthOnSubscribe(_ *auth.Client, subs []auth.SubscriptionRequest) auth.Result {
	subs[0].Filter, subs[0].QoS = "rewritten/#", 0
	subs[1].Code = mqtt.QuotaExceeded
	return auth.Result{Decision: auth.Allow}
}

// TestHookAuthenticator checks how auth_on_register is chained after the
// built-in authenticator.
func TestHookAuthenticator(t *testing.T) {
	pw := auth.NewPasswords()
	if err := pw.Set("alice", []byte("right")); err != nil {
		t.Fatal(err)
	}
	allow, next, deny := auth.Result{Decision: auth.Allow}, auth.Result{Decision: auth.Next}, auth.Result{Decision: auth.Deny}
	for _, tt := range []struct {
		name      string
		builtin   *authenticator
		info      broker.ConnectInfo
		answer    auth.Result
		rename    string
		wantCode  mqtt.ReasonCode
		wantUser  string
		wantAsked bool
	}{
		{"wrong password is final", &authenticator{passwords: pw}, broker.ConnectInfo{Username: "alice", HasUser: true, Password: []byte("wrong")},
			allow, "", mqtt.BadUserNameOrPassword, "", false},
		{"right password, hook allows", &authenticator{passwords: pw}, broker.ConnectInfo{Username: "alice", HasUser: true, Password: []byte("right")},
			allow, "", mqtt.Success, "", true},
		{"right password, hook denies", &authenticator{passwords: pw}, broker.ConnectInfo{Username: "alice", HasUser: true, Password: []byte("right")},
			auth.Result{Decision: auth.Deny, Code: mqtt.Banned}, "", mqtt.Banned, "", true},
		{"right password, next", &authenticator{passwords: pw}, broker.ConnectInfo{Username: "alice", HasUser: true, Password: []byte("right")},
			next, "", mqtt.Success, "", true},
		{"anonymous refused by allow_anonymous, hook allows", &authenticator{passwords: pw}, broker.ConnectInfo{ClientID: "c"},
			allow, "", mqtt.Success, "", true},
		{"anonymous, next keeps allow_anonymous = false", &authenticator{}, broker.ConnectInfo{ClientID: "c"},
			next, "", mqtt.NotAuthorized, "", true},
		{"anonymous, next keeps allow_anonymous = true", &authenticator{allowAnonymous: true}, broker.ConnectInfo{ClientID: "c"},
			next, "", mqtt.Success, "", true},
		{"no password file, hook decides", &authenticator{allowAnonymous: true}, broker.ConnectInfo{Username: "bob", HasUser: true},
			deny, "", mqtt.NotAuthorized, "", true},
		{"username modifier", &authenticator{allowAnonymous: true}, broker.ConnectInfo{Username: "bob", HasUser: true},
			allow, "robert", mqtt.Success, "robert", true},
		{"certificate identity missing is final", &authenticator{identity: map[string]bool{"mtls": true}}, broker.ConnectInfo{Listener: "mtls"},
			allow, "", mqtt.NotAuthorized, "", false},
		{"certificate identity is the username", &authenticator{identity: map[string]bool{"mtls": true}},
			broker.ConnectInfo{Listener: "mtls", TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "dev-7"}}}}},
			allow, "", mqtt.Success, "dev-7", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHooks{answer: tt.answer, rename: tt.rename}
			a := &hookAuthenticator{builtin: tt.builtin, hooks: f}
			code, user := a.Authenticate(&tt.info)
			if code != tt.wantCode || user != tt.wantUser {
				t.Errorf("Authenticate = %v, %q; want %v, %q", code, user, tt.wantCode, tt.wantUser)
			}
			if asked := len(f.asked) > 0; asked != tt.wantAsked {
				t.Errorf("hook asked: %v, want %v", asked, tt.wantAsked)
			}
			if tt.name == "certificate identity is the username" && (f.asked[0].Username != "dev-7" || !f.asked[0].HasUser) {
				t.Errorf("the hook was asked about %+v, want the certificate identity as username", f.asked[0])
			}
		})
	}
}

func TestBrokerHooksAdapter(t *testing.T) {
	var wh *webhooks
	if wh.brokerHooks() != nil {
		t.Error("no [[webhook]]: broker hooks are not nil")
	}
	if newBrokerHooks(&fakeHooks{}, func(h auth.Hook) bool { return h == auth.HookAuthOnRegister }) != nil {
		t.Error("only auth_on_register: broker hooks are not nil")
	}
	b := newBrokerHooks(&fakeHooks{}, func(h auth.Hook) bool { return h == auth.HookAuthOnSubscribe })
	reqs := []broker.SubscriptionRequest{{Filter: "a/#", QoS: 1}, {Filter: "b", QoS: 1}}
	codes := make([]mqtt.ReasonCode, 2)
	b.AuthOnSubscribe(&broker.ClientInfo{ClientID: "c"}, reqs, codes)
	if reqs[0] != (broker.SubscriptionRequest{Filter: "rewritten/#", QoS: 0}) || codes[0] != mqtt.Success || codes[1] != mqtt.QuotaExceeded {
		t.Errorf("after the hook: %+v, %v", reqs, codes)
	}
	// A hook that is off is not called.
	req := broker.PublishRequest{Topic: "t"}
	if code := b.AuthOnPublish(&broker.ClientInfo{}, &req); code != mqtt.Success || req.Topic != "t" {
		t.Errorf("auth_on_publish off: %v, %+v", code, req)
	}
}
