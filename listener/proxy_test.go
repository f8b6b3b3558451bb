package listener_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/avocet-mqtt/avocet/listener"
)

// proxyV2 builds a version 2 header: command 0 (LOCAL) or 1 (PROXY), the
// family and transport byte, and the address block.
func proxyV2(cmd, fam byte, block []byte) []byte {
	b := []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20 | cmd, fam, 0, 0}
	binary.BigEndian.PutUint16(b[14:], uint16(len(block)))
	return append(b, block...)
}

// inetBlock is a version 2 address block: source and destination address,
// then source and destination port.
func inetBlock(src, dst string, sport, dport uint16) []byte {
	var b []byte
	for _, s := range []string{src, dst} {
		ip := net.ParseIP(s)
		if ip4 := ip.To4(); ip4 != nil && !strings.Contains(s, ":") {
			ip = ip4
		}
		b = append(b, ip...)
	}
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// proxyDial connects to l and writes hdr first.
func proxyDial(t *testing.T, l listener.Listener, hdr []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if len(hdr) > 0 {
		if _, err := c.Write(hdr); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// expectClosed checks that the listener closes c within d, without sending
// anything.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	switch {
	case err == nil:
		t.Fatalf("read %d bytes, want the connection closed", n)
	case isTimeout(err):
		t.Fatalf("connection still open after %v", d)
	case !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset"):
		t.Fatalf("read error %v, want EOF or reset", err)
	}
}

// The header's source address becomes RemoteAddr, and the bytes sent with
// the header, in the same segment, are the stream's first.
func TestProxyHeaders(t *testing.T) {
	connect := []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}
	tests := []struct {
		name   string
		hdr    []byte
		remote string // "" for the client's own address
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n"), "192.0.2.1:56324"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 8080 1883\r\n"), "[2001:db8::1]:8080"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), ""},
		{"v2 TCP4", proxyV2(1, 0x11, inetBlock("192.0.2.1", "198.51.100.7", 56324, 1883)), "192.0.2.1:56324"},
		{"v2 TCP6", proxyV2(1, 0x21, inetBlock("2001:db8::1", "2001:db8::2", 8080, 1883)), "[2001:db8::1]:8080"},
		{"v2 TCP4 with TLVs", proxyV2(1, 0x11, append(inetBlock("203.0.113.9", "10.0.0.1", 1, 1883),
			0xea, 0x00, 0x05, 0x01, 'v', 'p', 'c', 'e')), "203.0.113.9:1"},
		{"v2 LOCAL", proxyV2(0, 0x00, nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true})
			client := proxyDial(t, l, append(append([]byte{}, tt.hdr...), connect[:5]...))
			server := accept(t, l)
			want := tt.remote
			if want == "" {
				want = client.LocalAddr().String()
			}
			if got := server.RemoteAddr().String(); got != want {
				t.Errorf("RemoteAddr %s, want %s", got, want)
			}
			if got := server.LocalAddr().String(); got != l.Addr().String() {
				t.Errorf("LocalAddr %s, want the socket's %s", got, l.Addr())
			}
			got := make([]byte, 5)
			if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, connect[:5]) {
				t.Fatalf("first read %x, %v; want %x", got, err, connect[:5])
			}
			roundTrip(t, client, server, connect[5:])
			checkStats(t, l, listener.Stats{Accepted: 1, Current: 1})
		})
	}
}

// A header split over several writes, each within the time allowed, is
// read whole.
func TestProxyHeaderInPieces(t *testing.T) {
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true})
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n"),
		proxyV2(1, 0x11, inetBlock("192.0.2.1", "198.51.100.7", 56324, 1883)),
	} {
		client := proxyDial(t, l, nil)
		pending := acceptAsync(l)
		for i := 0; i < len(hdr); i += 7 {
			if _, err := client.Write(hdr[i:min(i+7, len(hdr))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case a := <-pending:
			if a.err != nil {
				t.Fatal(a.err)
			}
			defer a.c.Close()
			if got := a.c.RemoteAddr().String(); got != "192.0.2.1:56324" {
				t.Errorf("RemoteAddr %s", got)
			}
			roundTrip(t, client, a.c, []byte{0xc0, 0x00})
		case <-time.After(waitTimeout):
			t.Fatal("Accept did not return")
		}
	}
}

// A connection without a valid header is closed at once, counted as
// rejected, and never returned by Accept.
func TestProxyHeaderRejected(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"MQTT without header", []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00}},
		{"TLS ClientHello without header", []byte{0x16, 0x03, 0x01, 0x00, 0xf4, 0x01}},
		{"v1 lower case", []byte("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n")},
		{"v1 bad address", []byte("PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n")},
		{"v1 TCP4 with IPv6", []byte("PROXY TCP4 ::1 ::1 1 2\r\n")},
		{"v1 port out of range", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 70000\r\n")},
		{"v1 LF without CR", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n")},
		{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("a", 120) + "\r\n")},
		{"v1 unknown protocol", []byte("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n")},
		{"v2 version 1", append(proxyV2(1, 0x11, inetBlock("192.0.2.1", "198.51.100.7", 1, 2))[:12], 0x11, 0x11, 0, 12)},
		{"v2 UDP", proxyV2(1, 0x12, inetBlock("192.0.2.1", "198.51.100.7", 1, 2))},
		{"v2 block too short", proxyV2(1, 0x21, inetBlock("192.0.2.1", "198.51.100.7", 1, 2))},
		{"v2 length over the bound", proxyV2(1, 0x11, make([]byte, 4096))[:16]},
	}
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true, ReadHeaderTimeout: time.Minute})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := proxyDial(t, l, tt.data)
			// Refused on the bytes themselves, long before the timeout.
			expectClosed(t, c, waitTimeout)
			checkStats(t, l, listener.Stats{Rejected: int64(i + 1)})
		})
	}
	// None of them reached Accept; a valid connection does.
	client := proxyDial(t, l, []byte("PROXY UNKNOWN\r\n"))
	server := accept(t, l)
	roundTrip(t, client, server, []byte{0xc0, 0x00})
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: int64(len(tests)), Current: 1})
}

// A peer that sends part of a header, or nothing, is closed when
// ReadHeaderTimeout passes, and meanwhile others are accepted; one that
// closes before its header is complete is rejected.
func TestProxyHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true, ReadHeaderTimeout: timeout})
	if got := l.Config().ReadHeaderTimeout; got != timeout {
		t.Fatalf("ReadHeaderTimeout %v", got)
	}
	start := time.Now()
	slow := proxyDial(t, l, []byte("PROXY TCP4 192.0.2.1"))
	silent := proxyDial(t, l, nil)

	client := proxyDial(t, l, []byte("PROXY TCP4 192.0.2.7 198.51.100.7 1 2\r\n"))
	server := accept(t, l)
	if server.RemoteAddr().String() != "192.0.2.7:1" {
		t.Errorf("RemoteAddr %v", server.RemoteAddr())
	}
	roundTrip(t, client, server, []byte{0xc0, 0x00})
	if d := time.Since(start); d >= timeout {
		t.Fatalf("the valid connection took %v, as long as the stalled ones' timeout", d)
	}

	expectClosed(t, slow, waitTimeout)
	expectClosed(t, silent, waitTimeout)
	if d := time.Since(start); d < timeout {
		t.Errorf("stalled connections closed after %v, before the timeout of %v", d, timeout)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 2, Current: 1})

	cut := proxyDial(t, l, proxyV2(1, 0x11, inetBlock("192.0.2.1", "198.51.100.7", 1, 2))[:20])
	_ = cut.Close()
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 3, Current: 1})
}

// The header comes in clear before the TLS handshake; the handshake then
// runs on the connection as usual.
func TestProxyTLS(t *testing.T) {
	serverTLS, pool := testCert(t)
	l := listen(t, listener.Config{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS, ProxyProtocol: true})
	raw := proxyDial(t, l, proxyV2(1, 0x21, inetBlock("2001:db8::5", "2001:db8::1", 4000, 8883)))
	client := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	server := accept(t, l)
	if got := server.RemoteAddr().String(); got != "[2001:db8::5]:4000" {
		t.Errorf("RemoteAddr %s", got)
	}
	roundTrip(t, client, server, []byte{0xc0, 0x00})
	state, ok := listener.TLSState(server)
	if !ok || !state.HandshakeComplete {
		t.Fatalf("TLSState = %+v, %v; want a complete handshake", state, ok)
	}

	// A TLS client that skips the header is refused before any handshake.
	bare := dialTLS(t, l, pool)
	if err := bare.Handshake(); err == nil {
		t.Fatal("handshake without a PROXY header succeeded")
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 1})
}

// wrapDial makes c's connections send hdr before anything else; TLS, for
// wss, runs over them after it.
func wrapDial(c *wsClient, hdr []byte) {
	tr := c.http.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write(hdr); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return conn, nil
	}
}

// For ws and wss the header comes before the HTTP request, and before the
// TLS handshake of wss.
func TestProxyWebSocket(t *testing.T) {
	serverTLS, pool := testCert(t)
	for _, kind := range []string{"ws", "wss"} {
		t.Run(kind, func(t *testing.T) {
			cfg := listener.Config{Kind: kind, Address: "127.0.0.1:0", ProxyProtocol: true}
			var clientPool *x509.CertPool
			if kind == "wss" {
				cfg.TLS, clientPool = serverTLS, pool
			}
			l := listen(t, cfg)
			client := newWSClient(t, clientPool)
			wrapDial(client, []byte("PROXY TCP4 192.0.2.44 198.51.100.7 5000 8080\r\n"))
			ws, server := client.pair(t, l, "mqtt")
			if got := server.RemoteAddr().String(); got != "192.0.2.44:5000" {
				t.Errorf("RemoteAddr %s", got)
			}
			if _, ok := listener.TLSState(server); ok != (kind == "wss") {
				t.Errorf("TLSState ok = %v for %s", ok, kind)
			}
			ctx := ctxTimeout(t)
			if err := ws.Write(ctx, websocket.MessageBinary, []byte{0xc0, 0x00}); err != nil {
				t.Fatal(err)
			}
			echo(t, server, []byte{0xc0, 0x00})
			if _, m, err := ws.Read(ctx); err != nil || !bytes.Equal(m, []byte{0xc0, 0x00}) {
				t.Fatalf("client read %x, %v", m, err)
			}

			// A client without the header gets no HTTP answer at all.
			plain := newWSClient(t, clientPool)
			if _, _, err := plain.dialPath(t, l, "/mqtt", true, "mqtt"); err == nil {
				t.Fatal("WebSocket without a PROXY header accepted")
			}
			checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 1, Current: 1})
		})
	}
}

// With MaxConnections, a connection holds its slot while its header is
// read, so that peers that never send one cannot exceed the cap.
func TestProxyMaxConnections(t *testing.T) {
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true, MaxConnections: 1})
	silent := proxyDial(t, l, nil)
	checkStats(t, l, listener.Stats{Current: 1})
	over := proxyDial(t, l, []byte("PROXY UNKNOWN\r\n"))
	expectClosed(t, over, waitTimeout)
	checkStats(t, l, listener.Stats{Rejected: 1, Current: 1})

	_ = silent.Close()
	checkStats(t, l, listener.Stats{Rejected: 2})
	client := proxyDial(t, l, []byte("PROXY UNKNOWN\r\n"))
	server := acceptNoCleanup(t, l)
	roundTrip(t, client, server, []byte{0xc0, 0x00})
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 2, Current: 1})
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 2})
}

// Close turns away connections still sending their header, and those whose
// header is read but that Accept has not taken, and stops every goroutine.
func TestProxyClose(t *testing.T) {
	serverTLS, _ := testCert(t)
	for _, cfg := range []listener.Config{
		{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true},
		{Kind: "tls", Address: "127.0.0.1:0", TLS: serverTLS, ProxyProtocol: true},
		{Kind: "ws", Address: "127.0.0.1:0", ProxyProtocol: true},
		{Kind: "wss", Address: "127.0.0.1:0", TLS: serverTLS, ProxyProtocol: true},
	} {
		t.Run(cfg.Kind, func(t *testing.T) {
			before := runtime.NumGoroutine()
			l, err := listener.Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Config().ReadHeaderTimeout; got != listener.DefaultReadHeaderTimeout {
				t.Errorf("ReadHeaderTimeout %v, want the default", got)
			}
			partial := proxyDial(t, l, []byte("PROXY TCP4 "))
			complete := proxyDial(t, l, []byte("PROXY UNKNOWN\r\n"))
			if cfg.Kind == "tcp" || cfg.Kind == "tls" {
				checkStats(t, l, listener.Stats{Current: 2})
			}
			pending := acceptAsync(l)
			if cfg.Kind == "tcp" || cfg.Kind == "tls" {
				a := <-pending
				if a.err != nil {
					t.Fatal(a.err)
				}
				defer a.c.Close()
				// A third, complete, that nobody accepts. Whether Close
				// finds its header read or still being read, it is turned
				// away; the pause makes the first more likely.
				proxyDial(t, l, []byte("PROXY UNKNOWN\r\n"))
				time.Sleep(50 * time.Millisecond)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			expectClosed(t, partial, waitTimeout)
			if cfg.Kind == "ws" || cfg.Kind == "wss" {
				expectClosed(t, complete, waitTimeout)
				if a := <-pending; !errors.Is(a.err, net.ErrClosed) {
					t.Errorf("Accept after Close: %v", a.err)
				}
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
			}
			if err := l.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v, want net.ErrClosed", err)
			}
			if cfg.Kind == "tcp" || cfg.Kind == "tls" {
				checkStats(t, l, listener.Stats{Accepted: 1, Rejected: 2, Current: 1})
			}
			_ = partial.Close()
			_ = complete.Close()
			checkGoroutines(t, before)
		})
	}
}

// ReadHeaderTimeout is allowed on tcp and tls with ProxyProtocol only.
func TestProxyConfig(t *testing.T) {
	if _, err := listener.Listen(listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ReadHeaderTimeout: time.Second}); err == nil {
		t.Error("read header timeout accepted on tcp without PROXY protocol")
	}
	l := listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true, ReadHeaderTimeout: time.Second})
	want := listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true, ReadHeaderTimeout: time.Second}
	if got := l.Config(); got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	l = listen(t, listener.Config{Kind: "tcp", Address: "127.0.0.1:0", ProxyProtocol: true})
	if got := l.Config().ReadHeaderTimeout; got != listener.DefaultReadHeaderTimeout {
		t.Errorf("ReadHeaderTimeout %v, want %v", got, listener.DefaultReadHeaderTimeout)
	}
}
