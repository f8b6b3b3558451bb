package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/store"
)

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 10 * time.Second

// testLogger discards logs unless the test runs verbosely.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is a broker serving MQTT on a loopback port and an admin server in
// front of it, for one test.
type env struct {
	b     *broker.Broker
	mqtt  string // host:port of the broker
	srv   *Server
	base  string // http://host:port of the admin server
	db    *store.DB
	token string // sent by the request helpers when set
}

// envOptions change what newEnv starts.
type envOptions struct {
	store  bool       // a BuntDB store under t.TempDir
	logs   *logBuffer // receives the admin server's log when set
	broker func(*broker.Options)
	admin  func(*Options)
}

// logBuffer collects log lines for a test to look for.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder // guarded by mu
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newEnv starts a broker and an admin server, and stops both when t ends.
func newEnv(t *testing.T, eo envOptions) *env {
	t.Helper()
	e := &env{}
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.Logger = testLogger(t)
	opts.Version = "test"
	if eo.store {
		db, err := store.Open(store.Options{Dir: t.TempDir(), Fsync: store.Never, Logger: opts.Logger})
		if err != nil {
			t.Fatal(err)
		}
		e.db = db
		opts.SessionStore = db
	}
	if eo.broker != nil {
		eo.broker(&opts)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.mqtt = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := b.Serve(ln, "tcp"); err != nil {
			t.Errorf("broker Serve: %v", err)
		}
	}()

	ao := Options{Address: "127.0.0.1:0", Broker: b, Logger: opts.Logger, Version: "1.2.3", NodeName: "avocet@test"}
	if eo.logs != nil {
		ao.Logger = slog.New(slog.NewTextHandler(eo.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if e.db != nil {
		ao.Store = e.db
	}
	if eo.admin != nil {
		eo.admin(&ao)
	}
	e.token = ao.Token
	srv, err := New(ao)
	if err != nil {
		t.Fatal(err)
	}
	srv.totals.ttl = -1 // every request walks the sessions: no stale figures in tests
	e.srv = srv
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + hl.Addr().String()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := srv.Serve(hl); err != nil {
			t.Errorf("admin Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("admin Shutdown: %v", err)
		}
		<-httpDone
		_ = ln.Close()
		<-served
		if err := b.Close(ctx); err != nil {
			t.Errorf("broker Close: %v", err)
		}
		if e.db != nil {
			if err := e.db.Close(); err != nil {
				t.Errorf("store Close: %v", err)
			}
		}
	})
	return e
}

// do sends a request to the admin server and returns the status and body.
func (e *env) do(t testing.TB, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res.StatusCode, body
}

// getJSON GETs path, requires status want and decodes the body into v.
func (e *env) call(t testing.TB, method, path string, want int, v any) {
	t.Helper()
	code, body := e.do(t, method, path)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: %v; body %s", method, path, err, body)
		}
	}
}

// wantError checks an error answer: its status and that its JSON error
// message contains part.
func (e *env) wantError(t testing.TB, method, path string, want int, part string) {
	t.Helper()
	code, body := e.do(t, method, path)
	var ae apiError
	if code != want || json.Unmarshal(body, &ae) != nil || !strings.Contains(ae.Error, part) {
		t.Fatalf("%s %s: %d %s, want %d and an error containing %q", method, path, code, body, want, part)
	}
}

func (e *env) status(t testing.TB) Status {
	t.Helper()
	var st Status
	e.call(t, "GET", "/api/v1/status", http.StatusOK, &st)
	return st
}

// eventually polls cond until it holds or the time runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle polls check until it reports nothing wrong, and fails the test
// with its last report when the time runs out.
func settle(t testing.TB, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		wrong := check()
		if wrong == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, wrong)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// esc escapes a path segment, as clients must for client ids and listener
// names that hold '/'.
func esc(s string) string { return url.PathEscape(s) }

// client is an MQTT client on the project's codec. A goroutine reads its
// packets into a channel, acknowledging QoS 1 PUBLISH on the way.
type client struct {
	t       testing.TB
	id      string
	v       mqtt.Version
	nc      net.Conn
	wmu     sync.Mutex // serializes writes
	packets chan mqtt.Packet
	nextID  uint16 // guarded by wmu
	closed  chan struct{}
}

// dial connects client id with protocol version v; mod may change the CONNECT.
// It fails the test unless the CONNACK accepts.
func dial(t testing.TB, addr string, v mqtt.Version, id string, mod func(*mqtt.Connect)) *client {
	t.Helper()
	c, ack := dialAck(t, addr, v, id, mod)
	if ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNECT %q refused: %v", id, ack.ReasonCode)
	}
	return c
}

// dialAck connects and returns the CONNACK, whatever it says.
func dialAck(t testing.TB, addr string, v mqtt.Version, id string, mod func(*mqtt.Connect)) (*client, *mqtt.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, id: id, v: v, nc: nc, packets: make(chan mqtt.Packet, 4096), closed: make(chan struct{})}
	t.Cleanup(func() { _ = nc.Close(); <-c.closed })
	cp := &mqtt.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 60}
	switch v {
	case mqtt.Version31:
		cp.ProtocolName = "MQIsdp"
	default:
		cp.ProtocolName = "MQTT"
	}
	if mod != nil {
		mod(cp)
	}
	c.send(cp)
	go c.readLoop()
	p := c.next()
	ack, ok := p.(*mqtt.Connack)
	if !ok {
		t.Fatalf("CONNECT %q: got %T, want CONNACK", id, p)
	}
	return c, ack
}

// readLoop decodes packets until the connection ends. The Reader reuses its
// structs, so each packet is encoded again and decoded into one of its own.
func (c *client) readLoop() {
	defer close(c.closed)
	defer close(c.packets)
	r := mqtt.NewReader(bufio.NewReader(c.nc))
	r.Version = c.v
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return
		}
		buf, err := p.Encode(nil, c.v)
		if err != nil {
			c.t.Errorf("client %s: re-encode %v: %v", c.id, p.Type(), err)
			return
		}
		own, _, err := mqtt.Decode(buf, c.v, 0)
		if err != nil {
			c.t.Errorf("client %s: re-decode %v: %v", c.id, p.Type(), err)
			return
		}
		if pub, ok := own.(*mqtt.Publish); ok && pub.QoS == mqtt.AtLeastOnce {
			c.send(&mqtt.Puback{PacketID: pub.PacketID})
		}
		c.packets <- own
	}
}

// send writes one packet.
func (c *client) send(p mqtt.Packet) {
	c.t.Helper()
	buf, err := p.Encode(nil, c.v)
	if err != nil {
		c.t.Errorf("client %s: encode %v: %v", c.id, p.Type(), err)
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(buf); err != nil && !errors.Is(err, net.ErrClosed) {
		c.t.Logf("client %s: write %v: %v", c.id, p.Type(), err)
	}
}

func (c *client) packetID() uint16 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nextID++
	return c.nextID
}

// next returns the next packet; nil when the connection ended.
func (c *client) next() mqtt.Packet {
	c.t.Helper()
	select {
	case p := <-c.packets:
		return p
	case <-time.After(waitTimeout):
		c.t.Fatalf("client %s: no packet within %v", c.id, waitTimeout)
		return nil
	}
}

// expect skips packets until one of type want arrives, and returns it.
func (c *client) expect(want mqtt.PacketType) mqtt.Packet {
	c.t.Helper()
	for {
		p := c.next()
		if p == nil {
			c.t.Fatalf("client %s: connection closed while waiting for %v", c.id, want)
		}
		if p.Type() == want {
			return p
		}
	}
}

// subscribe subscribes to filters at QoS 1 and waits for the SUBACK.
func (c *client) subscribe(filters ...string) {
	c.t.Helper()
	sp := &mqtt.Subscribe{PacketID: c.packetID()}
	for _, f := range filters {
		sp.Subscriptions = append(sp.Subscriptions, mqtt.Subscription{Filter: f, QoS: mqtt.AtLeastOnce})
	}
	c.subscribeWith(sp)
}

// subscribeWith sends sp and waits for its SUBACK, which must grant every filter.
func (c *client) subscribeWith(sp *mqtt.Subscribe) {
	c.t.Helper()
	c.send(sp)
	ack := c.expect(mqtt.SUBACK).(*mqtt.Suback)
	for i, rc := range ack.ReasonCodes {
		if rc.IsError() {
			c.t.Fatalf("client %s: SUBSCRIBE %q refused: %v", c.id, sp.Subscriptions[i].Filter, rc)
		}
	}
}

// publish publishes at QoS 1 and waits for the PUBACK, so that the broker
// has routed the message when it returns.
func (c *client) publish(topic string, payload []byte, retain bool) {
	c.t.Helper()
	c.publishWith(&mqtt.Publish{Topic: topic, Payload: payload, Retain: retain})
}

// publishWith sends p at QoS 1 (its properties kept) and waits for the PUBACK.
func (c *client) publishWith(p *mqtt.Publish) {
	c.t.Helper()
	p.QoS = mqtt.AtLeastOnce
	p.PacketID = c.packetID()
	c.send(p)
	for {
		ack, ok := c.expect(mqtt.PUBACK).(*mqtt.Puback)
		if ok && ack.PacketID == p.PacketID {
			if ack.ReasonCode.IsError() {
				c.t.Fatalf("client %s: PUBLISH %q refused: %v", c.id, p.Topic, ack.ReasonCode)
			}
			return
		}
	}
}

// disconnect sends DISCONNECT and waits for the broker to close the connection.
func (c *client) disconnect() {
	c.t.Helper()
	c.send(&mqtt.Disconnect{})
	select {
	case <-c.closed:
	case <-time.After(waitTimeout):
		c.t.Fatalf("client %s: connection not closed after DISCONNECT", c.id)
	}
}

// persistent sets a 5.0 session expiry, so that the session outlives its connection.
func persistent(cp *mqtt.Connect) {
	cp.CleanStart = false
	cp.Properties.SessionExpiry = 3600
	cp.Properties.Set(mqtt.PropSessionExpiry)
}

// fakeListeners is a Listeners that records the calls.
type fakeListeners struct {
	mu    sync.Mutex
	list  []ListenerInfo // guarded by mu
	calls []string       // "stop name", "start name"; guarded by mu
	fail  error          // returned by every Stop and Start when set
}

func (f *fakeListeners) List() []ListenerInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ListenerInfo(nil), f.list...)
}

func (f *fakeListeners) Stop(name string) error  { return f.set(name, false) }
func (f *fakeListeners) Start(name string) error { return f.set(name, true) }

func (f *fakeListeners) set(name string, running bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	verb := "stop"
	if running {
		verb = "start"
	}
	f.calls = append(f.calls, verb+" "+name)
	if f.fail != nil {
		return f.fail
	}
	for i := range f.list {
		if f.list[i].Name == name {
			f.list[i].Running = running
			return nil
		}
	}
	return fmt.Errorf("listener %q: %w", name, ErrNotFound)
}

func (f *fakeListeners) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
