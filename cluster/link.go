package cluster

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Node-to-node links carry messages from the node where they were published to
// the nodes that have subscribers for them.
//
// Every frame on a link is a u32 big-endian length, then that many bytes: a
// frame type byte and its payload. The length counts the type byte, so it is at
// least 1 and at most MaxLinkFrame. A connection begins with a handshake:
//
//	server -> dialer  challenge: link version byte, 32-byte random nonce
//	dialer -> server  hello:     link version byte, node name (uvarint length +
//	                             bytes), MAC (uvarint length + bytes)
//	server -> dialer  welcome:   no payload
//
// The MAC is HMAC-SHA256 keyed with the cluster secret over "avocet-link" ||
// nonce || name; without a secret it is empty. A server with a secret refuses a
// hello whose MAC does not match; a server without one accepts any. The MAC only
// proves that the dialer knows the secret; it neither encrypts nor authenticates
// the server: configure TLS for that. After the welcome, the dialer sends
// messages frames: a uvarint count, then per message a uvarint length and the
// message as mqtt.Message.AppendBinary writes it. The server sends nothing more.
//
// Delivery is at most once: a message taken off a queue and written is never
// written again, even when the connection then fails. Exactly-once delivery
// across nodes needs acknowledgements on the link, which come later.
const (
	linkVersion byte = 1

	frameChallenge byte = 1
	frameHello     byte = 2
	frameWelcome   byte = 3
	frameMessages  byte = 4

	// MaxLinkFrame bounds a frame's length; a peer announcing more is
	// disconnected before anything is allocated.
	MaxLinkFrame = 16 << 20

	maxHandshakeFrame = 2048
	nonceLen          = 32
	macContext        = "avocet-link"
)

// Defaults for LinkConfig's zero fields.
const (
	DefaultLinkQueue        = 10000
	DefaultLinkBackoffMin   = 100 * time.Millisecond
	DefaultLinkBackoffMax   = 5 * time.Second
	DefaultLinkWriteTimeout = 10 * time.Second
	DefaultLinkDialTimeout  = 5 * time.Second
)

func linkMAC(secret, nonce []byte, name string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(macContext))
	h.Write(nonce)
	h.Write([]byte(name))
	return h.Sum(nil)
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// writeFrame writes one frame: length, type, payload.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = typ
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame of at most limit bytes into buf, reusing it when it
// is large enough. The length is checked before anything is allocated.
func readFrame(r io.Reader, buf []byte, limit int) (typ byte, payload, newBuf []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(limit) {
		return 0, nil, buf, fmt.Errorf("%w: frame length %d, limit %d", errMalformed, n, limit)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return buf[0], buf[1:], buf, nil
}

// decodeMessages reads a messages frame's payload. Nothing is delivered from a
// frame that is malformed anywhere.
func decodeMessages(b []byte) ([]*mqtt.Message, error) {
	r := reader{b: b}
	n := r.count("messages", len(b))
	if r.err != nil {
		return nil, r.err
	}
	msgs := make([]*mqtt.Message, 0, n)
	for range n {
		size := r.count("message length", len(r.b))
		if r.err != nil {
			return nil, r.err
		}
		m, err := mqtt.UnmarshalMessage(r.b[:size])
		if err != nil {
			return nil, fmt.Errorf("%w: message: %w", errMalformed, err)
		}
		r.b = r.b[size:]
		msgs = append(msgs, m)
	}
	return msgs, r.end()
}

// LinkServer accepts links from peer nodes and hands each message received to
// its handler.
type LinkServer struct {
	ln      net.Listener
	secret  []byte
	handler func(from string, m *mqtt.Message)
	logger  *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open connections; guarded by mu

	closeOnce sync.Once
	closeErr  error
}

// ListenLinks listens for links on addr (host:port; port 0 picks one), over TLS
// when tlsConfig is not nil. secret is the cluster secret key; nil accepts every
// peer. handler is called for each message received, on that connection's
// reader goroutine: in order per connection, concurrently across connections.
// It may block, which holds back that peer (TCP flow control). It owns the
// message. logger nil means slog.Default().
func ListenLinks(addr string, tlsConfig *tls.Config, secret []byte, handler func(from string, m *mqtt.Message), logger *slog.Logger) (*LinkServer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cluster link listen %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &LinkServer{
		ln: ln, secret: slices.Clone(secret), handler: handler,
		logger: logger.With("listener", ln.Addr().String()),
		conns:  make(map[net.Conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the address the server listens on.
func (s *LinkServer) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every connection and waits for their
// goroutines. Handlers have returned when it returns.
func (s *LinkServer) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.closeErr = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s.closeErr
}

func (s *LinkServer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
				case <-s.ctx.Done():
					return
				}
				continue
			}
			s.logger.Error("cluster link accept", "err", err)
			return
		}
		delay = 0
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *LinkServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	log := s.logger.With("remote", c.RemoteAddr().String())
	name, err := s.handshake(c)
	if err != nil {
		if s.ctx.Err() == nil {
			log.Warn("cluster link refused", "err", err)
		}
		return
	}
	log = log.With("peer", name)
	log.Debug("cluster link up")
	br := bufio.NewReaderSize(c, 64<<10)
	var buf []byte
	for {
		typ, payload, nb, err := readFrame(br, buf, MaxLinkFrame)
		buf = nb
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				log.Debug("cluster link closed by peer")
			} else {
				log.Warn("cluster link closed", "err", err)
			}
			return
		}
		if typ != frameMessages {
			log.Warn("cluster link closed", "err", fmt.Errorf("%w: frame type %d", errMalformed, typ))
			return
		}
		msgs, err := decodeMessages(payload)
		if err != nil {
			log.Warn("cluster link closed", "err", err)
			return
		}
		for _, m := range msgs {
			s.handler(name, m)
		}
	}
}

// handshake runs the server side of the handshake and returns the peer's name.
func (s *LinkServer) handshake(c net.Conn) (string, error) {
	if err := c.SetDeadline(time.Now().Add(DefaultLinkDialTimeout)); err != nil {
		return "", err
	}
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	if err := writeFrame(c, frameChallenge, append([]byte{linkVersion}, nonce...)); err != nil {
		return "", fmt.Errorf("send challenge: %w", err)
	}
	typ, payload, _, err := readFrame(c, nil, maxHandshakeFrame)
	if err != nil {
		return "", fmt.Errorf("read hello: %w", err)
	}
	if typ != frameHello {
		return "", fmt.Errorf("%w: frame type %d, want hello", errMalformed, typ)
	}
	r := reader{b: payload}
	version := r.byte("version")
	name := r.string("name", maxNameLen)
	mac := r.string("mac", 64)
	if err := r.end(); err != nil {
		return "", err
	}
	if version != linkVersion {
		return "", fmt.Errorf("%w: link version %d", errMalformed, version)
	}
	if name == "" {
		return "", fmt.Errorf("%w: empty node name", errMalformed)
	}
	if len(s.secret) > 0 && !hmac.Equal([]byte(mac), linkMAC(s.secret, nonce, name)) {
		return "", fmt.Errorf("node %q: secret does not match", name)
	}
	if err := writeFrame(c, frameWelcome, nil); err != nil {
		return "", fmt.Errorf("send welcome: %w", err)
	}
	return name, c.SetDeadline(time.Time{})
}

// LinkConfig configures Links. Zero fields take the defaults.
type LinkConfig struct {
	// Name is this node's name, sent in the hello.
	Name string
	// Secret is the cluster secret key; nil sends no MAC.
	Secret []byte
	// TLS, when not nil, is used to dial peers over TLS.
	TLS *tls.Config
	// Queue bounds the messages waiting per peer; DefaultLinkQueue when zero.
	Queue int
	// BackoffMin and BackoffMax bound the delay between reconnection attempts,
	// which doubles after each failure.
	BackoffMin, BackoffMax time.Duration
	// WriteTimeout bounds one flush to a peer.
	WriteTimeout time.Duration
	// Logger nil means slog.Default().
	Logger *slog.Logger
}

// LinkStats are one outgoing link's counters.
type LinkStats struct {
	Node       string
	Addr       string
	Queued     int   // messages waiting in the queue
	Sent       int64 // messages written and flushed
	Dropped    int64 // refused by a full queue, or lost in a write that failed
	Connected  bool
	Reconnects int64 // connections lost after the handshake
}

// Links keeps one outgoing link per peer node. Every method may be called from
// any goroutine; Send never blocks.
type Links struct {
	cfg    LinkConfig
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // link goroutines

	mu    sync.RWMutex
	links map[string]*Link // by peer name; guarded by mu
}

// Link is the outgoing link to one peer: a bounded queue and the goroutine that
// drains it onto a connection, reconnecting with backoff.
type Link struct {
	name   string
	queue  chan *mqtt.Message
	cancel context.CancelFunc

	mu   sync.Mutex
	addr string // guarded by mu; read at each dial

	sent, dropped, reconnects atomic.Int64
	connected                 atomic.Bool
}

// NewLinks returns a manager with no links; Update or Dial opens them.
func NewLinks(cfg LinkConfig) *Links {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultLinkQueue
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultLinkBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultLinkBackoffMax, cfg.BackoffMin)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultLinkWriteTimeout
	}
	cfg.Secret = slices.Clone(cfg.Secret)
	l := &Links{cfg: cfg, logger: cfg.Logger, links: make(map[string]*Link)}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// Dial opens the link to peer name at addr, or moves an existing one to addr
// (its queue is kept; the next connection uses the new address).
func (l *Links) Dial(name, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dialLocked(name, addr)
}

func (l *Links) dialLocked(name, addr string) {
	if k, ok := l.links[name]; ok {
		k.mu.Lock()
		k.addr = addr
		k.mu.Unlock()
		return
	}
	if l.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(l.ctx)
	k := &Link{name: name, addr: addr, queue: make(chan *mqtt.Message, l.cfg.Queue), cancel: cancel}
	l.links[name] = k
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.run(ctx, k)
	}()
}

// Update makes the set of links match members (peer name to link address): it
// opens links to new peers, moves links whose address changed and closes links
// to peers absent from members, dropping what they had queued. This node's own
// name and empty addresses are skipped.
func (l *Links) Update(members map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, addr := range members {
		if name != l.cfg.Name && addr != "" {
			l.dialLocked(name, addr)
		}
	}
	for name, k := range l.links {
		if addr := members[name]; addr == "" || name == l.cfg.Name {
			k.cancel()
			delete(l.links, name)
		}
	}
}

// Send queues m for peer node and reports whether it was queued. It returns
// false, counting a drop, when the peer's queue is full, and false without
// counting when there is no link to node. m is shared read-only.
func (l *Links) Send(node string, m *mqtt.Message) bool {
	l.mu.RLock()
	k := l.links[node]
	l.mu.RUnlock()
	if k == nil {
		return false
	}
	select {
	case k.queue <- m:
		return true
	default:
		k.dropped.Add(1)
		return false
	}
}

// Stats returns each link's counters, sorted by peer name.
func (l *Links) Stats() []LinkStats {
	l.mu.RLock()
	out := make([]LinkStats, 0, len(l.links))
	for _, k := range l.links {
		k.mu.Lock()
		addr := k.addr
		k.mu.Unlock()
		out = append(out, LinkStats{
			Node: k.name, Addr: addr, Queued: len(k.queue),
			Sent: k.sent.Load(), Dropped: k.dropped.Load(),
			Connected: k.connected.Load(), Reconnects: k.reconnects.Load(),
		})
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b LinkStats) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// Close closes every link and waits for their goroutines; queued messages are
// dropped.
func (l *Links) Close() {
	l.mu.Lock()
	l.cancel()
	clear(l.links)
	l.mu.Unlock()
	l.wg.Wait()
}

// run owns one link: it connects, drains the queue, and reconnects until ctx
// ends.
func (l *Links) run(ctx context.Context, k *Link) {
	log := l.logger.With("peer", k.name)
	backoff := l.cfg.BackoffMin
	var carry []*mqtt.Message // taken off the queue but not yet written
	failures := 0
	for ctx.Err() == nil {
		k.mu.Lock()
		addr := k.addr
		k.mu.Unlock()
		c, err := l.connect(ctx, addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures == 0 {
				log.Warn("cluster link dial", "addr", addr, "err", err)
			} else {
				log.Debug("cluster link dial", "addr", addr, "err", err)
			}
			failures++
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, l.cfg.BackoffMax)
			continue
		}
		failures, backoff = 0, l.cfg.BackoffMin
		log.Debug("cluster link up", "addr", addr)
		k.connected.Store(true)
		carry, err = l.pump(ctx, k, c, carry)
		k.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		k.reconnects.Add(1)
		log.Warn("cluster link lost", "addr", addr, "err", err)
	}
}

// connect dials addr and runs the dialer side of the handshake.
func (l *Links) connect(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultLinkDialTimeout)
	defer cancel()
	var c net.Conn
	var err error
	if l.cfg.TLS != nil {
		c, err = (&tls.Dialer{Config: l.cfg.TLS}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = l.hello(c)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (l *Links) hello(c net.Conn) error {
	typ, payload, _, err := readFrame(c, nil, maxHandshakeFrame)
	if err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	if typ != frameChallenge || len(payload) != 1+nonceLen || payload[0] != linkVersion {
		return fmt.Errorf("%w: bad challenge", errMalformed)
	}
	var mac []byte
	if len(l.cfg.Secret) > 0 {
		mac = linkMAC(l.cfg.Secret, payload[1:], l.cfg.Name)
	}
	b := []byte{linkVersion}
	b = appendString(b, l.cfg.Name)
	b = appendString(b, string(mac))
	if err := writeFrame(c, frameHello, b); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	typ, _, _, err = readFrame(c, nil, maxHandshakeFrame)
	if err != nil {
		return fmt.Errorf("refused or closed before welcome: %w", err)
	}
	if typ != frameWelcome {
		return fmt.Errorf("%w: frame type %d, want welcome", errMalformed, typ)
	}
	return nil
}

// pump drains k's queue onto c until the connection fails or ctx ends. It
// returns the messages taken off the queue but not written, for the next
// connection. A reader goroutine notices when the peer closes the connection,
// so that messages queued while it is down stay queued.
func (l *Links) pump(ctx context.Context, k *Link, c net.Conn, carry []*mqtt.Message) ([]*mqtt.Message, error) {
	dead := make(chan struct{})
	var readErr error
	go func() {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		readErr = err
		close(dead)
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
		<-dead
	}()

	bw := bufio.NewWriterSize(c, 64<<10)
	var frame, enc, payload []byte
	var unflushed int64
	fail := func(err error) ([]*mqtt.Message, error) {
		k.dropped.Add(unflushed)
		return carry, err
	}
	for {
		if len(carry) == 0 {
			select {
			case m := <-k.queue:
				carry = append(carry, m)
			case <-dead:
				return carry, readErr
			case <-ctx.Done():
				return carry, ctx.Err()
			}
		}
		select {
		case <-dead:
			return carry, readErr
		default:
		}
		// Batch what is queued into one frame, up to the frame limit.
		frame = frame[:0]
		size := 1
		n := 0
		for {
			var m *mqtt.Message
			if n < len(carry) {
				m = carry[n]
			} else {
				select {
				case m = <-k.queue:
					carry = append(carry, m)
				default:
				}
			}
			if m == nil {
				break
			}
			var err error
			enc, err = m.AppendBinary(enc[:0])
			if err != nil {
				carry = slices.Delete(carry, n, n+1)
				k.dropped.Add(1)
				l.logger.Warn("cluster link: message not encodable", "peer", k.name, "topic", m.Topic, "err", err)
				continue
			}
			add := uvarintLen(uint64(len(enc))) + len(enc)
			if n > 0 && size+uvarintLen(uint64(n+1))+add > MaxLinkFrame {
				break
			}
			if size+uvarintLen(1)+add > MaxLinkFrame {
				carry = slices.Delete(carry, n, n+1)
				k.dropped.Add(1)
				l.logger.Warn("cluster link: message larger than a frame", "peer", k.name, "topic", m.Topic, "bytes", len(enc))
				continue
			}
			frame = binary.AppendUvarint(frame, uint64(len(enc)))
			frame = append(frame, enc...)
			size += add
			n++
		}
		if n == 0 {
			continue
		}
		payload = binary.AppendUvarint(payload[:0], uint64(n))
		payload = append(payload, frame...)
		carry = slices.Delete(carry, 0, n)
		unflushed += int64(n)
		if err := c.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout)); err != nil {
			return fail(err)
		}
		if err := writeFrame(bw, frameMessages, payload); err != nil {
			return fail(err)
		}
		if len(carry) == 0 && len(k.queue) == 0 {
			if err := bw.Flush(); err != nil {
				return fail(err)
			}
			k.sent.Add(unflushed)
			unflushed = 0
		}
	}
}
