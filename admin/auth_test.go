package admin

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/avocet-mqtt/avocet/broker"
)

// idleBroker returns a broker that serves no connections, for tests of New.
func idleBroker(t *testing.T) *broker.Broker {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.Logger = testLogger(t)
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return b
}

func TestNewRefusesAnOpenAPIOnTheNetwork(t *testing.T) {
	b := idleBroker(t)
	for _, tc := range []struct {
		address, token string
		err            string // part of New's error; empty: New succeeds
	}{
		{"127.0.0.1:8888", "", ""},
		{"127.0.0.2:8888", "", ""},
		{"localhost:8888", "", ""},
		{"[::1]:8888", "", ""},
		{"127.0.0.1:8888", "t0ken", ""},
		{"0.0.0.0:8888", "t0ken", ""},
		{"0.0.0.0:8888", "", "token is empty"},
		{":8888", "", "token is empty"},
		{"[::]:8888", "", "token is empty"},
		{"192.0.2.7:8888", "", "token is empty"},
		{"admin.example.com:8888", "", "token is empty"},
		{"8888", "", "missing port"},
		{"", "", "missing port"},
	} {
		_, err := New(Options{Address: tc.address, Token: tc.token, Broker: b, Logger: testLogger(t)})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("New(%q, token %t): %v", tc.address, tc.token != "", err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("New(%q, token %t) = %v, want an error containing %q", tc.address, tc.token != "", err, tc.err)
		}
	}
	if _, err := New(Options{Address: "127.0.0.1:0"}); err == nil {
		t.Error("New without a broker succeeded")
	}
}

func TestServeRefusesANetworkListenerWithoutToken(t *testing.T) {
	srv, err := New(Options{Address: "127.0.0.1:0", Broker: idleBroker(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "token is empty") {
		t.Fatalf("Serve on %s without a token: %v", ln.Addr(), err)
	}
}

// authRequest sends a request with the given Authorization header (none when
// empty) and returns the status and the WWW-Authenticate header.
func authRequest(t *testing.T, method, url, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode, res.Header.Get("WWW-Authenticate")
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func TestTokenRequiredOnTheNetwork(t *testing.T) {
	const token = "Sesame-0pen"
	srv, err := New(Options{Address: "0.0.0.0:0", Token: token, Broker: idleBroker(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://127.0.0.1:" + port
	eventually(t, "Addr to report the listener", func() bool {
		a := srv.Addr()
		return a != nil && a.String() == ln.Addr().String()
	})

	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/api/v1/status", "", http.StatusUnauthorized},
		{"GET", "/api/v1/status", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/status", "Bearer ", http.StatusUnauthorized},
		{"GET", "/api/v1/status", "Bearer " + token + "x", http.StatusUnauthorized},
		{"GET", "/api/v1/status", "Token " + token, http.StatusUnauthorized},
		{"GET", "/api/v1/status", basic("admin", "wrong"), http.StatusUnauthorized},
		{"GET", "/api/v1/status", basic(token, ""), http.StatusUnauthorized},
		{"GET", "/api/v1/status", "Bearer " + token, http.StatusOK},
		{"GET", "/api/v1/status", "bearer " + token, http.StatusOK},
		{"GET", "/api/v1/status", basic("anyone", token), http.StatusOK},
		{"GET", "/metrics", "", http.StatusUnauthorized},
		{"GET", "/metrics", "Bearer " + token, http.StatusOK},
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/", basic("", token), http.StatusOK},
		{"GET", "/assets/status.js", "", http.StatusUnauthorized},
		{"GET", "/api/v1/trace?client_id=x", "", http.StatusUnauthorized},
		{"POST", "/api/v1/drain", "", http.StatusUnauthorized},
		{"GET", "/api/v1/cluster", "", http.StatusUnauthorized},
		{"POST", "/api/v1/cluster/join", "", http.StatusUnauthorized},
		{"POST", "/api/v1/cluster/leave", "", http.StatusUnauthorized},
		{"GET", "/api/v1/cluster", "Bearer " + token, http.StatusNotFound}, // not clustered
		{"DELETE", "/api/v1/sessions/x", "", http.StatusUnauthorized},
		{"GET", "/no/such/path", "", http.StatusUnauthorized},
		{"GET", "/no/such/path", "Bearer " + token, http.StatusNotFound},
		{"GET", "/healthz", "", http.StatusOK},
	} {
		code, challenge := authRequest(t, tc.method, base+tc.path, tc.auth)
		if code != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.auth, code, tc.want)
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(challenge, "Basic ") {
			t.Errorf("%s %s: 401 without a Basic challenge (%q)", tc.method, tc.path, challenge)
		}
	}
}

func TestTokenRequiredOnLoopbackWhenSet(t *testing.T) {
	e := newEnv(t, envOptions{admin: func(o *Options) { o.Token = "loop-token" }})
	if code, _ := authRequest(t, "GET", e.base+"/api/v1/status", ""); code != http.StatusUnauthorized {
		t.Errorf("no token on loopback: %d, want 401", code)
	}
	e.wantError(t, "GET", "/api/v1/sessions/none", http.StatusNotFound, "no session")
	if code, _ := authRequest(t, "GET", e.base+"/api/v1/status", "Bearer nope"); code != http.StatusUnauthorized {
		t.Errorf("a bad token on loopback: %d, want 401", code)
	}
}

func TestOpenOnLoopbackWithoutToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	if code, _ := authRequest(t, "GET", e.base+"/api/v1/status", ""); code != http.StatusOK {
		t.Errorf("loopback without a token: %d, want 200", code)
	}
}
