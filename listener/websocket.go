package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// subprotocols are the WebSocket subprotocols accepted, in order of
// preference: "mqtt" is MQTT 3.1.1's and 5.0's [MQTT-6.0.0-4], "mqttv3.1"
// is what MQTT 3.1 clients offer.
var subprotocols = []string{"mqtt", "mqttv3.1"}

// rawConnKey is the request context key of the HTTP server's net.Conn.
type rawConnKey struct{}

// wsListener serves the ws and wss kinds. An http.Server runs on the socket;
// its handler goroutines upgrade requests for cfg.Path and hand each
// WebSocket to Accept over an unbuffered channel. A handler returns once
// its connection is taken (the hijacked connection does not depend on the
// handler or the request), so no goroutine stays behind per connection.
type wsListener struct {
	cfg   Config // read-only
	addr  net.Addr
	srv   *http.Server
	stats counters

	conns     chan *wsConn  // handoff from handlers to Accept
	closed    chan struct{} // closed by the first Close
	serveDone chan struct{} // closed when srv.Serve has returned
	serveErr  error         // what srv.Serve returned; read after serveDone

	mu       sync.Mutex     // guards closing and Add on handlers
	closing  bool           // set by Close; handlers no longer start
	handlers sync.WaitGroup // running handlers, waited for by Close
}

func newWSListener(cfg Config, ln net.Listener) *wsListener {
	l := &wsListener{
		cfg:       cfg,
		addr:      ln.Addr(),
		stats:     counters{max: int64(cfg.MaxConnections)},
		conns:     make(chan *wsConn),
		closed:    make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	if cfg.ProxyProtocol {
		// The header precedes the TLS handshake and the HTTP request.
		ln = newProxyListener(cfg, ln, &l.stats, false)
	}
	if cfg.Kind == KindWSS {
		// The upgrade needs HTTP/1.1: coder/websocket does not speak
		// WebSocket over HTTP/2 (RFC 8441), so ALPN must never pick h2.
		ln = tls.NewListener(ln, http1Only(cfg.TLS))
	}
	logAttrs := []slog.Attr{
		slog.String("listener", cfg.Name),
		slog.String("kind", cfg.Kind),
		slog.String("address", cfg.Address),
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.serveHTTP),
		// Bounds the request line and headers and, for wss, the TLS
		// handshake. Once upgraded, the connection has no deadline
		// until the broker sets one.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// An empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// The server's own messages (failed TLS handshakes, accept
		// retries) are mostly scanners and dropped clients.
		ErrorLog: slog.NewLogLogger(slog.Default().Handler().WithAttrs(logAttrs), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	// One request per connection: this is no general HTTP server, and a
	// refused client should not hold a connection open.
	l.srv.SetKeepAlivesEnabled(false)
	go func() {
		defer close(l.serveDone)
		l.serveErr = l.srv.Serve(ln)
	}()
	return l
}

// Accept returns the next upgraded WebSocket connection.
func (l *wsListener) Accept() (net.Conn, error) {
	if isClosed(l.closed) {
		return nil, errListenerClosed(l.cfg)
	}
	select {
	case c := <-l.conns:
		l.stats.accepted.Add(1)
		return c, nil
	case <-l.closed:
		return nil, errListenerClosed(l.cfg)
	case <-l.serveDone:
		if isClosed(l.closed) || errors.Is(l.serveErr, http.ErrServerClosed) {
			return nil, errListenerClosed(l.cfg)
		}
		return nil, l.cfg.errorf("serve: %w", l.serveErr)
	}
}

// serveHTTP upgrades a request for cfg.Path to a WebSocket and waits until
// Accept takes it or the listener closes.
func (l *wsListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.cfg.Path {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		http.Error(w, "listener closing", http.StatusServiceUnavailable)
		return
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()

	// [MQTT-6.0.0-3] says the client offers "mqtt". A client offering
	// nothing is let in, since many embedded clients omit the header; one
	// offering only other subprotocols speaks something else.
	if offered, ok := offersMQTT(r.Header); offered && !ok {
		l.stats.rejected.Add(1)
		http.Error(w, `no acceptable WebSocket subprotocol: MQTT uses "mqtt"`, http.StatusBadRequest)
		return
	}
	if !l.stats.acquire() {
		l.stats.rejected.Add(1)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: subprotocols,
		// Any Origin: MQTT clients in browser pages of other origins are
		// normal, and MQTT authenticates at CONNECT, not by cookies.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has written the error response.
		l.stats.release()
		l.stats.rejected.Add(1)
		return
	}
	raw := r.Context().Value(rawConnKey{}).(net.Conn)
	// Deadlines the HTTP server set for reading the request must not
	// outlive it. An error means the connection is closed, which the
	// broker's first Read reports.
	_ = raw.SetDeadline(time.Time{})
	c := newWSConn(l.cfg.Kind, &l.stats, ws, raw)

	select {
	case l.conns <- c:
	case <-l.closed:
		c.abandon()
		l.stats.rejected.Add(1)
	}
}

// http1Only returns a clone of tc whose ALPN offers only HTTP/1.1, also in
// the configs its GetConfigForClient returns.
func http1Only(tc *tls.Config) *tls.Config {
	tc = tc.Clone()
	tc.NextProtos = []string{"http/1.1"}
	if get := tc.GetConfigForClient; get != nil {
		tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = []string{"http/1.1"}
			return c, nil
		}
	}
	return tc
}

// offersMQTT reports whether the request offers any WebSocket subprotocol,
// and whether it offers one of ours. Matching ignores case, as the
// library's negotiation does.
func offersMQTT(h http.Header) (offered, ok bool) {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			offered = true
			for _, s := range subprotocols {
				if strings.EqualFold(p, s) {
					return true, true
				}
			}
		}
	}
	return offered, false
}

// Close stops the HTTP server, which unbinds the socket and closes requests
// in progress, then turns away upgraded connections Accept has not taken and
// waits for the handlers and the server's goroutine to finish.
func (l *wsListener) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return errListenerClosed(l.cfg)
	}
	l.closing = true
	close(l.closed)
	l.mu.Unlock()

	err := l.srv.Close()
	<-l.serveDone
	l.handlers.Wait()
	if err = ignoreClosed(err); err != nil {
		return l.cfg.errorf("close: %w", err)
	}
	return nil
}

func (l *wsListener) Addr() net.Addr { return l.addr }
func (l *wsListener) Config() Config { return l.cfg }
func (l *wsListener) Stats() Stats   { return l.stats.snapshot() }
