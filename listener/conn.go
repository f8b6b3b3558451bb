package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// wsCloseTimeout bounds the WebSocket close handshake in wsConn.Close when
// the peer does not answer.
const wsCloseTimeout = 2 * time.Second

// conn is a connection returned by Accept: the transport's net.Conn plus the
// accounting of its slot toward MaxConnections. All methods may be called
// concurrently, as on any net.Conn.
type conn struct {
	net.Conn           // the byte stream: *net.TCPConn, *tls.Conn or a WebSocket adapter
	kind     string    // Config.Kind, for errors
	tls      *tls.Conn // set for tls and wss, nil otherwise
	stats    *counters

	// closeTransport closes the transport; nil means Conn.Close. Set
	// before the conn is shared, then read-only.
	closeTransport func() error
	closeOnce      sync.Once
}

// Close closes the transport and releases the slot. Only the first call does
// so; later calls return an error wrapping net.ErrClosed, as a second Close
// of a *net.TCPConn does.
func (c *conn) Close() error {
	first := false
	var err error
	c.closeOnce.Do(func() {
		first = true
		if c.closeTransport != nil {
			err = c.closeTransport()
		} else {
			err = c.Conn.Close()
		}
		c.stats.release()
	})
	if !first {
		return &net.OpError{Op: "close", Net: c.kind, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed}
	}
	return err
}

// SyscallConn returns the raw connection of a plain TCP connection, so that a
// server can wait for its data in a poller of its own. For TLS and WebSocket
// connections, whose bytes pass through a layer that buffers, and for
// connections with a PROXY header, it returns errors.ErrUnsupported.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if tc, ok := c.Conn.(*net.TCPConn); ok && c.tls == nil {
		return tc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// wsConn is a WebSocket connection adapted to a byte stream. The embedded
// conn's Conn is the adapter from websocket.NetConn: every Write becomes one
// binary message, and Read returns the concatenated payloads of the binary
// messages received, whatever their framing.
type wsConn struct {
	conn
	ws  *websocket.Conn
	raw net.Conn // the hijacked HTTP connection: *net.TCPConn, or *tls.Conn for wss

	// The deadlines last set, or nil; they let Read and Write report an
	// expired deadline as net.Conn implementations do.
	readDeadline  atomic.Pointer[time.Time]
	writeDeadline atomic.Pointer[time.Time]
}

func newWSConn(kind string, stats *counters, ws *websocket.Conn, raw net.Conn) *wsConn {
	c := &wsConn{ws: ws, raw: raw}
	c.conn = conn{
		// The read limit is left to NetConn, which disables it: the broker
		// enforces the MQTT maximum packet size on the stream, and a
		// message limit would cut packets that span messages anyway.
		Conn:           websocket.NetConn(context.Background(), ws, websocket.MessageBinary),
		kind:           kind,
		stats:          stats,
		closeTransport: c.closeWS,
	}
	c.tls, _ = raw.(*tls.Conn)
	return c
}

// closeWS closes the WebSocket with status 1000 (normal closure). The
// library's close handshake waits up to 5s for the write of the close frame
// and 5s more for the peer's answer; a deadline on the raw connection cuts
// that to wsCloseTimeout in all. The handshake is best effort: when it fails
// because the peer is gone or silent, the connection is closed all the same,
// so no error is reported, as closing a TCP connection whose peer left
// reports none.
func (c *wsConn) closeWS() error {
	// An error here means the raw connection is already closed, which the
	// Close below handles.
	_ = c.raw.SetDeadline(time.Now().Add(wsCloseTimeout))
	// The library closes the raw connection whether or not the handshake
	// succeeds; its error only describes the handshake.
	_ = c.Conn.Close()
	return nil
}

// abandon closes a connection that was never handed out, without a close
// handshake, and releases its slot.
func (c *wsConn) abandon() {
	c.closeOnce.Do(func() {
		// The raw connection is closed whatever CloseNow reports.
		_ = c.ws.CloseNow()
		c.stats.release()
	})
}

// RemoteAddr returns the client's address, that of the TCP connection.
func (c *wsConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// LocalAddr returns the listener's address as the client reached it.
func (c *wsConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// Read reads from the stream of binary message payloads. A text message
// fails the Read and closes the WebSocket with status 1003 [MQTT-6.0.0-1].
func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && expired(&c.readDeadline) {
		err = c.timeout("read")
	}
	return n, err
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && expired(&c.writeDeadline) {
		err = c.timeout("write")
	}
	return n, err
}

// SetDeadline sets both deadlines. An expired deadline may close the
// WebSocket; see the package documentation.
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline. An expired deadline may close the
// WebSocket; see the package documentation.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(deadline(t))
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline. An expired deadline may close
// the WebSocket; see the package documentation.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(deadline(t))
	return c.Conn.SetWriteDeadline(t)
}

// timeout is the error of a Read or Write cut by its deadline; like the
// net package's, it satisfies errors.Is(err, os.ErrDeadlineExceeded) and
// net.Error's Timeout.
func (c *wsConn) timeout(op string) error {
	return &net.OpError{Op: op, Net: c.kind, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
}

func deadline(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func expired(p *atomic.Pointer[time.Time]) bool {
	t := p.Load()
	return t != nil && !time.Now().Before(*t)
}
