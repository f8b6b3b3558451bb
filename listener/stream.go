package listener

import (
	"crypto/tls"
	"net"
	"sync"
)

// streamListener serves the tcp and tls kinds: Accept takes connections
// straight from the socket, in the caller's goroutine, and starts no
// goroutines of its own. With Config.ProxyProtocol, Accept takes them from a
// proxyListener instead, whose goroutines have read their PROXY header.
type streamListener struct {
	cfg    Config       // read-only
	ln     net.Listener // the TCP socket, or a proxyListener on it
	stats  counters
	closed chan struct{} // closed by the first Close

	closeOnce sync.Once
}

func newStreamListener(cfg Config, ln net.Listener) *streamListener {
	l := &streamListener{
		cfg:    cfg,
		ln:     ln,
		stats:  counters{max: int64(cfg.MaxConnections)},
		closed: make(chan struct{}),
	}
	if cfg.ProxyProtocol {
		l.ln = newProxyListener(cfg, ln, &l.stats, true)
	}
	return l
}

// Accept returns the next TCP connection, wrapped in TLS for the tls kind.
// The TLS handshake is left to the connection's first Read or Write, so that
// a slow client delays only its own goroutine.
func (l *streamListener) Accept() (net.Conn, error) {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if isClosed(l.closed) {
				return nil, errListenerClosed(l.cfg)
			}
			return nil, l.cfg.errorf("accept: %w", err)
		}
		// A proxyListener took the slot before reading the header.
		if !l.cfg.ProxyProtocol && !l.stats.acquire() {
			// Over MaxConnections: turned away before any byte is read.
			// The rejection is counted whatever Close reports.
			_ = raw.Close()
			l.stats.rejected.Add(1)
			continue
		}
		c := &conn{Conn: raw, kind: l.cfg.Kind, stats: &l.stats}
		if l.cfg.Kind == KindTLS {
			c.tls = tls.Server(raw, l.cfg.TLS)
			c.Conn = c.tls
		}
		l.stats.accepted.Add(1)
		return c, nil
	}
}

// Close unbinds the socket and unblocks Accept.
func (l *streamListener) Close() error {
	err := errListenerClosed(l.cfg)
	l.closeOnce.Do(func() {
		close(l.closed)
		err = nil
		if cerr := l.ln.Close(); cerr != nil {
			err = l.cfg.errorf("close: %w", cerr)
		}
	})
	return err
}

func (l *streamListener) Addr() net.Addr { return l.ln.Addr() }
func (l *streamListener) Config() Config { return l.cfg }
func (l *streamListener) Stats() Stats   { return l.stats.snapshot() }
