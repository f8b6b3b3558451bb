package listener_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/avocet-mqtt/avocet/listener"
)

// wsClient dials WebSocket listeners over its own transport, so that its
// connections end with the test. It records the local address of the last
// TCP connection it dialed.
type wsClient struct {
	http  *http.Client
	local chan net.Addr
}

func newWSClient(t *testing.T, pool *x509.CertPool) *wsClient {
	c := &wsClient{local: make(chan net.Addr, 16)}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.local <- conn.LocalAddr()
			}
			return conn, err
		},
	}
	if pool != nil {
		// Offer h2 as browsers do; the listener must still pick
		// HTTP/1.1 for the upgrade.
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		tr.ForceAttemptHTTP2 = true
	}
	c.http = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// dial opens a WebSocket to l's path with the given subprotocols.
func (c *wsClient) dial(t *testing.T, l listener.Listener, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return c.dialPath(t, l, l.Config().Path, true, subprotocols...)
}

// dialPath opens a WebSocket to path on l, closing it when the test ends if
// cleanup is set.
func (c *wsClient) dialPath(t *testing.T, l listener.Listener, path string, cleanup bool, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	scheme := "ws://"
	if l.Config().Kind == "wss" {
		scheme = "wss://"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, scheme+l.Addr().String()+path, &websocket.DialOptions{
		HTTPClient:   c.http,
		Subprotocols: subprotocols,
	})
	if err == nil && cleanup {
		t.Cleanup(func() { _ = ws.CloseNow() })
	}
	return ws, resp, err
}

// mustDial is dial that fails the test on error.
func (c *wsClient) mustDial(t *testing.T, l listener.Listener, subprotocols ...string) *websocket.Conn {
	t.Helper()
	ws, _, err := c.dial(t, l, subprotocols...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return ws
}

// pair dials l and accepts the connection, returning both ends. When the
// test ends the client goes first, so that the server's close handshake
// does not wait for a client that is not reading.
func (c *wsClient) pair(t *testing.T, l listener.Listener, subprotocols ...string) (*websocket.Conn, net.Conn) {
	t.Helper()
	ws, _, err := c.dialPath(t, l, l.Config().Path, false, subprotocols...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server := acceptNoCleanup(t, l)
	t.Cleanup(func() {
		_ = ws.CloseNow()
		_ = server.Close()
	})
	return ws, server
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// wsStream checks that the server sees the client's binary messages as one
// byte stream, however packets fall across messages [MQTT-6.0.0-2], and
// that each server Write reaches the client as a message. It returns the
// server's side of the connection.
func wsStream(t *testing.T, l listener.Listener, client *wsClient) net.Conn {
	t.Helper()
	ws, server := client.pair(t, l, "mqtt")
	if ws.Subprotocol() != "mqtt" {
		t.Fatalf("negotiated subprotocol %q, want mqtt", ws.Subprotocol())
	}

	connect := []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x04, 'a', 'b', 'c', 'd'}
	subscribe := []byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x01}
	pingreq := []byte{0xc0, 0x00}
	// More than the library's default read limit of 32 KiB in one message.
	big := append([]byte{0x30, 0x80, 0x80, 0x04, 0x00, 0x01, 't'}, bytes.Repeat([]byte{'x'}, 65536-3)...)
	messages := [][]byte{
		connect[:3], connect[3:9], connect[9:], // one packet over three messages
		append(append(append([]byte{}, subscribe...), pingreq...), pingreq[:1]...), // two and a half packets in one
		pingreq[1:],
		big[:5], big[5:],
	}
	var want []byte
	for _, m := range messages {
		want = append(want, m...)
	}

	ctx := ctxTimeout(t)
	written := make(chan error, 1)
	go func() {
		for _, m := range messages {
			if err := ws.Write(ctx, websocket.MessageBinary, m); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatalf("client write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("server read a different byte stream than the client sent")
	}

	for _, p := range [][]byte{{0x20, 0x02, 0x00, 0x00}, {0x90, 0x03, 0x00, 0x01, 0x01}, {0xd0, 0x00}} {
		if _, err := server.Write(p); err != nil {
			t.Fatalf("server write: %v", err)
		}
		typ, m, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(m, p) {
			t.Fatalf("client read %v %x, want binary %x", typ, m, p)
		}
	}
	return server
}

func TestWSStream(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	wsStream(t, l, newWSClient(t, nil))
	checkStats(t, l, listener.Stats{Accepted: 1, Current: 1})
}

func TestWSSStream(t *testing.T) {
	serverTLS, pool := testCert(t)
	serverTLS.NextProtos = []string{"h2", "http/1.1"}
	l := listen(t, listener.Config{Kind: "wss", Address: "127.0.0.1:0", TLS: serverTLS, Path: "/ws/mqtt"})
	if len(serverTLS.NextProtos) != 2 {
		t.Fatalf("Listen changed the caller's TLS config: NextProtos %q", serverTLS.NextProtos)
	}
	server := wsStream(t, l, newWSClient(t, pool))
	if state, ok := listener.TLSState(server); !ok || !state.HandshakeComplete {
		t.Errorf("TLSState = complete %v, ok %v; want a complete handshake", state.HandshakeComplete, ok)
	}

	// A client offering h2 by ALPN still gets HTTP/1.1, which the upgrade
	// needs.
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN negotiated %q, want http/1.1", p)
	}
}

func TestWSSubprotocols(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	client := newWSClient(t, nil)
	tests := []struct {
		name    string
		offered []string
		want    string // the subprotocol selected; "-" means refused with 400
	}{
		{"mqtt", []string{"mqtt"}, "mqtt"},
		{"mqttv3.1", []string{"mqttv3.1"}, "mqttv3.1"},
		{"mqtt preferred", []string{"mqttv3.1", "mqtt"}, "mqtt"},
		{"mqtt among others", []string{"chat", "mqtt"}, "mqtt"},
		{"none offered", nil, ""},
		{"only others", []string{"chat", "wamp"}, "-"},
	}
	var stats listener.Stats
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := client.dial(t, l, tt.offered...)
			if tt.want == "-" {
				if err == nil {
					t.Fatalf("dial succeeded with subprotocol %q, want 400", ws.Subprotocol())
				}
				if resp == nil || resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("dial: %v, response %v; want 400", err, resp)
				}
				stats.Rejected++
				checkStats(t, l, stats)
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if ws.Subprotocol() != tt.want {
				t.Errorf("client negotiated %q, want %q", ws.Subprotocol(), tt.want)
			}
			server := acceptNoCleanup(t, l)
			stats.Accepted++
			_ = ws.CloseNow()
			if err := server.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			checkStats(t, l, stats)
		})
	}
}

func TestWSWrongPath(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	client := newWSClient(t, nil)
	for _, path := range []string{"/", "/mqtt/", "/other"} {
		_, resp, err := client.dialPath(t, l, path, true, "mqtt")
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("dial %s: %v, response %v; want 404", path, err, resp)
		}
	}
	resp, err := client.http.Get("http://" + l.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}
	// A plain GET of the path is a failed upgrade.
	resp, err = client.http.Get("http://" + l.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Errorf("GET /mqtt: %s, want a client error", resp.Status)
	}
	checkStats(t, l, listener.Stats{Rejected: 1})
}

func TestWSAddrs(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	client := newWSClient(t, nil)
	_, server := client.pair(t, l, "mqtt")
	local := <-client.local
	if got := server.RemoteAddr(); got.String() != local.String() {
		t.Errorf("RemoteAddr %v, want the client's %v", got, local)
	}
	if a, ok := server.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Errorf("RemoteAddr %#v, want a *net.TCPAddr 127.0.0.1:port", server.RemoteAddr())
	}
	if got := server.LocalAddr(); got.String() != l.Addr().String() {
		t.Errorf("LocalAddr %v, want %v", got, l.Addr())
	}
}

// [MQTT-6.0.0-1] A text frame closes the connection.
func TestWSTextFrame(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	ws, server := newWSClient(t, nil).pair(t, l, "mqtt")

	ctx := ctxTimeout(t)
	read := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 16))
		read <- err
	}()
	if err := ws.Write(ctx, websocket.MessageText, []byte{0xc0, 0x00}); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("client read: %v, want close status 1003", err)
	}
	if err := <-read; err == nil || errors.Is(err, io.EOF) {
		t.Errorf("server read: %v, want an error", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
}

func TestWSMaxConnections(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0", MaxConnections: 1})
	client := newWSClient(t, nil)
	ws, first := client.pair(t, l, "mqtt")

	_, resp, err := client.dial(t, l, "mqtt")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial over the limit: %v, response %v; want 503", err, resp)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 1})

	_ = ws.CloseNow()
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 0})

	client.pair(t, l, "mqtt")
	checkStats(t, l, listener.Stats{Accepted: 2, Rejected: 1, Current: 1})
}

func TestWSServerClose(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	ws, server := newWSClient(t, nil).pair(t, l, "mqtt")

	ctx := ctxTimeout(t)
	closed := make(chan error, 1)
	go func() { closed <- server.Close() }()
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("client read: %v, want close status 1000", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
}

func TestWSClientClose(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	ws, server := newWSClient(t, nil).pair(t, l, "mqtt")

	closed := make(chan error, 1)
	go func() { closed <- ws.Close(websocket.StatusNormalClosure, "") }()
	if n, err := server.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("server read after client close: %d, %v; want EOF", n, err)
	}
	if err := <-closed; err != nil {
		t.Errorf("client Close: %v", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("server Close after the client's: %v", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
}

// A peer that never answers the close handshake delays Close only briefly.
func TestWSCloseSilentPeer(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	client := newWSClient(t, nil)
	ws := client.mustDial(t, l, "mqtt") // never reads
	server := acceptNoCleanup(t, l)
	defer ws.CloseNow()
	start := time.Now()
	if err := server.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Close took %v", d)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
}

func TestWSReadDeadline(t *testing.T) {
	l := listen(t, listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	ws, server := newWSClient(t, nil).pair(t, l, "mqtt")

	// Expiring during the Read: a timeout, and the connection is gone.
	ctx := ctxTimeout(t)
	if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("read until the deadline: %v, want a timeout", err)
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Error("client read succeeded after the server's read deadline")
	}
	if err := server.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
}

// Closing the listener turns away an upgraded connection nobody accepted,
// keeps an accepted one working, and leaves no goroutine behind.
func TestWSCloseListener(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := listener.Listen(listener.Config{Kind: "ws", Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	client := newWSClient(t, nil)
	kept := client.mustDial(t, l, "mqtt")
	var server net.Conn
	select {
	case a := <-acceptAsync(l):
		if a.err != nil {
			t.Fatal(a.err)
		}
		server = a.c
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return")
	}
	// Upgraded; its handler now waits for an Accept that never comes.
	waiting := client.mustDial(t, l, "mqtt")
	checkStats(t, l, listener.Stats{Accepted: 1, Current: 2})

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := ctxTimeout(t)
	if _, _, err := waiting.Read(ctx); err == nil {
		t.Error("the connection nobody accepted is still open")
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 1})

	written := make(chan error, 1)
	go func() { written <- kept.Write(ctx, websocket.MessageBinary, []byte{0xc0, 0x00}) }()
	if _, err := io.ReadFull(server, make([]byte, 2)); err != nil {
		t.Fatalf("accepted connection after the listener closed: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte{0xd0, 0x00}); err != nil {
		t.Fatal(err)
	}
	if _, m, err := kept.Read(ctx); err != nil || !bytes.Equal(m, []byte{0xd0, 0x00}) {
		t.Fatalf("client read %x, %v", m, err)
	}

	closed := make(chan error, 1)
	go func() { closed <- server.Close() }()
	if _, _, err := kept.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("client read: %v, want close status 1000", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1})
	client.http.CloseIdleConnections()
	checkGoroutines(t, before)
}

// ALPN stays on HTTP/1.1 when certificates come from GetConfigForClient,
// as they do when the tls package reloads them.
func TestWSSGetConfigForClient(t *testing.T) {
	inner, pool := testCert(t)
	inner.NextProtos = []string{"h2", "http/1.1"}
	l := listen(t, listener.Config{Kind: "wss", Address: "127.0.0.1:0", TLS: &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil },
	}})
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN negotiated %q, want http/1.1", p)
	}
	if len(inner.NextProtos) != 2 {
		t.Errorf("the config from GetConfigForClient was changed: NextProtos %q", inner.NextProtos)
	}
	server := wsStream(t, l, newWSClient(t, pool))
	if _, ok := listener.TLSState(server); !ok {
		t.Error("TLSState not ok for a wss connection")
	}
}
