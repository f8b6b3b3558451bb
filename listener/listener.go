package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Listener kinds, the values of Config.Kind.
const (
	KindTCP = "tcp" // MQTT over TCP
	KindTLS = "tls" // MQTT over TLS
	KindWS  = "ws"  // MQTT over WebSocket
	KindWSS = "wss" // MQTT over WebSocket over TLS
)

// Defaults applied by Listen to a zero Config field.
const (
	DefaultPath              = "/mqtt"
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Config describes one listener. Fields that do not apply to the Kind must
// be left zero; Listen reports them as errors rather than ignoring them.
type Config struct {
	// Name identifies the listener in errors and logs. Optional.
	Name string
	// Kind is one of "tcp", "tls", "ws" or "wss".
	Kind string
	// Address is the host:port to bind, e.g. "0.0.0.0:1883". A port of 0
	// picks a free one; Listener.Addr reports it.
	Address string
	// Path is the HTTP path WebSocket clients connect to, for ws and wss
	// only. It must start with "/". Default "/mqtt".
	Path string
	// TLS is the server's TLS configuration, required for tls and wss and
	// provided by the caller. The listener does not modify it; wss uses a
	// clone restricted to HTTP/1.1. As with any *tls.Config, change
	// certificates through GetCertificate or GetConfigForClient, never by
	// editing it after Listen.
	TLS *tls.Config
	// MaxConnections caps the connections open at once (see Stats.Current);
	// 0 means unlimited. A connection beyond the cap is closed at once (a
	// WebSocket upgrade gets 503 Service Unavailable) and counted in
	// Stats.Rejected.
	MaxConnections int
	// ReadHeaderTimeout bounds how long a ws or wss client may take to send
	// its upgrade request, including the TLS handshake for wss, and how long
	// a peer may take to send its PROXY header when ProxyProtocol is set.
	// Default 10s; only ws, wss and listeners with ProxyProtocol have one.
	ReadHeaderTimeout time.Duration
	// ProxyProtocol makes every connection start with a PROXY protocol
	// header, version 1 (text) or 2 (binary), as load balancers such as
	// HAProxy, AWS NLB and nginx send it: the connection's RemoteAddr is
	// then the client's address the header gives (the socket's for
	// "PROXY UNKNOWN" and for version 2 LOCAL); LocalAddr stays the
	// socket's. The header comes first, in clear, before the TLS handshake
	// of tls and wss and before the HTTP request of ws and wss. It is read
	// in a goroutine of its own per connection, within ReadHeaderTimeout
	// and at most 107 bytes (version 1) or 2048 bytes (version 2, TLVs
	// included, which are skipped), before Accept returns the connection or
	// the HTTP server reads it; a connection whose header is missing,
	// invalid or late is closed and counted in Stats.Rejected. For tcp and
	// tls, a connection holds its MaxConnections slot while its header is
	// read. Any kind.
	ProxyProtocol bool
}

// Stats is a snapshot of a listener's counters.
type Stats struct {
	// Accepted counts connections returned by Accept.
	Accepted int64
	// Rejected counts connections turned away: over MaxConnections,
	// WebSocket upgrades of Config.Path that failed (a bad request or no
	// acceptable subprotocol), connections without a valid PROXY header
	// when Config.ProxyProtocol is set, and connections still waiting for
	// Accept when the listener closed. Requests for other paths are not
	// counted, nor are failed TLS handshakes: for tls they surface as a
	// Read error on an accepted connection, and for wss they happen before
	// any request.
	Rejected int64
	// Current counts connections holding a slot toward MaxConnections:
	// those returned by Accept and not yet closed, plus WebSocket upgrades
	// in progress and, for tcp and tls, PROXY headers being read.
	Current int64
}

// Listener yields client connections of one kind on one address.
//
// Accept and Close may be called from any goroutine, concurrently with each
// other and with Addr, Config and Stats, which never block.
type Listener interface {
	// Accept waits for the next client connection and returns it. The
	// caller owns the connection and must Close it; closing it releases its
	// slot toward Config.MaxConnections. Connections beyond the cap are
	// closed inside the listener and never returned.
	//
	// After Close, Accept returns an error for which
	// errors.Is(err, net.ErrClosed) holds. Any other error is transient
	// (for example the process is out of file descriptors): the caller
	// should pause briefly and call Accept again.
	Accept() (net.Conn, error)

	// Close stops accepting: it unbinds the address, unblocks Accept, and
	// turns away connections still in their handshake. It waits for the
	// listener's own goroutines to finish. It does not close connections
	// already returned by Accept; the broker owns those. Calls after the
	// first return an error wrapping net.ErrClosed.
	Close() error

	// Addr returns the bound address, useful when Config.Address has port 0.
	Addr() net.Addr

	// Config returns the listener's configuration with defaults filled in.
	Config() Config

	// Stats returns a snapshot of the listener's counters.
	Stats() Stats
}

// Listen validates cfg, fills in its defaults, binds the address and returns
// a listener ready for Accept. Errors name the listener and the problem.
func Listen(cfg Config) (Listener, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, cfg.errorf("%w", err)
	}
	switch cfg.Kind {
	case KindTCP, KindTLS:
		return newStreamListener(cfg, ln), nil
	default:
		return newWSListener(cfg, ln), nil
	}
}

// withDefaults checks cfg and returns it with zero fields defaulted.
func withDefaults(cfg Config) (Config, error) {
	var web bool
	switch cfg.Kind {
	case KindTCP, KindTLS:
	case KindWS, KindWSS:
		web = true
	case "":
		return cfg, cfg.errorf("kind is empty (want tcp, tls, ws or wss)")
	default:
		return cfg, cfg.errorf("unknown kind %q (want tcp, tls, ws or wss)", cfg.Kind)
	}
	secure := cfg.Kind == KindTLS || cfg.Kind == KindWSS

	switch {
	case cfg.Address == "":
		return cfg, cfg.errorf("address is empty")
	case cfg.MaxConnections < 0:
		return cfg, cfg.errorf("max connections %d is negative", cfg.MaxConnections)
	case secure && cfg.TLS == nil:
		return cfg, cfg.errorf("kind %s requires a TLS config", cfg.Kind)
	case secure && len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil:
		return cfg, cfg.errorf("TLS config has no certificate")
	case !secure && cfg.TLS != nil:
		return cfg, cfg.errorf("TLS config given for plain kind %s (use tls or wss)", cfg.Kind)
	case !web && cfg.Path != "":
		return cfg, cfg.errorf("path %q given for kind %s (only ws and wss have a path)", cfg.Path, cfg.Kind)
	case !web && !cfg.ProxyProtocol && cfg.ReadHeaderTimeout != 0:
		return cfg, cfg.errorf("read header timeout given for kind %s (only ws, wss and PROXY protocol listeners have one)", cfg.Kind)
	case cfg.ReadHeaderTimeout < 0:
		return cfg, cfg.errorf("read header timeout %v is negative", cfg.ReadHeaderTimeout)
	case web && cfg.Path != "" && !strings.HasPrefix(cfg.Path, "/"):
		return cfg, cfg.errorf("path %q does not start with /", cfg.Path)
	}

	if web && cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if (web || cfg.ProxyProtocol) && cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	return cfg, nil
}

// errorf returns an error prefixed with the listener's identity.
func (cfg Config) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{cfg.label()}, args...)...)
}

// label names the listener for errors and logs: its name when it has one,
// its kind and its address.
func (cfg Config) label() string {
	parts := []string{"listener"}
	if cfg.Name != "" {
		parts = append(parts, strconv.Quote(cfg.Name))
	}
	for _, p := range []string{cfg.Kind, cfg.Address} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// TLSState returns the TLS state of a connection accepted by a tls or wss
// listener, with ok false for any other connection. The state includes the
// client's verified certificates. For tls, the handshake runs on the
// connection's first Read or Write, so call it after reading CONNECT; before
// that HandshakeComplete is false.
func TLSState(c net.Conn) (state tls.ConnectionState, ok bool) {
	var tc *tls.Conn
	switch v := c.(type) {
	case *conn:
		tc = v.tls
	case *wsConn:
		tc = v.tls
	case *tls.Conn:
		tc = v
	}
	if tc == nil {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// counters are a listener's statistics, updated atomically by its accepting
// goroutines and by the Close of its connections.
type counters struct {
	max      int64 // Config.MaxConnections; 0 means unlimited. Read-only.
	accepted atomic.Int64
	rejected atomic.Int64
	current  atomic.Int64
}

// acquire takes a connection slot, or reports false when all are taken.
func (s *counters) acquire() bool {
	for {
		n := s.current.Load()
		if s.max > 0 && n >= s.max {
			return false
		}
		if s.current.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a slot taken by acquire.
func (s *counters) release() { s.current.Add(-1) }

func (s *counters) snapshot() Stats {
	return Stats{
		Accepted: s.accepted.Load(),
		Rejected: s.rejected.Load(),
		Current:  s.current.Load(),
	}
}

// errListenerClosed is what Accept and a repeated Close return once the
// listener is closed.
func errListenerClosed(cfg Config) error {
	return cfg.errorf("%w", net.ErrClosed)
}

// isClosed reports whether ch, a channel closed once to signal shutdown, is
// closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// ignoreClosed maps an error wrapping net.ErrClosed to nil.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
