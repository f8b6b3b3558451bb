package listener_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/listener"
)

func TestListenValidation(t *testing.T) {
	serverTLS, _ := testCert(t)
	noCert := &tls.Config{}
	tests := []struct {
		name string
		cfg  listener.Config
		want string // the error, after the listener's label
	}{
		{"empty kind", listener.Config{Name: "a", Address: "127.0.0.1:0"},
			`listener "a" 127.0.0.1:0: kind is empty`},
		{"unknown kind", listener.Config{Name: "a", Kind: "quic", Address: "127.0.0.1:0"},
			`listener "a" quic 127.0.0.1:0: unknown kind "quic" (want tcp, tls, ws or wss)`},
		{"upper case kind", listener.Config{Kind: "TCP", Address: "127.0.0.1:0"},
			`listener TCP 127.0.0.1:0: unknown kind "TCP"`},
		{"empty address", listener.Config{Name: "a", Kind: "tcp"},
			`listener "a" tcp: address is empty`},
		{"tls without TLS config", listener.Config{Name: "secure", Kind: "tls", Address: "127.0.0.1:0"},
			`listener "secure" tls 127.0.0.1:0: kind tls requires a TLS config`},
		{"wss without TLS config", listener.Config{Kind: "wss", Address: "127.0.0.1:0"},
			`listener wss 127.0.0.1:0: kind wss requires a TLS config`},
		{"TLS config without certificate", listener.Config{Kind: "tls", Address: "127.0.0.1:0", TLS: noCert},
			`listener tls 127.0.0.1:0: TLS config has no certificate`},
		{"TLS config on tcp", listener.Config{Kind: "tcp", Address: "127.0.0.1:0", TLS: serverTLS},
			`listener tcp 127.0.0.1:0: TLS config given for plain kind tcp`},
		{"TLS config on ws", listener.Config{Kind: "ws", Address: "127.0.0.1:0", TLS: serverTLS},
			`listener ws 127.0.0.1:0: TLS config given for plain kind ws`},
		{"path on tcp", listener.Config{Kind: "tcp", Address: "127.0.0.1:0", Path: "/mqtt"},
			`listener tcp 127.0.0.1:0: path "/mqtt" given for kind tcp`},
		{"read header timeout on tls", listener.Config{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS, ReadHeaderTimeout: time.Second},
			`listener tls 127.0.0.1:0: read header timeout given for kind tls`},
		{"relative path", listener.Config{Kind: "ws", Address: "127.0.0.1:0", Path: "mqtt"},
			`listener ws 127.0.0.1:0: path "mqtt" does not start with /`},
		{"negative max connections", listener.Config{Kind: "tcp", Address: "127.0.0.1:0", MaxConnections: -1},
			`listener tcp 127.0.0.1:0: max connections -1 is negative`},
		{"negative read header timeout", listener.Config{Kind: "ws", Address: "127.0.0.1:0", ReadHeaderTimeout: -time.Second},
			`listener ws 127.0.0.1:0: read header timeout -1s is negative`},
		{"bad address", listener.Config{Kind: "tcp", Address: "127.0.0.1:99999"},
			`listener tcp 127.0.0.1:99999: listen tcp: address 99999: invalid port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := listener.Listen(tt.cfg)
			if err == nil {
				_ = l.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q\nwant prefix %q", err, tt.want)
			}
		})
	}
}

func TestListenAddressInUse(t *testing.T) {
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0"})
	addr := l.Addr().String()
	_, err := listener.Listen(listener.Config{Name: "second", Kind: "ws", Address: addr})
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.HasPrefix(err.Error(), `listener "second" ws `+addr+": ") {
		t.Fatalf("error %v, want a *net.OpError naming the listener", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	ws := listen(t, listener.Config{Name: "web", Kind: "ws", Address: "127.0.0.1:0", MaxConnections: 7})
	want := listener.Config{Name: "web", Kind: "ws", Address: "127.0.0.1:0", Path: "/mqtt", MaxConnections: 7, ReadHeaderTimeout: 10 * time.Second}
	if got := ws.Config(); got != want {
		t.Errorf("ws Config() = %+v, want %+v", got, want)
	}
	tcp := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0"})
	if got, want := tcp.Config(), (listener.Config{Kind: "tcp", Address: "127.0.0.1:0"}); got != want {
		t.Errorf("tcp Config() = %+v, want %+v", got, want)
	}
	if a, ok := tcp.Addr().(*net.TCPAddr); !ok || a.Port == 0 || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("Addr() = %v, want 127.0.0.1 with the bound port", tcp.Addr())
	}
}

// echo reads len(want) bytes from server, checks them and writes them back.
func echo(t *testing.T, server net.Conn, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("server read %x, want %x", got, want)
	}
	if _, err := server.Write(got); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

// roundTrip writes p from the client, has the server echo it, and checks
// that the client reads it back. The client writes from another goroutine,
// since its first write may wait for a TLS handshake the server runs on its
// first read.
func roundTrip(t *testing.T, client, server net.Conn, p []byte) {
	t.Helper()
	written := make(chan error, 1)
	go func() {
		_, err := client.Write(p)
		written <- err
	}()
	echo(t, server, p)
	if err := <-written; err != nil {
		t.Fatalf("client write: %v", err)
	}
	got := make([]byte, len(p))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("client read %x, want %x", got, p)
	}
}

func TestTCPEcho(t *testing.T) {
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0"})
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := accept(t, l)
	if server.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("server RemoteAddr %v, want %v", server.RemoteAddr(), client.LocalAddr())
	}
	roundTrip(t, client, server, []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})
	if _, ok := listener.TLSState(server); ok {
		t.Error("TLSState ok for a tcp connection")
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Current: 1})
}

func TestTCPMaxConnections(t *testing.T) {
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", MaxConnections: 1})
	first, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	server := accept(t, l)

	// The second connection is closed by the listener inside Accept and
	// never returned.
	pending := acceptAsync(l)
	second, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("over the limit: read %d bytes, want the connection closed", n)
	} else if errors.Is(err, net.ErrClosed) || isTimeout(err) {
		t.Fatalf("over the limit: read error %v, want EOF or reset", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 1})

	// Closing the accepted connection frees its slot, once.
	if err := server.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := server.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 0})

	third, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	select {
	case a := <-pending:
		if a.err != nil {
			t.Fatalf("Accept: %v", a.err)
		}
		defer a.c.Close()
		roundTrip(t, third, a.c, []byte{0xc0, 0x00})
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return the connection after a slot was freed")
	}
	checkStats(t, l, listener.Stats{Accepted: 2, Rejected: 1, Current: 1})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialTLS connects a TLS client that trusts pool; the handshake runs on its
// first write.
func dialTLS(t *testing.T, l listener.Listener, pool *x509.CertPool) *tls.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTLSEcho(t *testing.T) {
	serverTLS, pool := testCert(t)
	l := listen(t, listener.Config{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS})
	client := dialTLS(t, l, pool)
	server := accept(t, l)
	roundTrip(t, client, server, []byte{0xc0, 0x00})

	state, ok := listener.TLSState(server)
	if !ok || !state.HandshakeComplete {
		t.Fatalf("TLSState = %+v, %v; want a complete handshake", state, ok)
	}
	if state.Version != client.ConnectionState().Version {
		t.Errorf("server TLS version %x, client %x", state.Version, client.ConnectionState().Version)
	}
}

// A client that never finishes its TLS handshake holds up only the
// goroutine reading its connection, not Accept.
func TestTLSStalledHandshakeDoesNotBlockAccept(t *testing.T) {
	serverTLS, pool := testCert(t)
	l := listen(t, listener.Config{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS})

	stalled, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalledServer := accept(t, l)

	client := dialTLS(t, l, pool)
	server := accept(t, l)
	roundTrip(t, client, server, []byte{0xc0, 0x00})

	// The broker's CONNECT timeout is a read deadline; it covers the
	// handshake.
	if err := stalledServer.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := stalledServer.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("stalled handshake: read error %v, want a timeout", err)
	}
	if state, _ := listener.TLSState(stalledServer); state.HandshakeComplete {
		t.Error("stalled handshake reported complete")
	}
}

func TestCloseUnblocksAccept(t *testing.T) {
	serverTLS, _ := testCert(t)
	for _, cfg := range []listener.Config{
		{Kind: "tcp", Address: "127.0.0.1:0"},
		{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS},
		{Kind: "ws", Address: "127.0.0.1:0"},
		{Kind: "wss", Address: "127.0.0.1:0", TLS: serverTLS},
	} {
		t.Run(cfg.Kind, func(t *testing.T) {
			before := runtime.NumGoroutine()
			l, err := listener.Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pending := acceptAsync(l)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case a := <-pending:
				if !errors.Is(a.err, net.ErrClosed) {
					t.Fatalf("Accept after Close: %v, %v; want net.ErrClosed", a.c, a.err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("Close did not unblock Accept")
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
			}
			if err := l.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v, want net.ErrClosed", err)
			}
			if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
				c.Close()
				t.Error("address still bound after Close")
			}
			checkGoroutines(t, before)
		})
	}
}

func TestCloseKeepsAcceptedConns(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := listener.Listen(listener.Config{Kind: "tcp", Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := accept(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, client, server, []byte{0xc0, 0x00})
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1})
	checkGoroutines(t, before)
}
