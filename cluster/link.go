package cluster

import (
	"bufio"
	"bytes"
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

	"github.com/avocet-mqtt/avocet/session"
)

// Node-to-node links carry items (opaque to the link: a kind byte and a body)
// from one node to another, acknowledged, exactly once and in order per
// (sender, receiver), optionally kept in a store until acknowledged.
//
// Every frame on a link is a u32 big-endian length, then that many bytes: a
// frame type byte and its payload. The length counts the type byte, so it is at
// least 1 and at most MaxLinkFrame. A connection begins with a handshake:
//
//	server -> dialer  challenge: link version byte, 32-byte random nonce
//	dialer -> server  hello:     link version byte, node name (uvarint length +
//	                             bytes), epoch (8 bytes, big endian, not 0),
//	                             MAC (uvarint length + bytes)
//	server -> dialer  welcome:   no payload
//
// The MAC is HMAC-SHA256 keyed with the cluster secret over "avocet-link" ||
// nonce || epoch || name; without a secret it is empty. A server with a secret
// refuses a hello whose MAC does not match; a server without one accepts any.
// The MAC only proves that the dialer knows the secret; it neither encrypts nor
// authenticates the server: configure TLS for that. After the welcome:
//
//	dialer -> server  items: uvarint count (at least 1), then per item: uvarint
//	                  sequence delta (from the previous item's, the first item's
//	                  from 0; at least 1), kind byte, uvarint body length, body
//	server -> dialer  ack:   uvarint sequence number
//	either way        ping:  no payload, sent after a second with nothing
//	                         else to send
//
// A side that reads nothing for DefaultLinkTimeout takes the peer for
// unreachable and closes the connection: the dialer dials again.
//
// Each sender numbers the items it sends to a peer 1, 2, 3...: per (sender,
// epoch, peer) the numbers only increase, with gaps where items were lost with a
// restart. An ack says that the receiver is done with every item up to that
// number. The sender keeps what it wrote until it is acknowledged and, on a new
// connection, writes it again first. The receiver remembers, per sender and
// epoch, the last number it handed to its handler and skips what comes again.
// A sender's epoch is random per process, or kept in the store with its
// sequence numbers, so that with a store the numbers keep increasing across
// restarts.
const (
	linkVersion byte = 3

	frameChallenge byte = 1
	frameHello     byte = 2
	frameWelcome   byte = 3
	frameItems     byte = 4
	frameAck       byte = 5
	framePing      byte = 6

	// MaxLinkFrame bounds a frame's length; a peer announcing more is
	// disconnected before anything is allocated.
	MaxLinkFrame = 16 << 20

	maxHandshakeFrame = 2048
	maxAckFrame       = 1 + binary.MaxVarintLen64
	nonceLen          = 32
	macContext        = "avocet-link"

	// maxItemBody bounds an item's body so that any one item fits a frame:
	// the frame type, the count, the delta, the kind and the length.
	maxItemBody = MaxLinkFrame - 1 - 3*binary.MaxVarintLen64 - 1

	// ackBatch and ackDelay bound how long an acknowledgement waits: it is sent
	// when this many items are done since the last one, or this long after it.
	ackBatch = 256
	ackDelay = 2 * time.Millisecond

	// maxUndone bounds the items of one sender handed to the handler and not
	// yet done; the connection waits beyond it.
	maxUndone = 1 << 16

	// maxLinkSenders bounds the senders a LinkServer keeps state for.
	maxLinkSenders = 1 << 12
)

// Defaults for LinkConfig's zero fields.
const (
	DefaultLinkQueue        = 10000
	DefaultLinkBackoffMin   = 100 * time.Millisecond
	DefaultLinkBackoffMax   = 5 * time.Second
	DefaultLinkWriteTimeout = 10 * time.Second
	DefaultLinkDialTimeout  = 5 * time.Second
	// DefaultLinkHeartbeat is how long a side of a link sends nothing before it
	// sends a ping; DefaultLinkTimeout how long it waits for a frame from the
	// peer before it takes it for unreachable.
	DefaultLinkHeartbeat = time.Second
	DefaultLinkTimeout   = 5 * time.Second
)

// Item is one unit a link carries. Kind's meaning is the caller's (0 is valid).
type Item struct {
	Kind byte
	// Body is read-only once sent; the link may keep it until acknowledged.
	Body []byte
	// Durable, with LinkConfig.Store, has the item written to the store until
	// the peer acknowledges it. It is not carried: the receiver sees false.
	Durable bool
}

// LinkHandler is called for each item received from peer from, in the order
// sent, on that connection's reader goroutine; never for two items of one
// sender at once. The handler must call done exactly once, possibly later and
// from another goroutine, when it has finished with the item (for example once
// what it wrote is durable); done does not block, and calls after the first
// are ignored. The link acknowledges items to the sender only when done was
// called for them and for every item before them. The handler may block, which
// holds back that peer (TCP flow control). The handler owns it.Body.
type LinkHandler func(from string, it Item, done func())

func linkMAC(secret, nonce []byte, epoch uint64, name string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(macContext))
	h.Write(nonce)
	h.Write(be64(epoch))
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

// newEpoch returns a random epoch, never 0.
func newEpoch() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
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

// outItem is an item with its sequence number.
type outItem struct {
	seq uint64
	Item
}

// itemRec is an item as decoded from a frame: body points into the frame.
type itemRec struct {
	seq  uint64
	kind byte
	body []byte
}

// appendItems appends an items frame's payload for items, whose sequence
// numbers increase.
func appendItems(b []byte, items []outItem) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	var prev uint64
	for _, it := range items {
		b = binary.AppendUvarint(b, it.seq-prev)
		prev = it.seq
		b = append(b, it.Kind)
		b = binary.AppendUvarint(b, uint64(len(it.Body)))
		b = append(b, it.Body...)
	}
	return b
}

// itemSize is what an item adds to an items frame after prev.
func itemSize(prev uint64, it outItem) int {
	return uvarintLen(it.seq-prev) + 1 + uvarintLen(uint64(len(it.Body))) + len(it.Body)
}

// decodeItems reads an items frame's payload, appending to recs, whose bodies
// point into b. Nothing is delivered from a frame that is malformed anywhere.
func decodeItems(b []byte, recs []itemRec) ([]itemRec, error) {
	r := reader{b: b}
	n := r.count("items", len(b)/3) // an item takes at least 3 bytes
	if r.err == nil && n == 0 {
		r.fail("no items")
	}
	var seq uint64
	for i := 0; i < n && r.err == nil; i++ {
		d := r.uvarint("sequence delta")
		if r.err == nil && (d == 0 || seq+d < seq) {
			r.fail("sequence numbers not increasing")
		}
		seq += d
		kind := r.byte("kind")
		size := r.count("body length", len(r.b))
		if r.err != nil {
			break
		}
		recs = append(recs, itemRec{seq: seq, kind: kind, body: r.b[:size:size]})
		r.b = r.b[size:]
	}
	if err := r.end(); err != nil {
		clear(recs)
		return recs[:0], err
	}
	return recs, nil
}

// decodeAck reads an ack frame's payload.
func decodeAck(b []byte) (uint64, error) {
	r := reader{b: b}
	seq := r.uvarint("acknowledged sequence")
	return seq, r.end()
}

// fifo is a first-in first-out queue in a slice that is compacted as its front
// is consumed.
type fifo[T any] struct {
	buf  []T
	head int
}

func (q *fifo[T]) len() int    { return len(q.buf) - q.head }
func (q *fifo[T]) at(i int) *T { return &q.buf[q.head+i] }
func (q *fifo[T]) push(v T)    { q.buf = append(q.buf, v) }

// drop removes the first n.
func (q *fifo[T]) drop(n int) {
	clear(q.buf[q.head : q.head+n])
	q.head += n
	switch {
	case q.head == len(q.buf):
		q.buf, q.head = q.buf[:0], 0
		if cap(q.buf) > 1024 {
			q.buf = nil // give back the memory of a burst
		}
	case q.head >= 1024 && 2*q.head >= len(q.buf):
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
}

// filter keeps, in order, the elements for which keep is true.
func (q *fifo[T]) filter(keep func(*T) bool) {
	out := q.buf[:0]
	for i := q.head; i < len(q.buf); i++ {
		if keep(&q.buf[i]) {
			out = append(out, q.buf[i])
		}
	}
	clear(q.buf[len(out):])
	q.buf, q.head = out, 0
}

// signal wakes whoever waits on c, a channel of capacity 1, without blocking.
func signal(c chan struct{}) {
	if c == nil {
		return
	}
	select {
	case c <- struct{}{}:
	default:
	}
}

// LinkServer accepts links from peer nodes and hands each item received to its
// handler.
type LinkServer struct {
	ln      net.Listener
	secret  []byte
	handler LinkHandler
	store   session.Store // nil: nothing persisted
	logger  *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // accept loop, readers, ack writers

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // open connections; guarded by mu
	senders map[string]*inbound   // by sender name; guarded by mu

	closeOnce sync.Once
	closeErr  error
}

// inbound is what the server knows of one sender.
type inbound struct {
	// handMu is held while an item is handed to the handler, so that one
	// sender's items are handed one at a time even across connections.
	handMu sync.Mutex
	conn   *serverConn // the sender's current connection; guarded by LinkServer.mu
	st     *recvState  // the state of the sender's current epoch; guarded by LinkServer.mu
}

// recvState is what has become of one (sender, epoch)'s items.
type recvState struct {
	epoch uint64

	mu        sync.Mutex
	handed    uint64            // last sequence number handed to the handler; guarded by mu
	frontier  uint64            // last sequence number done with all before it; guarded by mu
	persisted uint64            // frontier as last written to the store; guarded by mu
	base      uint64            // index (among items handed) of pending's front; guarded by mu
	pending   fifo[pendingItem] // handed, not yet past the frontier; guarded by mu
	owner     chan struct{}     // the current connection's ack signal; guarded by mu
	drained   chan struct{}     // signalled when pending shrinks
}

type pendingItem struct {
	seq  uint64
	done bool
}

func newRecvState(epoch uint64) *recvState {
	return &recvState{epoch: epoch, drained: make(chan struct{}, 1)}
}

// markDone records that the idx-th item handed is done and moves the frontier.
func (st *recvState) markDone(idx uint64) {
	st.mu.Lock()
	st.pending.at(int(idx - st.base)).done = true
	n := 0
	for n < st.pending.len() && st.pending.at(n).done {
		st.frontier = st.pending.at(n).seq
		n++
	}
	var owner chan struct{}
	if n > 0 {
		st.pending.drop(n)
		st.base += uint64(n)
		owner = st.owner
	}
	st.mu.Unlock()
	if n > 0 {
		signal(owner)
		signal(st.drained)
	}
}

// serverConn is one accepted connection after its handshake.
type serverConn struct {
	c      net.Conn
	name   string
	in     *inbound
	st     *recvState
	log    *slog.Logger
	notify chan struct{} // the frontier may have moved
	gone   chan struct{} // closed when a newer connection from the sender took over
	closed chan struct{} // closed when the reader returns
}

// ListenLinks listens for links on addr (host:port; port 0 picks one), over TLS
// when tlsConfig is not nil. secret is the cluster secret key; nil accepts every
// peer. handler is called for each item received: in order per sender,
// concurrently across senders. store, when not nil, keeps what was done of each
// sender's items (read back here), so that after a restart the items already
// done and sent again are skipped. logger nil means slog.Default().
func ListenLinks(addr string, tlsConfig *tls.Config, secret []byte, store session.Store, handler LinkHandler, logger *slog.Logger) (*LinkServer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	senders := make(map[string]*inbound)
	if store != nil {
		var err error
		if senders, err = loadReceiverState(store, logger); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cluster link listen %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &LinkServer{
		ln: ln, secret: slices.Clone(secret), handler: handler, store: store,
		logger:  logger.With("listener", ln.Addr().String()),
		conns:   make(map[net.Conn]struct{}),
		senders: senders,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the address the server listens on.
func (s *LinkServer) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every connection and waits for their
// goroutines. Handlers have returned when it returns; with a store, what was
// done of each sender's items is written. done called after Close is harmless
// but no longer recorded.
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
		if s.store == nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for name, in := range s.senders {
			if in.st != nil {
				s.persistLocked(name, in.st)
			}
		}
	})
	return s.closeErr
}

// persistLocked writes st's frontier for sender name when it moved. s.mu is
// held, which keeps the writes of one sender in order.
func (s *LinkServer) persistLocked(name string, st *recvState) {
	st.mu.Lock()
	f := st.frontier
	moved := f > st.persisted
	st.persisted = max(st.persisted, f)
	st.mu.Unlock()
	if moved {
		s.store.Set(linkInKey(name), linkInValue(st.epoch, f))
	}
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
	name, epoch, err := s.handshake(c)
	var sc *serverConn
	if err == nil {
		log = log.With("peer", name)
		sc, err = s.attach(c, name, epoch, log)
	}
	if err != nil {
		if s.ctx.Err() == nil {
			log.Warn("cluster link refused", "err", err)
		}
		return
	}
	defer s.detach(sc)
	log.Debug("cluster link up")
	s.wg.Add(1)
	go s.ackLoop(sc)
	if err := s.readLoop(sc); err != nil && s.ctx.Err() == nil {
		select {
		case <-sc.gone:
			log.Debug("cluster link replaced by a newer connection")
		default:
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				log.Debug("cluster link closed by peer")
			} else {
				log.Warn("cluster link closed", "err", err)
			}
		}
	}
}

// attach makes c the current connection of sender name, closing the one it
// replaces, with the state of the sender's epoch (a new epoch starts afresh).
// It refuses a new sender when the server keeps state for too many.
func (s *LinkServer) attach(c net.Conn, name string, epoch uint64, log *slog.Logger) (*serverConn, error) {
	s.mu.Lock()
	in := s.senders[name]
	if in == nil {
		if len(s.senders) >= maxLinkSenders {
			s.mu.Unlock()
			return nil, fmt.Errorf("node %q: already %d senders", name, len(s.senders))
		}
		in = &inbound{}
		s.senders[name] = in
	}
	if in.st == nil || in.st.epoch != epoch {
		in.st = newRecvState(epoch)
	}
	sc := &serverConn{
		c: c, name: name, in: in, st: in.st, log: log,
		notify: make(chan struct{}, 1),
		gone:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	old := in.conn
	in.conn = sc
	sc.st.mu.Lock()
	sc.st.owner = sc.notify
	sc.st.mu.Unlock()
	s.mu.Unlock()
	if old != nil {
		close(old.gone)
		old.c.Close()
	}
	signal(sc.notify) // acknowledge at once what was done before
	return sc, nil
}

func (s *LinkServer) detach(sc *serverConn) {
	close(sc.closed)
	sc.c.Close()
	s.mu.Lock()
	if sc.in.conn == sc {
		sc.in.conn = nil
	}
	s.mu.Unlock()
}

// readLoop reads items frames and hands their items to the handler until the
// connection fails.
func (s *LinkServer) readLoop(sc *serverConn) error {
	br := bufio.NewReaderSize(sc.c, 64<<10)
	var buf []byte
	var recs []itemRec
	for {
		if err := sc.c.SetReadDeadline(time.Now().Add(DefaultLinkTimeout)); err != nil {
			return err
		}
		typ, payload, nb, err := readFrame(br, buf, MaxLinkFrame)
		buf = nb
		if err != nil {
			return err
		}
		if typ == framePing {
			continue
		}
		if typ != frameItems {
			return fmt.Errorf("%w: frame type %d", errMalformed, typ)
		}
		recs, err = decodeItems(payload, recs[:0])
		if err != nil {
			return err
		}
		for i := range recs {
			if !s.deliver(sc, &recs[i]) {
				return net.ErrClosed
			}
		}
		clear(recs)
	}
}

// deliver hands r to the handler unless it was handed before. It returns false
// when the connection is to end: replaced, or the server closing.
func (s *LinkServer) deliver(sc *serverConn, r *itemRec) bool {
	sc.in.handMu.Lock()
	defer sc.in.handMu.Unlock()
	select {
	case <-sc.gone:
		return false
	case <-s.ctx.Done():
		return false
	default:
	}
	st := sc.st
	st.mu.Lock()
	if r.seq <= st.handed {
		st.mu.Unlock()
		return true
	}
	for st.pending.len() >= maxUndone {
		st.mu.Unlock()
		select {
		case <-st.drained:
		case <-sc.gone:
			return false
		case <-s.ctx.Done():
			return false
		}
		st.mu.Lock()
	}
	st.handed = r.seq
	idx := st.base + uint64(st.pending.len())
	st.pending.push(pendingItem{seq: r.seq})
	st.mu.Unlock()

	var called atomic.Bool
	done := func() {
		if !called.Swap(true) {
			st.markDone(idx)
		}
	}
	var body []byte
	if len(r.body) > 0 {
		body = bytes.Clone(r.body)
	}
	s.handler(sc.name, Item{Kind: r.kind, Body: body}, done)
	return true
}

// ackLoop sends the frontier of sc's sender to it when the frontier moves: at
// once after a quiet spell, otherwise every ackBatch items or ackDelay,
// whichever comes first. With a store it writes the frontier first.
func (s *LinkServer) ackLoop(sc *serverConn) {
	defer s.wg.Done()
	defer sc.c.Close()
	var sent uint64
	var sentAt time.Time
	var payload []byte
	t := time.NewTimer(0)
	<-t.C
	ping := time.NewTicker(DefaultLinkHeartbeat)
	defer ping.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-sc.notify:
		case <-sc.closed:
			return
		case <-ping.C:
			if time.Since(lastWrite) < DefaultLinkHeartbeat {
				continue
			}
			err := sc.c.SetWriteDeadline(time.Now().Add(DefaultLinkWriteTimeout))
			if err == nil {
				err = writeFrame(sc.c, framePing, nil)
			}
			if err != nil {
				sc.log.Debug("cluster link: ping not sent", "err", err)
				return
			}
			lastWrite = time.Now()
			continue
		}
		for {
			sc.st.mu.Lock()
			f := sc.st.frontier
			sc.st.mu.Unlock()
			if f <= sent {
				break
			}
			if f-sent < ackBatch {
				if wait := ackDelay - time.Since(sentAt); wait > 0 {
					t.Reset(wait)
					select {
					case <-t.C:
					case <-sc.closed:
						return
					}
					continue
				}
			}
			if s.store != nil {
				s.mu.Lock()
				if sc.in.st == sc.st && s.ctx.Err() == nil {
					s.persistLocked(sc.name, sc.st)
				}
				s.mu.Unlock()
			}
			payload = binary.AppendUvarint(payload[:0], f)
			err := sc.c.SetWriteDeadline(time.Now().Add(DefaultLinkWriteTimeout))
			if err == nil {
				err = writeFrame(sc.c, frameAck, payload)
			}
			if err != nil {
				if s.ctx.Err() == nil {
					sc.log.Debug("cluster link: ack not sent", "err", err)
				}
				return
			}
			sent, sentAt = f, time.Now()
			lastWrite = sentAt
		}
	}
}

// handshake runs the server side of the handshake and returns the peer's name
// and epoch.
func (s *LinkServer) handshake(c net.Conn) (string, uint64, error) {
	if err := c.SetDeadline(time.Now().Add(DefaultLinkDialTimeout)); err != nil {
		return "", 0, fmt.Errorf("set deadline: %w", err)
	}
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	if err := writeFrame(c, frameChallenge, append([]byte{linkVersion}, nonce...)); err != nil {
		return "", 0, fmt.Errorf("send challenge: %w", err)
	}
	typ, payload, _, err := readFrame(c, nil, maxHandshakeFrame)
	if err != nil {
		return "", 0, fmt.Errorf("read hello: %w", err)
	}
	if typ != frameHello {
		return "", 0, fmt.Errorf("%w: frame type %d, want hello", errMalformed, typ)
	}
	r := reader{b: payload}
	version := r.byte("version")
	name := r.string("name", maxNameLen)
	var epoch uint64
	if r.err == nil {
		if len(r.b) < 8 {
			r.fail("epoch: short")
		} else {
			epoch, r.b = binary.BigEndian.Uint64(r.b), r.b[8:]
		}
	}
	mac := r.string("mac", 64)
	if err := r.end(); err != nil {
		return "", 0, err
	}
	if version != linkVersion {
		return "", 0, fmt.Errorf("%w: link version %d", errMalformed, version)
	}
	if name == "" || epoch == 0 {
		return "", 0, fmt.Errorf("%w: empty node name or zero epoch", errMalformed)
	}
	if len(s.secret) > 0 && !hmac.Equal([]byte(mac), linkMAC(s.secret, nonce, epoch, name)) {
		return "", 0, fmt.Errorf("node %q: secret does not match", name)
	}
	if err := writeFrame(c, frameWelcome, nil); err != nil {
		return "", 0, fmt.Errorf("send welcome: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return "", 0, fmt.Errorf("clear deadline: %w", err)
	}
	return name, epoch, nil
}

// LinkConfig configures Links. Zero fields take the defaults.
type LinkConfig struct {
	// Name is this node's name, sent in the hello.
	Name string
	// Secret is the cluster secret key; nil sends no MAC.
	Secret []byte
	// TLS, when not nil, is used to dial peers over TLS.
	TLS *tls.Config
	// Queue bounds the items per peer queued plus written and not yet
	// acknowledged; DefaultLinkQueue when zero.
	Queue int
	// BackoffMin and BackoffMax bound the delay between reconnection attempts,
	// which doubles after each failure.
	BackoffMin, BackoffMax time.Duration
	// WriteTimeout bounds one flush to a peer.
	WriteTimeout time.Duration
	// Store, when not nil, keeps this node's epoch and sequence numbers, and
	// Durable items until acknowledged; NewLinks reads it back. nil keeps
	// everything in memory only.
	Store session.Store
	// OnUp, when not nil, is called from the link's goroutine each time a link
	// to peer completes its handshake, before anything is written on it. It
	// may call Links' methods but Close; while it runs, nothing is written to
	// that peer.
	OnUp func(peer string)
	// Logger nil means slog.Default().
	Logger *slog.Logger
}

// LinkStats are one outgoing link's counters.
type LinkStats struct {
	Node       string
	Addr       string
	Queued     int   // items waiting to be written
	Unacked    int   // items written, not yet acknowledged
	Sent       int64 // items written and flushed, again when written again
	Acked      int64 // items acknowledged by the peer
	Dropped    int64 // items refused by a full queue (or larger than a frame)
	Connected  bool
	Reconnects int64 // connections lost after the handshake
}

// Links keeps one outgoing link per peer node. Every method may be called from
// any goroutine; Send never blocks.
type Links struct {
	cfg    LinkConfig
	logger *slog.Logger
	epoch  uint64 // this node's epoch as a sender; fixed at NewLinks
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // link goroutines

	mu    sync.RWMutex
	links map[string]*Link // open links by peer name; guarded by mu
	peers map[string]*Link // every peer known, open or not; guarded by mu
}

// Link is the outgoing link to one peer: its items in sequence order (written
// and unacknowledged first, then queued) and the goroutine that writes them on
// a connection, reconnecting with backoff. A Link outlives its closing by
// Update, keeping its sequence numbers and durable items for when the peer
// comes back.
type Link struct {
	name   string
	wake   chan struct{} // capacity 1: there may be more to write
	room   chan struct{} // closed, and replaced, when acks make room in the queue; guarded by mu
	redial chan struct{} // capacity 1: dial now rather than after the backoff

	cancel context.CancelFunc // of the current goroutine; guarded by Links.mu
	done   chan struct{}      // closed when the current goroutine returns; guarded by Links.mu

	mu       sync.Mutex
	addr     string        // read at each dial; guarded by mu
	open     bool          // Send accepts items; guarded by mu
	items    fifo[outItem] // ascending seq; guarded by mu
	written  int           // items at the front written on the current connection; guarded by mu
	next     uint64        // sequence number of the next item; guarded by mu
	reserved uint64        // sequence numbers below it are reserved in the store; guarded by mu

	// durable: sequence numbers below it are reserved in the store durably, so
	// they may be written on a connection. Only meaningful with a store.
	durable                          atomic.Uint64
	reserveFailed                    atomic.Bool
	sent, acked, dropped, reconnects atomic.Int64
	connected                        atomic.Bool
}

// NewLinks returns a manager with no links; Update or Dial opens them. With a
// store it reads back this node's epoch, sequence numbers and the durable items
// not yet acknowledged, which are sent when a link to their peer opens. An
// error reading the store is logged; what could be read is used.
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
	l := &Links{cfg: cfg, logger: cfg.Logger, links: make(map[string]*Link), peers: make(map[string]*Link)}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if cfg.Store == nil {
		l.epoch = newEpoch()
		return l
	}
	st, err := loadSenderState(cfg.Store, l.logger)
	if err != nil {
		l.logger.Error("cluster links: store not fully read", "err", err)
	}
	l.epoch = st.epoch
	for name, p := range st.peers {
		k := newLink(name)
		k.reserved = p.reserved
		k.next = max(p.reserved, 1)
		if n := len(p.items); n > 0 {
			k.next = max(k.next, p.items[n-1].seq+1)
		}
		if !st.fresh {
			k.durable.Store(p.reserved)
		}
		for _, it := range p.items {
			k.items.push(it)
		}
		l.peers[name] = k
	}
	return l
}

func newLink(name string) *Link {
	return &Link{name: name, wake: make(chan struct{}, 1), redial: make(chan struct{}, 1), room: make(chan struct{}), next: 1}
}

// Dial opens the link to peer name at addr, or moves an existing one to addr
// (its queue is kept; the next connection uses the new address); a link that
// waits to dial again dials at once.
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
		signal(k.redial)
		return
	}
	if l.ctx.Err() != nil {
		return
	}
	k := l.peers[name]
	if k == nil {
		k = newLink(name)
		l.peers[name] = k
	}
	k.mu.Lock()
	k.addr, k.open, k.written = addr, true, 0
	res := l.reserveLocked(k)
	k.mu.Unlock()
	ctx, cancel := context.WithCancel(l.ctx)
	prev, done := k.done, make(chan struct{})
	k.cancel, k.done = cancel, done
	l.links[name] = k
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev // the goroutine of the link's previous opening
		}
		l.run(ctx, k)
	}()
	l.awaitReservation(k, res)
}

// Update makes the set of links match members (peer name to link address): it
// opens links to new peers, moves links whose address changed and closes links
// to peers absent from members, dropping what they had queued, except the
// items written to the store (Durable ones, with a store), which are sent if
// the peer comes back. This node's own name and empty addresses are skipped.
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
			k.mu.Lock()
			k.open, k.written = false, 0
			stored := l.cfg.Store != nil
			k.items.filter(func(it *outItem) bool { return stored && it.Durable })
			k.mu.Unlock()
		}
	}
}

// SendAll queues it, not durable, for every peer with a link; a full queue
// drops it, as Send does.
func (l *Links) SendAll(it Item) {
	l.mu.RLock()
	names := make([]string, 0, len(l.links))
	for name := range l.links {
		names = append(names, name)
	}
	l.mu.RUnlock()
	it.Durable = false
	for _, name := range names {
		l.Send(name, it)
	}
}

// Send queues it for peer node. queued is false when there is no link to node
// (not counted) or the peer's queue is full (counted as a drop), as it is for
// a body larger than a frame can carry. stored is true when the item was
// written to LinkConfig.Store (Durable items with a store), so that the caller
// may wait for Store.Barrier before acknowledging its own client. Never
// blocks (with a store, beyond the store's own pushback on Set). it.Body is
// shared read-only until acknowledged.
func (l *Links) Send(node string, it Item) (queued, stored bool) {
	queued, stored, room := l.send(node, it)
	if room != nil {
		l.mu.RLock()
		if k := l.links[node]; k != nil {
			k.dropped.Add(1)
		}
		l.mu.RUnlock()
	}
	return queued, stored
}

// SendWait is Send, except that while the peer's queue is full it waits for
// room, up to timeout: the caller is held back instead of the item dropped.
func (l *Links) SendWait(node string, it Item, timeout time.Duration) (queued, stored bool) {
	var deadline <-chan time.Time
	for {
		queued, stored, room := l.send(node, it)
		if queued || room == nil {
			return queued, stored
		}
		if deadline == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-room:
		case <-deadline:
			l.mu.RLock()
			k := l.links[node]
			l.mu.RUnlock()
			if k != nil {
				k.dropped.Add(1)
			}
			return false, false
		case <-l.ctx.Done():
			return false, false
		}
	}
}

// send is Send; when the queue is full it returns, without counting a drop,
// the channel that is closed when there is room.
func (l *Links) send(node string, it Item) (queued, stored bool, room <-chan struct{}) {
	l.mu.RLock()
	k := l.links[node]
	l.mu.RUnlock()
	if k == nil {
		return false, false, nil
	}
	if len(it.Body) > maxItemBody {
		k.dropped.Add(1)
		l.logger.Warn("cluster link: item larger than a frame", "peer", node, "kind", it.Kind, "bytes", len(it.Body))
		return false, false, nil
	}
	st := l.cfg.Store
	k.mu.Lock()
	if !k.open {
		k.mu.Unlock()
		return false, false, nil
	}
	if k.items.len() >= l.cfg.Queue {
		room := k.room
		k.mu.Unlock()
		return false, false, room
	}
	seq := k.next
	k.next++
	res := l.reserveLocked(k)
	if it.Durable && st != nil {
		v := make([]byte, 0, 1+len(it.Body))
		st.Set(linkOutKey(node, seq), append(append(v, it.Kind), it.Body...))
		stored = true
	}
	k.items.push(outItem{seq: seq, Item: it})
	k.mu.Unlock()
	l.awaitReservation(k, res)
	signal(k.wake)
	return true, stored, nil
}

// reserveLocked reserves sequence numbers ahead in the store when fewer than
// half a block is left, returning the new reservation for awaitReservation, or
// 0. k.mu is held, which keeps the store's writes in sequence order.
func (l *Links) reserveLocked(k *Link) uint64 {
	if l.cfg.Store == nil {
		return 0
	}
	if k.reserveFailed.Swap(false) {
		k.reserved = min(k.reserved, k.durable.Load())
	}
	if k.reserved > k.next+linkReserveBlock/2 {
		return 0
	}
	k.reserved = k.next + linkReserveBlock
	l.cfg.Store.Set(linkNextKey(k.name), be64(k.reserved))
	return k.reserved
}

// awaitReservation lets k write sequence numbers below res once the store has
// made the reservation durable. It takes no lock: the callback runs on the
// store's goroutine, which a writer holding k.mu may be waiting for.
func (l *Links) awaitReservation(k *Link, res uint64) {
	if res == 0 {
		return
	}
	l.cfg.Store.Barrier(func(err error) {
		if err != nil {
			k.reserveFailed.Store(true)
			l.logger.Error("cluster link: sequence numbers not reserved", "peer", k.name, "err", err)
			return
		}
		for {
			d := k.durable.Load()
			if d >= res || k.durable.CompareAndSwap(d, res) {
				break
			}
		}
		signal(k.wake)
	})
}

// Connected reports whether the link to node is open and connected.
func (l *Links) Connected(node string) bool {
	l.mu.RLock()
	k := l.links[node]
	l.mu.RUnlock()
	return k != nil && k.connected.Load()
}

// Stats returns each link's counters, sorted by peer name.
func (l *Links) Stats() []LinkStats {
	l.mu.RLock()
	out := make([]LinkStats, 0, len(l.links))
	for _, k := range l.links {
		k.mu.Lock()
		s := LinkStats{
			Node: k.name, Addr: k.addr,
			Queued: k.items.len() - k.written, Unacked: k.written,
		}
		k.mu.Unlock()
		s.Sent, s.Acked, s.Dropped = k.sent.Load(), k.acked.Load(), k.dropped.Load()
		s.Connected, s.Reconnects = k.connected.Load(), k.reconnects.Load()
		out = append(out, s)
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b LinkStats) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// Close closes every link and waits for their goroutines; items not yet
// acknowledged are dropped, except from the store.
func (l *Links) Close() {
	l.mu.Lock()
	l.cancel()
	for _, k := range l.links {
		k.mu.Lock()
		k.open = false
		k.mu.Unlock()
	}
	clear(l.links)
	l.mu.Unlock()
	l.wg.Wait()
}

// run owns one link: it connects, writes the items, and reconnects until ctx
// ends.
func (l *Links) run(ctx context.Context, k *Link) {
	log := l.logger.With("peer", k.name)
	backoff := l.cfg.BackoffMin
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
			case <-k.redial:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, l.cfg.BackoffMax)
			continue
		}
		failures, backoff = 0, l.cfg.BackoffMin
		log.Debug("cluster link up", "addr", addr)
		k.mu.Lock()
		k.written = 0 // written again first, in order
		k.mu.Unlock()
		k.connected.Store(true)
		if l.cfg.OnUp != nil {
			l.cfg.OnUp(k.name)
		}
		err = l.pump(ctx, k, c)
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
		mac = linkMAC(l.cfg.Secret, payload[1:], l.epoch, l.cfg.Name)
	}
	b := []byte{linkVersion}
	b = appendString(b, l.cfg.Name)
	b = binary.BigEndian.AppendUint64(b, l.epoch)
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

// pump writes k's items onto c, the unacknowledged ones first, until the
// connection fails or ctx ends. A reader goroutine takes the peer's acks.
func (l *Links) pump(ctx context.Context, k *Link, c net.Conn) error {
	dead := make(chan struct{})
	var readErr error
	go func() {
		readErr = l.readAcks(k, c)
		close(dead)
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
		<-dead
	}()

	bw := bufio.NewWriterSize(c, 64<<10)
	var batch []outItem
	var payload []byte
	var unflushed int64
	ping := time.NewTimer(DefaultLinkHeartbeat)
	defer ping.Stop()
	for {
		select {
		case <-dead:
			return readErr
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		batch = l.take(k, batch[:0])
		if len(batch) == 0 {
			if unflushed > 0 {
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				k.sent.Add(unflushed)
				unflushed = 0
			}
			ping.Reset(DefaultLinkHeartbeat)
			select {
			case <-k.wake:
			case <-ping.C:
				if err := c.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout)); err != nil {
					return fmt.Errorf("set write deadline: %w", err)
				}
				if err := writeFrame(c, framePing, nil); err != nil {
					return fmt.Errorf("write ping: %w", err)
				}
			case <-dead:
				return readErr
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		payload = appendItems(payload[:0], batch)
		clear(batch)
		if err := c.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout)); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
		if err := writeFrame(bw, frameItems, payload); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		unflushed += int64(len(batch))
	}
}

// take appends to batch the next items to write, as many as one frame holds,
// and counts them as written.
func (l *Links) take(k *Link, batch []outItem) []outItem {
	k.mu.Lock()
	defer k.mu.Unlock()
	limit := uint64(1<<64 - 1)
	if l.cfg.Store != nil {
		limit = k.durable.Load()
	}
	size := 1 + binary.MaxVarintLen64 // type and count
	var prev uint64
	for i := k.written; i < k.items.len(); i++ {
		it := k.items.at(i)
		if it.seq >= limit {
			break
		}
		add := itemSize(prev, *it)
		if len(batch) > 0 && size+add > MaxLinkFrame {
			break
		}
		batch = append(batch, *it)
		size += add
		prev = it.seq
	}
	k.written += len(batch)
	return batch
}

// readAcks reads the peer's acks on c and applies them until c fails.
func (l *Links) readAcks(k *Link, c net.Conn) error {
	br := bufio.NewReaderSize(c, 512)
	var buf []byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(DefaultLinkTimeout)); err != nil {
			return err
		}
		typ, payload, nb, err := readFrame(br, buf, maxAckFrame)
		buf = nb
		if err != nil {
			return err
		}
		if typ == framePing {
			continue
		}
		if typ != frameAck {
			return fmt.Errorf("%w: frame type %d, want ack", errMalformed, typ)
		}
		seq, err := decodeAck(payload)
		if err != nil {
			return err
		}
		if err := l.ack(k, seq); err != nil {
			return err
		}
	}
}

// ack forgets k's items up to seq, deleting the durable ones from the store.
func (l *Links) ack(k *Link, seq uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if seq >= k.next {
		return fmt.Errorf("%w: ack %d beyond the last item sent, %d", errMalformed, seq, k.next-1)
	}
	n := 0
	for n < k.items.len() && k.items.at(n).seq <= seq {
		if it := k.items.at(n); it.Durable && l.cfg.Store != nil {
			l.cfg.Store.Delete(linkOutKey(k.name, it.seq))
		}
		n++
	}
	if n > 0 {
		k.items.drop(n)
		k.written = max(0, k.written-n)
		k.acked.Add(int64(n))
		close(k.room)
		k.room = make(chan struct{})
	}
	return nil
}
