package listener

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The PROXY protocol, versions 1 and 2, as HAProxy's proxy-protocol.txt
// specifies it: a load balancer that relays a client's TCP connection sends
// one header first, in clear, naming the client's address, so that the
// server sees the client rather than the load balancer.
//
// With Config.ProxyProtocol set, every connection must start with such a
// header. It is read before anything else, the TLS handshake of tls and wss
// included, in a goroutine of the connection's own, so that a slow or silent
// peer never holds up Accept; the connection is handed to Accept, or to the
// HTTP server of ws and wss, only once its header is complete. That is
// eager, not on the connection's first Read, because the broker takes a
// connection's RemoteAddr, for its logs, in its accepting goroutine.
//
// Reading the header is bounded in time by Config.ReadHeaderTimeout and in
// size by maxHeaderV1 and maxHeaderV2. A connection whose header is missing,
// malformed, incomplete when the time is up, or cut short by the peer is
// closed and counted in Stats.Rejected; nothing is guessed.

const (
	// maxHeaderV1 is the longest version 1 header, CRLF included, as the
	// specification bounds it.
	maxHeaderV1 = 107
	// maxHeaderV2 bounds a version 2 header: the 16 fixed bytes, the
	// address block (216 bytes at most, for AF_UNIX) and the TLVs that load
	// balancers append (connection ids, TLS details), which take a few
	// hundred bytes in practice. The 16-bit length field would allow 64 KiB.
	maxHeaderV2 = 2048
	// headerBuffer is the first read's buffer: enough for any version 1
	// header and for version 2 headers with a few TLVs.
	headerBuffer = 256
)

// sigV2 opens every version 2 header.
var sigV2 = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// prefixV1 opens every version 1 header.
var prefixV1 = []byte("PROXY ")

// errIncomplete is parseHeader's answer when the bytes so far are a valid
// beginning of a header but not all of it.
var errIncomplete = errors.New("incomplete PROXY header")

// header is what a PROXY header says about a connection.
type header struct {
	size int      // bytes the header took, at the start of the stream
	src  net.Addr // the client's address; nil: the socket's (LOCAL, UNKNOWN, AF_UNSPEC)
}

// parseHeader reads a PROXY header of either version at the start of b. It
// returns errIncomplete, with need the header's full size when it is known
// and 0 otherwise, when b is a valid beginning that more bytes may complete;
// any other error means b cannot start a valid header.
func parseHeader(b []byte) (h header, need int, err error) {
	switch {
	case len(b) == 0:
		return h, 0, errIncomplete
	case b[0] == sigV2[0]:
		return parseV2(b)
	case b[0] == prefixV1[0]:
		h, err = parseV1(b)
		return h, 0, err
	}
	return h, 0, errors.New("no PROXY header")
}

// parseV1 reads a version 1 header: one line of text,
//
//	PROXY TCP4 192.0.2.1 198.51.100.1 56324 1883\r\n
//	PROXY TCP6 2001:db8::1 2001:db8::2 56324 1883\r\n
//	PROXY UNKNOWN\r\n
//
// with single spaces and at most 107 bytes in all.
func parseV1(b []byte) (header, error) {
	var h header
	if n := min(len(b), len(prefixV1)); !bytes.Equal(b[:n], prefixV1[:n]) {
		return h, errors.New("no PROXY header")
	}
	// The line holds printable ASCII and ends with CRLF; checking each byte
	// as it arrives turns away garbage at once rather than at the timeout.
	end := -1
	for i, c := range b[:min(len(b), maxHeaderV1)] {
		if c == '\r' {
			if i+1 < len(b) && b[i+1] != '\n' {
				return h, errors.New("v1: CR not followed by LF")
			}
			end = i
			break
		}
		if c < 0x20 || c > 0x7e {
			return h, fmt.Errorf("v1: byte %#x in the header line", c)
		}
	}
	if end < 0 || end+1 >= len(b) {
		if len(b) >= maxHeaderV1 {
			return h, fmt.Errorf("v1: no CRLF within %d bytes", maxHeaderV1)
		}
		return h, errIncomplete
	}
	h.size = end + 2
	if h.size > maxHeaderV1 {
		return h, fmt.Errorf("v1: header of %d bytes, more than %d", h.size, maxHeaderV1)
	}
	fields := bytes.Split(b[len(prefixV1):end], []byte(" "))
	proto := string(fields[0])
	if proto == "UNKNOWN" {
		// The rest of the line, whatever it holds, is ignored; the
		// connection keeps the socket's addresses.
		return h, nil
	}
	if proto != "TCP4" && proto != "TCP6" {
		return h, fmt.Errorf("v1: unknown protocol %q", proto)
	}
	if len(fields) != 5 {
		return h, fmt.Errorf("v1: %s header has %d fields, want 4 after the protocol", proto, len(fields)-1)
	}
	src, err := netip.ParseAddr(string(fields[1]))
	if err != nil {
		return h, fmt.Errorf("v1: source address: %w", err)
	}
	dst, err := netip.ParseAddr(string(fields[2]))
	if err != nil {
		return h, fmt.Errorf("v1: destination address: %w", err)
	}
	for _, a := range []netip.Addr{src, dst} {
		if proto == "TCP4" && !a.Is4() || proto == "TCP6" && (!a.Is6() || a.Zone() != "") {
			return h, fmt.Errorf("v1: address %s in a %s header", a, proto)
		}
	}
	sport, err := parsePort(fields[3])
	if err != nil {
		return h, fmt.Errorf("v1: source port: %w", err)
	}
	if _, err := parsePort(fields[4]); err != nil {
		return h, fmt.Errorf("v1: destination port: %w", err)
	}
	h.src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport))
	return h, nil
}

// parsePort reads a decimal port number, 0 to 65535.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 {
		return 0, fmt.Errorf("%q is not a port", b)
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port", b)
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port", b)
	}
	return uint16(n), nil
}

// Version 2 fields: the version and command byte, the family and transport
// byte, and the address blocks' sizes.
const (
	v2Version  = 0x20
	cmdLocal   = 0x00
	cmdProxy   = 0x01
	famUnspec  = 0x00
	famInet    = 0x10
	famInet6   = 0x20
	famUnix    = 0x30
	trUnspec   = 0x00
	trStream   = 0x01
	trDgram    = 0x02
	addrInet   = 12  // two IPv4 addresses, two ports
	addrInet6  = 36  // two IPv6 addresses, two ports
	addrUnix   = 216 // two 108-byte socket paths
	headerV2   = 16  // signature, version and command, family, length
	unixPathV2 = 108
)

// parseV2 reads a version 2 header: the 12-byte signature, a byte of
// version (2) and command (LOCAL or PROXY), a byte of address family and
// transport, the length of what follows (big-endian), then the addresses
// and any TLVs, which are skipped.
func parseV2(b []byte) (header, int, error) {
	var h header
	if n := min(len(b), len(sigV2)); !bytes.Equal(b[:n], sigV2[:n]) {
		return h, 0, errors.New("no PROXY header")
	}
	if len(b) < headerV2 {
		return h, 0, errIncomplete
	}
	verCmd, fam := b[12], b[13]
	size := headerV2 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd&0xf0 != v2Version {
		return h, 0, fmt.Errorf("v2: version %d, want 2", verCmd>>4)
	}
	if cmd := verCmd & 0x0f; cmd != cmdLocal && cmd != cmdProxy {
		return h, 0, fmt.Errorf("v2: unknown command %#x", cmd)
	}
	if size > maxHeaderV2 {
		return h, 0, fmt.Errorf("v2: header of %d bytes, more than the %d accepted", size, maxHeaderV2)
	}
	if len(b) < size {
		return h, size, errIncomplete
	}
	h.size = size
	if verCmd&0x0f == cmdLocal {
		// A connection of the proxy's own, a health check say: the
		// socket's addresses stand, and the family and the block, whatever
		// they hold, are ignored.
		return h, size, nil
	}
	// Families and transports other than those the specification lists are
	// invalid, and so is a datagram transport on a stream connection.
	var addrLen int
	switch fam & 0xf0 {
	case famUnspec:
	case famInet:
		addrLen = addrInet
	case famInet6:
		addrLen = addrInet6
	case famUnix:
		addrLen = addrUnix
	default:
		return h, size, fmt.Errorf("v2: unknown address family %#x", fam>>4)
	}
	switch tr := fam & 0x0f; {
	case tr > trDgram:
		return h, size, fmt.Errorf("v2: unknown transport %#x", tr)
	case fam == famUnspec|trUnspec:
	case tr == trUnspec || fam&0xf0 == famUnspec:
		return h, size, fmt.Errorf("v2: family and transport byte %#x mixes UNSPEC with a value", fam)
	case tr == trDgram:
		return h, size, errors.New("v2: a datagram transport on a stream connection")
	}
	block := b[headerV2:size]
	if len(block) < addrLen {
		return h, size, fmt.Errorf("v2: address block of %d bytes, want at least %d", len(block), addrLen)
	}
	switch fam & 0xf0 {
	case famInet:
		ip := netip.AddrFrom4([4]byte(block[0:4]))
		h.src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(block[8:10])))
	case famInet6:
		ip := netip.AddrFrom16([16]byte(block[0:16]))
		h.src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(block[32:34])))
	case famUnix:
		path := block[:unixPathV2]
		if i := bytes.IndexByte(path, 0); i >= 0 {
			path = path[:i]
		}
		h.src = &net.UnixAddr{Name: string(path), Net: "unix"}
	}
	// AF_UNSPEC with PROXY: the specification lets the receiver keep the
	// socket's addresses, which h.src == nil means.
	return h, size, nil
}

// readHeader reads the PROXY header at the start of raw within timeout and
// returns raw wrapped so that its RemoteAddr is the header's source address
// and its Read starts with the bytes that followed the header.
func readHeader(raw net.Conn, timeout time.Duration) (*proxyConn, error) {
	if err := raw.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, headerBuffer)
	for {
		n, rerr := raw.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, need, err := parseHeader(buf)
		switch {
		case err == nil:
			if err := raw.SetReadDeadline(time.Time{}); err != nil {
				return nil, err
			}
			c := &proxyConn{Conn: raw, remote: h.src}
			if h.src == nil {
				c.remote = raw.RemoteAddr()
			}
			if len(buf) > h.size {
				c.rest = bytes.Clone(buf[h.size:])
			}
			return c, nil
		case !errors.Is(err, errIncomplete):
			return nil, err
		case rerr != nil:
			if len(buf) == 0 && errors.Is(rerr, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w after %d bytes: %w", errIncomplete, len(buf), rerr)
		case need > cap(buf):
			buf = append(make([]byte, 0, need), buf...)
		case len(buf) == cap(buf):
			// A version 1 header fits the first buffer and a version 2
			// one states its size once 16 bytes are in, so this is
			// unreachable; it guards the loop against a zero-length read.
			return nil, errors.New("PROXY header does not fit its buffer")
		}
	}
}

// proxyConn is a connection whose PROXY header has been read: RemoteAddr is
// the address the header gave, and Read returns first the bytes read past
// the header. LocalAddr stays the socket's.
type proxyConn struct {
	net.Conn
	remote net.Addr // read-only

	mu   sync.Mutex
	rest []byte // bytes read past the header, not yet returned; guarded by mu
}

// RemoteAddr returns the client's address as the PROXY header gave it, or
// the socket's for a header that gave none.
func (c *proxyConn) RemoteAddr() net.Addr { return c.remote }

// Read returns the bytes that followed the header first, then reads from the
// connection.
func (c *proxyConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// proxyListener is a net.Listener that reads the PROXY header of every
// connection before yielding it. One goroutine accepts from the socket and
// starts one goroutine per connection to read its header; Accept takes the
// connections whose header was valid, in the order their headers completed.
type proxyListener struct {
	ln      net.Listener
	timeout time.Duration // Config.ReadHeaderTimeout
	stats   *counters
	// slots: each connection holds a slot of stats from the socket's accept
	// on, header reading included, as tcp and tls count them; ws and wss
	// take theirs at the WebSocket upgrade. Read-only.
	slots bool
	log   *slog.Logger

	ready  chan net.Conn // connections with their header read, for Accept
	errs   chan error    // errors of the socket's Accept, for Accept
	closed chan struct{} // closed by the first Close
	done   chan struct{} // closed when acceptLoop returns

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose header is being read; nil once closed; guarded by mu
	readers sync.WaitGroup        // header goroutines; Add under mu
}

func newProxyListener(cfg Config, ln net.Listener, stats *counters, slots bool) *proxyListener {
	l := &proxyListener{
		ln:      ln,
		timeout: cfg.ReadHeaderTimeout,
		stats:   stats,
		slots:   slots,
		log: slog.Default().With(
			slog.String("listener", cfg.Name),
			slog.String("kind", cfg.Kind),
			slog.String("address", cfg.Address)),
		ready:   make(chan net.Conn),
		errs:    make(chan error),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
		pending: map[net.Conn]struct{}{},
	}
	go l.acceptLoop()
	return l
}

// acceptLoop accepts from the socket until the listener closes, and starts a
// header goroutine per connection.
func (l *proxyListener) acceptLoop() {
	defer close(l.done)
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if isClosed(l.closed) {
				return
			}
			// Accept hands the error to its caller, who pauses before
			// calling again, so this loop keeps the caller's pace.
			select {
			case l.errs <- err:
				continue
			case <-l.closed:
				return
			}
		}
		if l.slots && !l.stats.acquire() {
			// Over MaxConnections: turned away before any byte is read.
			_ = raw.Close()
			l.stats.rejected.Add(1)
			continue
		}
		l.mu.Lock()
		if l.pending == nil {
			l.mu.Unlock()
			l.turnAway(raw)
			return
		}
		l.pending[raw] = struct{}{}
		l.readers.Add(1)
		l.mu.Unlock()
		go l.serveHeader(raw)
	}
}

// serveHeader reads raw's header and hands the connection to Accept, or
// closes it.
func (l *proxyListener) serveHeader(raw net.Conn) {
	defer l.readers.Done()
	c, err := readHeader(raw, l.timeout)
	l.mu.Lock()
	if l.pending != nil {
		delete(l.pending, raw)
	}
	l.mu.Unlock()
	if err != nil {
		l.turnAway(raw)
		// Load balancers' health checks often connect and close without
		// a byte; anything else is worth a look when debugging.
		l.log.Debug("connection without a valid PROXY header closed",
			slog.String("remote", raw.RemoteAddr().String()), slog.Any("err", err))
		return
	}
	select {
	case l.ready <- c:
	case <-l.closed:
		l.turnAway(raw)
	}
}

// turnAway closes a connection that will not be handed out, and counts it.
func (l *proxyListener) turnAway(raw net.Conn) {
	// The rejection is counted whatever Close reports.
	_ = raw.Close()
	if l.slots {
		l.stats.release()
	}
	l.stats.rejected.Add(1)
}

// Accept returns the next connection whose PROXY header was read.
func (l *proxyListener) Accept() (net.Conn, error) {
	if isClosed(l.closed) {
		return nil, l.errClosed()
	}
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.closed:
		return nil, l.errClosed()
	}
}

func (l *proxyListener) errClosed() error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: net.ErrClosed}
}

// Close unbinds the socket, closes the connections whose header is still
// being read, and waits for every goroutine of the listener.
func (l *proxyListener) Close() error {
	l.mu.Lock()
	if l.pending == nil {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.ln.Addr(), Err: net.ErrClosed}
	}
	close(l.closed)
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()

	err := l.ln.Close()
	for raw := range pending {
		// Its header goroutine sees the Read fail and counts it.
		_ = raw.Close()
	}
	<-l.done
	l.readers.Wait()
	return err
}

func (l *proxyListener) Addr() net.Addr { return l.ln.Addr() }
