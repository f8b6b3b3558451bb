package broker

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// Buffer sizes per connection: small, so that idle connections stay cheap; the
// reader copies larger packets into a buffer of their own.
const (
	readBufferSize  = 2048
	writeBufferSize = 4096
)

// writeBatch is how many messages the writer takes from the session at a time.
const writeBatch = 64

// ctrl is a packet other than an outbound PUBLISH, queued for the writer. The
// acknowledgements are kept by value, so that queueing one does not allocate.
type ctrl struct {
	t    mqtt.PacketType
	id   uint16
	code mqtt.ReasonCode
	pkt  mqtt.Packet // CONNACK, SUBACK, UNSUBACK, DISCONNECT with properties; nil for the others
}

// conn is one client connection: a reader that runs the protocol and a writer
// that sends what the reader and the session queue for it. Neither holds a
// goroutine while it has nothing to do: the writer runs only while something is
// queued, and the reader of a plain TCP connection parks in the poller while its
// socket is empty, so that an idle connection costs a few structs and no stack.
type conn struct {
	b        *Broker
	nc       net.Conn
	inner    net.Conn // nc as the listener gave it, for the poller
	listener string
	log      *slog.Logger

	// Set by the reader while handling CONNECT, read-only afterwards.
	version       mqtt.Version
	clientID      string
	username      string
	cs            *clientSession
	keepAlive     time.Duration
	window        int    // outbound QoS 1 and 2 messages inflight at most
	maxOut        int    // the client's Maximum Packet Size; 0 = the protocol's
	aliasMaxOut   uint16 // the client's Topic Alias Maximum
	problemInfo   bool   // 5.0 Request Problem Information
	connectExpiry uint32 // session expiry interval of the CONNECT, for DISCONNECT's rule

	aliasIn     map[uint16]string // inbound topic aliases; reader only
	clientInfo  *ClientInfo       // for Hooks; made by info() after CONNECT
	limiter     *limiter          // publish rate limit; nil: none
	connectedAt time.Time         // when CONNACK went out

	ctrlMu sync.Mutex
	ctrls  []ctrl // guarded by ctrlMu

	// The reader's state. rd, sock, lastRead and armed belong to the goroutine
	// that reads, which rstate hands from one to the next.
	rd            *readState      // nil while parked
	sock          sockReader      // rd's source
	raw           syscall.RawConn // set when the connection can park in poller
	poller        *poller
	rstate        atomic.Int32 // readerRunning, readerWoken, readerParked or readerEnded
	lastRead      time.Time    // when the reader last went to wait
	shortDeadline bool         // the read deadline is wait's, not the keep alive's
	kaTimer       *time.Timer  // enforces the keep alive while parked
	armed         bool         // registered with poller; set before its first park
	pollKey       int32        // the socket's descriptor, poller's key for it

	// The writer's state. A writer goroutine runs while wpending is not zero;
	// aliasOut, resent and wtimer belong to it.
	wpending   atomic.Int64
	lingering  atomic.Bool   // the writer waits on wwake before it stops
	wwake      chan struct{} // wakes a lingering writer
	writerDone chan struct{} // closed when a writer stops because the connection ended
	aliasOut   map[string]uint16
	resent     bool        // the inflight messages of a resumed session went out
	wtimer     *time.Timer // ends a writer's lingering

	closeOnce   sync.Once
	closed      chan struct{} // closed when the connection is shut
	kicked      atomic.Int32  // reason code of a server-initiated disconnect, +1
	pendingAcks atomic.Int32  // acknowledgements waiting for a store Barrier
	graceful    atomic.Bool   // the client sent DISCONNECT
	sendWill    atomic.Bool   // 5.0 DISCONNECT 0x04
	settledC    chan struct{} // closed once the session is settled after the end
}

// The reader's states.
const (
	readerRunning = iota
	readerWoken   // running, and shut since it last looked
	readerParked
	readerEnded
)

// writerEnded is added to wpending when the connection ends, so that no writer
// starts afterwards.
const writerEnded = 1 << 40

func newConn(b *Broker, nc net.Conn, listener string) *conn {
	c := &conn{
		b:          b,
		nc:         &countingConn{Conn: nc, stats: &b.stats},
		inner:      nc,
		listener:   listener,
		log:        b.log.With("listener", listener, "remote", nc.RemoteAddr().String()),
		closed:     make(chan struct{}),
		wwake:      make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		settledC:   make(chan struct{}),
	}
	c.sock.c = c
	c.wpending.Store(1) // held until CONNACK is queued: see startWriter
	return c
}

// countingConn counts the bytes a connection moves.
type countingConn struct {
	net.Conn
	stats *Stats
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.stats.BytesReceived.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.stats.BytesSent.Add(int64(n))
	return n, err
}

// queue hands a packet to the writer.
func (c *conn) queue(x ctrl) {
	c.ctrlMu.Lock()
	c.ctrls = append(c.ctrls, x)
	c.ctrlMu.Unlock()
	c.wakeWriter()
}

// wakeWriter makes sure a writer runs to send what was just queued.
func (c *conn) wakeWriter() {
	if c.wpending.Add(1) == 1 {
		go c.runWriter()
	} else if c.lingering.Load() {
		select {
		case c.wwake <- struct{}{}:
		default:
		}
	}
}

// startWriter lets the writer run once CONNACK is queued: nothing, not even a
// message of the session, goes out before it.
func (c *conn) startWriter() {
	if c.wpending.Add(-1) > 0 {
		go c.runWriter()
	}
}

// waitWriter stops writers from starting and waits for a running one to stop.
// Called once, after shutdown.
func (c *conn) waitWriter() {
	if c.wpending.Add(writerEnded) != writerEnded {
		<-c.writerDone
	}
}

// runWriter sends until nothing is left to send and no wake came meanwhile. Each
// wake while it runs makes it look once more; a writer that stops on the end of
// the connection closes writerDone, and no other starts after it. Before it
// stops, a writer waits parkAfter for more, so that a connection that gets
// messages often keeps its writer and the runtime's fast wake-up.
func (c *conn) runWriter() {
	for {
		n := c.wpending.Load()
		if n >= writerEnded || c.isClosed() || !c.writeAll() {
			close(c.writerDone)
			return
		}
		if c.wpending.Load() != n {
			continue
		}
		c.lingering.Store(true)
		woken := c.wpending.Load() != n || c.linger()
		c.lingering.Store(false)
		if !woken && c.wpending.CompareAndSwap(n, 0) {
			return
		}
	}
}

// linger waits up to parkAfter for a wake, and reports whether one came.
func (c *conn) linger() bool {
	if c.wtimer == nil {
		c.wtimer = time.NewTimer(parkAfter)
	} else {
		c.wtimer.Reset(parkAfter)
	}
	select {
	case <-c.wwake:
		c.wtimer.Stop()
		return true
	case <-c.closed:
		c.wtimer.Stop()
		return true // the loop sees the end
	case <-c.wtimer.C:
		return false
	}
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// kick disconnects the client from another goroutine: 5.0 clients get a
// DISCONNECT with code first. Safe to call more than once.
func (c *conn) kick(code mqtt.ReasonCode) { c.kickWith(code, "") }

// kickWith is kick with a Reason String for the DISCONNECT, which MQTT 5 allows
// whatever the client's Request Problem Information [MQTT-3.1.2-29].
func (c *conn) kickWith(code mqtt.ReasonCode, reason string) {
	if !c.kicked.CompareAndSwap(0, int32(code)+1) {
		return
	}
	if c.version == mqtt.Version5 && c.cs != nil {
		d := &mqtt.Disconnect{ReasonCode: code}
		if reason != "" && mqtt.ValidString(reason) {
			d.Properties.ReasonString = reason
			d.Properties.Set(mqtt.PropReasonString)
		}
		c.queue(ctrl{t: mqtt.DISCONNECT, code: code, pkt: d})
		// The writer closes the connection once the DISCONNECT is out; bound the wait.
		time.AfterFunc(time.Second, c.shutdown)
		return
	}
	c.shutdown()
}

// shutdown closes the network connection once, which ends the reader and the
// writer; a parked reader is woken to see it.
func (c *conn) shutdown() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
		c.unpark()
	})
}

// serve runs the connection: CONNECT, then the reader until it parks or the
// connection ends.
func (c *conn) serve() {
	c.rd = getReadState(&c.sock, c.b.opts.MaxPacketSize, 0)
	if !c.connect(c.rd.r) {
		c.shutdown()
		c.rd = putReadState(c.rd)
		c.finish()
		return
	}
	c.startWriter()
	c.raw, c.poller = pollable(c)
	if parked, err := c.readLoop(); !parked {
		c.end(err)
	}
}

// resume runs a parked reader again once its socket has data or the connection
// was shut.
func (c *conn) resume() {
	c.rd = getReadState(&c.sock, c.b.opts.MaxPacketSize, c.version)
	if parked, err := c.readLoop(); !parked {
		c.end(err)
	}
}

// end settles a connection whose reader stopped for good, err saying why.
func (c *conn) end(err error) {
	if c.kicked.Load() != 0 {
		<-c.closed // the writer sends the DISCONNECT first; kick bounds the wait
	}
	c.shutdown()
	c.rstate.Store(readerEnded)
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	if c.poller != nil {
		c.poller.forget(c)
	}
	c.rd = putReadState(c.rd)
	c.waitWriter()
	c.b.stats.ClientsConnected.Add(-1)
	c.b.disconnected(c, err)
	c.finish()
}

// finish takes the connection off the broker's list.
func (c *conn) finish() {
	b := c.b
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	b.stats.ConnectionsCurrent.Add(-1)
	b.wg.Done()
}

// readLoop reads and handles packets until the connection ends or, when it can
// park, until its socket is empty. It reports whether it parked, and otherwise
// why the connection ended.
func (c *conn) readLoop() (parked bool, err error) {
	for {
		now := time.Now()
		busy := now.Sub(c.lastRead) < parkAfter
		c.lastRead = now
		waits := c.raw != nil && c.rd.br.Buffered() == 0
		if !(waits && busy) { // wait sets its own deadline
			switch {
			case c.keepAlive > 0:
				// [MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24]): one and a half times the keep alive.
				_ = c.nc.SetReadDeadline(now.Add(c.keepAlive * 3 / 2))
			case c.shortDeadline:
				_ = c.nc.SetReadDeadline(time.Time{})
			}
			c.shortDeadline = false
		}
		if waits {
			ready, parked, err := c.wait(now, busy)
			if parked || err != nil {
				return parked, err
			}
			if !ready { // woken as it parked, or it cannot park: look again
				continue
			}
		}
		p, err := c.rd.r.ReadPacket()
		if err != nil {
			return false, c.readError(err)
		}
		c.b.stats.PacketsReceived[p.Type()].Add(1)
		c.b.traceIn(c, p)
		if err := c.handle(p); err != nil {
			return false, err
		}
		if c.graceful.Load() {
			return false, nil
		}
	}
}

// parkAfter is how long a reader that has just had a packet waits for the next
// in its goroutine before it parks: a connection that sends often keeps its
// goroutine and the runtime's fast wake-up, one that has gone quiet gives both up.
const parkAfter = 20 * time.Millisecond

// wait waits for the first byte of the next packet on a connection that can
// park, with nothing buffered. A busy connection waits in its goroutine for up
// to parkAfter, another one looks without waiting; then it parks. It reports
// whether the next packet has begun to arrive, whether the reader parked, or the
// error that ends the connection; with none of them, the reader looks again.
func (c *conn) wait(now time.Time, busy bool) (ready, parked bool, err error) {
	if busy {
		d := parkAfter
		if c.keepAlive > 0 {
			d = min(d, c.keepAlive*3/2)
		}
		_ = c.nc.SetReadDeadline(now.Add(d))
		c.shortDeadline = true
		_, err = c.rd.br.Peek(1)
		if err != nil && (!errors.Is(err, os.ErrDeadlineExceeded) ||
			c.keepAlive > 0 && time.Since(now) >= c.keepAlive*3/2) {
			return false, false, c.readError(err)
		}
		if err == nil && c.rd.r.PacketBuffered() {
			return true, false, nil // the next loop sets the deadline again
		}
		// Back to the keep alive's deadline, which also bounds the rest of a
		// packet that is slow to come.
		var ka time.Time
		if c.keepAlive > 0 {
			ka = now.Add(c.keepAlive * 3 / 2)
		}
		_ = c.nc.SetReadDeadline(ka)
		c.shortDeadline = false
		if err == nil {
			return true, false, nil
		}
	} else {
		c.sock.nonblock = true
		_, err = c.rd.br.Peek(1)
		c.sock.nonblock = false
		if err == nil {
			return true, false, nil
		}
		if !errors.Is(err, errWouldBlock) {
			return false, false, c.readError(err)
		}
	}
	return false, c.park(), nil
}

// park gives up the reader's goroutine and buffers until the socket has data
// again or the connection is shut, and reports true. It reports false when the
// reader must go on instead: it was woken as it looked, or the connection cannot
// wait in the poller (raw is then nil). The caller returns at once after true:
// another goroutine may already read.
func (c *conn) park() bool {
	c.rd = putReadState(c.rd)
	if c.keepAlive > 0 {
		d := time.Until(c.lastRead.Add(c.keepAlive * 3 / 2))
		if c.kaTimer == nil {
			c.kaTimer = time.AfterFunc(d, c.keepAliveExpired)
		} else {
			c.kaTimer.Reset(d)
		}
	}
	// Whatever arm does to c happens before the CAS: once parked, c may belong
	// to another goroutine.
	raw, first := c.raw, !c.armed
	c.armed = true
	if c.rstate.CompareAndSwap(readerRunning, readerParked) {
		err := c.poller.arm(raw, c.pollKey, first)
		if err == nil {
			return true
		}
		if !c.rstate.CompareAndSwap(readerParked, readerRunning) {
			return true // woken meanwhile: the new reader goes on
		}
		c.log.Debug("connection cannot park", "client_id", c.clientID, "err", err)
		c.raw = nil
	}
	// Woken while it looked (the connection was shut), or it cannot park.
	c.rstate.Store(readerRunning)
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	c.rd = getReadState(&c.sock, c.b.opts.MaxPacketSize, c.version)
	return false
}

// unpark starts a reader for a parked connection, and tells a running one that
// it was woken, so that it looks at its socket again before it parks.
func (c *conn) unpark() {
	for {
		switch c.rstate.Load() {
		case readerParked:
			if c.rstate.CompareAndSwap(readerParked, readerRunning) {
				if c.kaTimer != nil {
					c.kaTimer.Stop()
				}
				go c.resume()
				return
			}
		case readerRunning:
			if c.rstate.CompareAndSwap(readerRunning, readerWoken) {
				return
			}
		default: // already woken, or ended
			return
		}
	}
}

// keepAliveExpired closes a parked connection whose client sent nothing for one
// and a half times its keep alive.
func (c *conn) keepAliveExpired() {
	if c.rstate.Load() != readerParked {
		return
	}
	c.log.Info("closing connection: keep alive expired", "client_id", c.clientID)
	c.kick(mqtt.KeepAliveTimeout)
}

// readState is a reader's buffer and decoder, pooled: a parked connection holds
// none.
type readState struct {
	br *bufio.Reader
	r  *mqtt.Reader
}

var readStates = sync.Pool{New: func() any {
	br := bufio.NewReaderSize(nil, readBufferSize)
	return &readState{br: br, r: mqtt.NewReader(br)}
}}

// getReadState returns a pooled reader on src for protocol version v.
func getReadState(src io.Reader, maxPacket int, v mqtt.Version) *readState {
	rd := readStates.Get().(*readState)
	rd.br.Reset(src)
	rd.r.MaxPacketSize = maxPacket
	rd.r.Version = v
	return rd
}

// putReadState returns rd, which has nothing buffered, to the pool, and returns nil.
func putReadState(rd *readState) *readState {
	if rd != nil {
		rd.br.Reset(nil)
		readStates.Put(rd)
	}
	return nil
}

// errWouldBlock is a non-blocking read's report of an empty socket.
var errWouldBlock = errors.New("no data")

// sockReader reads the connection for its reader: through nc, or without
// blocking when nonblock is set, which is only ever done on a connection with raw.
type sockReader struct {
	c        *conn
	nonblock bool
}

func (s *sockReader) Read(p []byte) (int, error) {
	if !s.nonblock {
		return s.c.nc.Read(p)
	}
	n, err := readNow(s.c.raw, p)
	s.c.b.stats.BytesReceived.Add(int64(n))
	return n, err
}

// protoErr is a violation found by the broker rather than the decoder.
func protoErr(code mqtt.ReasonCode, reason string) error {
	return &mqtt.Error{Code: code, Reason: reason}
}

// readError turns a read or handling failure into the connection's end, sending
// a 5.0 client the DISCONNECT reason code first.
func (c *conn) readError(err error) error {
	var pe *mqtt.Error
	switch {
	case errors.As(err, &pe):
		c.b.stats.ProtocolErrors.Add(1)
		c.log.Info("closing connection: protocol violation", "client_id", c.clientID, "err", err)
		c.kickWith(pe.Code, pe.Reason)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Info("closing connection: keep alive expired", "client_id", c.clientID)
		c.kick(mqtt.KeepAliveTimeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("connection read failed", "client_id", c.clientID, "err", err)
	}
	return err
}

// handle runs one packet from a connected client.
func (c *conn) handle(p mqtt.Packet) error {
	switch p := p.(type) {
	case *mqtt.Publish:
		return c.publish(p)
	case *mqtt.Puback:
		if _, err := c.cs.s.Puback(p.PacketID); err != nil {
			c.log.Debug("PUBACK for unknown packet identifier", "client_id", c.clientID, "packet_id", p.PacketID)
		}
	case *mqtt.Pubrec:
		f, err := c.cs.s.Pubrec(p.PacketID, p.ReasonCode.IsError())
		switch {
		case err != nil:
			if c.version == mqtt.Version5 { // [MQTT-4.3.3-4] answer with 0x92
				c.queue(ctrl{t: mqtt.PUBREL, id: p.PacketID, code: mqtt.PacketIdentifierNotFound})
			}
		case !p.ReasonCode.IsError():
			// The new state is durable before PUBREL goes, so that a restart never
			// sends the PUBLISH again after its PUBREL [MQTT-4.3.3-6].
			c.sendAck(ctrl{t: mqtt.PUBREL, id: f.PacketID}, c.cs.s.Persistent())
		}
	case *mqtt.Pubcomp:
		if _, err := c.cs.s.Pubcomp(p.PacketID); err != nil {
			c.log.Debug("PUBCOMP for unknown packet identifier", "client_id", c.clientID, "packet_id", p.PacketID)
		}
	case *mqtt.Pubrel:
		code := mqtt.Success
		if !c.cs.s.Release(p.PacketID) && c.version == mqtt.Version5 {
			code = mqtt.PacketIdentifierNotFound
		}
		// [MQTT-4.3.3-10]; the identifier's release is durable first, or a restart
		// would take the next message with this identifier for a duplicate.
		c.sendAck(ctrl{t: mqtt.PUBCOMP, id: p.PacketID, code: code}, c.cs.s.Persistent())
	case *mqtt.Subscribe:
		return c.subscribe(p)
	case *mqtt.Unsubscribe:
		c.unsubscribe(p)
	case *mqtt.Pingreq:
		c.queue(ctrl{t: mqtt.PINGRESP}) // [MQTT-3.12.4-1]
	case *mqtt.Disconnect:
		return c.disconnect(p)
	case *mqtt.Connect: // [MQTT-3.1.0-2] a second CONNECT is a protocol violation
		return c.readError(protoErr(mqtt.ProtocolError, "second CONNECT"))
	case *mqtt.Auth:
		// Enhanced authentication is not offered: CONNACK never announces a method.
		return c.readError(protoErr(mqtt.ProtocolError, "AUTH without an authentication method"))
	default: // CONNACK, SUBACK, UNSUBACK, PINGRESP are sent by servers only
		return c.readError(protoErr(mqtt.ProtocolError, p.Type().String()+" from a client"))
	}
	return nil
}

// publish handles a PUBLISH from the client.
func (c *conn) publish(p *mqtt.Publish) error {
	b := c.b
	b.stats.MessagesReceived.Add(1)
	if err := c.throttle(len(p.Payload) + len(p.Topic)); err != nil {
		return c.readError(err)
	}
	if c.version == mqtt.Version5 {
		pp := &p.Properties
		if pp.Has(mqtt.PropSubscriptionID) { // [MQTT-3.3.4-6]
			return c.readError(protoErr(mqtt.ProtocolError, "subscription identifier in a client's PUBLISH"))
		}
		if pp.Has(mqtt.PropTopicAlias) {
			alias := pp.TopicAlias
			if alias > b.opts.TopicAliasMaximum { // [MQTT-3.3.2-9]
				return c.readError(protoErr(mqtt.TopicAliasInvalid, "topic alias above the maximum"))
			}
			if p.Topic == "" {
				t, ok := c.aliasIn[alias]
				if !ok {
					return c.readError(protoErr(mqtt.ProtocolError, "unknown topic alias"))
				}
				p.Topic = t
			} else {
				if c.aliasIn == nil {
					c.aliasIn = make(map[uint16]string)
				}
				c.aliasIn[alias] = p.Topic
			}
		}
	}
	if p.Retain && !b.opts.RetainAvailable { // [MQTT-3.3.1-15]
		return c.readError(protoErr(mqtt.RetainNotSupported, "retain is not available"))
	}
	code := mqtt.Success
	switch {
	case b.limits.Load().MaxTopicLevels > 0 && topicLevels(p.Topic) > b.limits.Load().MaxTopicLevels:
		code = mqtt.TopicNameInvalid
	case strings.HasPrefix(p.Topic, "$SYS"), !c.canPublish(p.Topic):
		code = mqtt.NotAuthorized
	case p.Properties.Has(mqtt.PropPayloadFormat) && p.Properties.PayloadFormat == 1 && !utf8.Valid(p.Payload):
		code = mqtt.PayloadFormatInvalid // [MQTT-3.3.2-4] may be checked by the receiver
	}
	if cl := b.clusterOf(); cl != nil && !code.IsError() && !cl.PublishAllowed() {
		if c.version != mqtt.Version5 && p.QoS > mqtt.AtMostOnce {
			return errNetsplit
		}
		code = mqtt.ImplementationSpecificError
	}
	ackQoS := p.QoS // acknowledgements follow the QoS the client sent
	if hk := b.opts.Hooks; hk != nil && !code.IsError() {
		req := PublishRequest{Topic: p.Topic, QoS: p.QoS, Retain: p.Retain, Payload: p.Payload}
		code = hk.AuthOnPublish(c.info(), &req)
		if !code.IsError() {
			if req.Topic != p.Topic && mqtt.ValidTopicName(req.Topic) != nil {
				code = mqtt.TopicNameInvalid
			}
			p.Topic, p.Retain, p.Payload = req.Topic, req.Retain, req.Payload
			p.QoS = min(req.QoS, p.QoS)
		}
	}
	sync := false
	var slow *session.Session // a crowded queue this message went to
	if ackQoS == mqtt.ExactlyOnce {
		first, err := c.cs.s.ReceiveQoS2(p.PacketID, time.Now(), b.opts.ReceiveMaximum)
		if errors.Is(err, session.ErrQueueFull) { // [MQTT-3.3.4-9]
			return c.readError(protoErr(mqtt.ReceiveMaximumExceeded, "more QoS 2 messages than the receive maximum"))
		}
		if !first { // a duplicate: acknowledge it again, deliver nothing [MQTT-4.3.3-9]
			c.sendAck(ctrl{t: mqtt.PUBREC, id: p.PacketID}, false)
			return nil
		}
		if code.IsError() {
			c.cs.s.Release(p.PacketID) // nothing follows a failed PUBREC
		}
		sync = c.cs.s.Persistent()
	}
	if code.IsError() {
		c.log.Debug("PUBLISH refused", "client_id", c.clientID, "topic", p.Topic, "reason", code.String())
		b.stats.drop(&b.stats.DroppedNotAuthorized)
		// 3.x has no way to say no: the message is dropped and acknowledged.
		if c.version != mqtt.Version5 {
			code = mqtt.Success
		}
	} else {
		m := mqtt.NewMessage(p, c.clientID, time.Now())
		n, stored := b.publish(m, &slow)
		if n == 0 && c.version == mqtt.Version5 {
			code = mqtt.NoMatchingSubscribers
		}
		sync = sync || stored
	}
	switch ackQoS {
	case mqtt.AtLeastOnce:
		c.sendAck(c.ack(mqtt.PUBACK, p.PacketID, code), sync)
	case mqtt.ExactlyOnce:
		c.sendAck(c.ack(mqtt.PUBREC, p.PacketID, code), sync)
	}
	if slow != nil {
		// Read nothing more until the subscriber catches up: the client is held
		// back by TCP and by its inflight window, rather than its messages
		// dropped by the subscriber's queue.
		b.stats.PublishersPaced.Add(1)
		if !slow.WaitRoom(c.closed, paceLimit) && !c.isClosed() {
			b.stats.PaceStalls.Add(1)
		}
	}
	return nil
}

// paceLimit bounds how long a publisher waits for a crowded subscriber queue.
const paceLimit = time.Second

// sendAck queues an acknowledgement. With a session store, an acknowledgement
// that follows a store write (sync), or any acknowledgement while earlier ones
// wait, goes out only once the store has made those writes durable: an
// acknowledged message is not lost, and acknowledgements keep the order of the
// packets they answer [MQTT-4.6.0-2] [MQTT-4.6.0-3].
func (c *conn) sendAck(x ctrl, sync bool) {
	st := c.b.opts.SessionStore
	if st == nil || !sync && c.pendingAcks.Load() == 0 {
		c.queue(x)
		return
	}
	c.pendingAcks.Add(1)
	st.Barrier(func(err error) {
		c.pendingAcks.Add(-1)
		if err != nil {
			c.log.Error("store write failed; acknowledgement withheld", "err", err)
			c.kickWith(mqtt.UnspecifiedError, "store write failed")
			return
		}
		c.queue(x)
	})
}

// ack builds a PUBACK or PUBREC; a refusal carries a Reason String when the client
// asked for problem information [MQTT-3.1.2-29].
func (c *conn) ack(t mqtt.PacketType, id uint16, code mqtt.ReasonCode) ctrl {
	x := ctrl{t: t, id: id, code: code}
	if code.IsError() && c.problemInfo {
		a := mqtt.Ack{PacketID: id, ReasonCode: code}
		a.Properties.ReasonString = code.String()
		a.Properties.Set(mqtt.PropReasonString)
		if t == mqtt.PUBACK {
			x.pkt = (*mqtt.Puback)(&a)
		} else {
			x.pkt = (*mqtt.Pubrec)(&a)
		}
	}
	return x
}

func (c *conn) canPublish(topic string) bool {
	az := c.b.opts.Authorizer
	return az == nil || az.CanPublish(c.clientID, c.username, topic)
}

// subscribe handles SUBSCRIBE: one reason code per filter, then the retained messages.
func (c *conn) subscribe(p *mqtt.Subscribe) error {
	b := c.b
	var subID uint32
	if ids := p.Properties.SubscriptionIDs; len(ids) > 0 {
		if !b.opts.SubscriptionIDs { // MQTT 5.0 section 3.8.2.1.2
			return c.readError(protoErr(mqtt.SubscriptionIdentifiersNotSupported, "subscription identifiers are not available"))
		}
		subID = ids[0]
	}
	ack := &mqtt.Suback{PacketID: p.PacketID, ReasonCodes: make([]mqtt.ReasonCode, len(p.Subscriptions))}
	type pending struct {
		filter string
		opts   SubscriptionOptions
	}
	var retained []pending
	hk := b.opts.Hooks
	var reqs []SubscriptionRequest
	if hk != nil {
		reqs = make([]SubscriptionRequest, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			reqs[i] = SubscriptionRequest{Filter: s.Filter, QoS: s.QoS}
		}
		hk.AuthOnSubscribe(c.info(), reqs, ack.ReasonCodes)
	}
	var granted []SubscriptionRequest
	subscribed := false
	for i, s := range p.Subscriptions {
		if ack.ReasonCodes[i].IsError() { // refused by the hook
			continue
		}
		if hk != nil {
			s.Filter, s.QoS = reqs[i].Filter, min(reqs[i].QoS, s.QoS)
		}
		opts := SubscriptionOptions{QoS: s.QoS, NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished,
			RetainHandling: s.RetainHandling, SubscriptionID: subID}
		code, created := c.subscribeOne(s.Filter, opts)
		ack.ReasonCodes[i] = code
		if hk != nil && !code.IsError() {
			granted = append(granted, SubscriptionRequest{Filter: s.Filter, QoS: s.QoS})
		}
		if code.IsError() {
			continue
		}
		subscribed = true
		if _, _, shared := mqtt.SplitShared(s.Filter); shared {
			continue // retained messages are not sent for shared subscriptions (MQTT 5.0 section 4.8.2)
		}
		if s.RetainHandling == 0 || s.RetainHandling == 1 && created {
			retained = append(retained, pending{s.Filter, opts})
		}
	}
	if cl := b.clusterOf(); cl != nil && subscribed {
		cl.Sync()
	}
	c.queue(ctrl{t: mqtt.SUBACK, pkt: ack})
	if len(granted) > 0 {
		hk.OnSubscribe(c.info(), granted)
	}
	for _, r := range retained {
		b.sendRetained(c.cs, r.filter, r.opts)
	}
	return nil
}

// subscribeOne adds one subscription and returns its SUBACK code.
func (c *conn) subscribeOne(filter string, opts SubscriptionOptions) (mqtt.ReasonCode, bool) {
	b := c.b
	if err := mqtt.ValidTopicFilter(filter); err != nil {
		return mqtt.TopicFilterInvalid, false
	}
	_, plain, shared := mqtt.SplitShared(filter)
	if !shared {
		plain = filter
	}
	switch {
	case shared && !b.opts.SharedSubs:
		return mqtt.SharedSubscriptionsNotSupported, false
	case !b.opts.WildcardSubs && mqtt.HasWildcard(plain):
		return mqtt.WildcardSubscriptionsNotSupported, false
	case b.limits.Load().MaxTopicLevels > 0 && topicLevels(plain) > b.limits.Load().MaxTopicLevels:
		return mqtt.TopicFilterInvalid, false
	}
	if az := b.opts.Authorizer; az != nil && !az.CanSubscribe(c.clientID, c.username, plain) {
		return mqtt.NotAuthorized, false
	}
	if max := b.limits.Load().MaxSubscriptions; max > 0 {
		subs := b.tree.Subscriptions(c.clientID)
		if len(subs) >= max && !slices.ContainsFunc(subs, func(s Subscription) bool { return s.Filter == filter }) {
			return mqtt.QuotaExceeded, false
		}
	}
	created, err := b.tree.Subscribe(c.clientID, filter, opts)
	if err != nil {
		return mqtt.TopicFilterInvalid, false
	}
	c.cs.s.SaveSubscription(session.SubscriptionRecord{Filter: filter, SubscriptionID: opts.SubscriptionID,
		Options: mqtt.Subscription{QoS: opts.QoS, NoLocal: opts.NoLocal, RetainAsPublished: opts.RetainAsPublished,
			RetainHandling: opts.RetainHandling}})
	return mqtt.ReasonCode(opts.QoS), created // granted QoS: everything up to 2 is supported
}

// unsubscribe handles UNSUBSCRIBE.
func (c *conn) unsubscribe(p *mqtt.Unsubscribe) {
	ack := &mqtt.Unsuback{PacketID: p.PacketID, ReasonCodes: make([]mqtt.ReasonCode, len(p.Filters))}
	for i, f := range p.Filters {
		if !c.b.tree.Unsubscribe(c.clientID, f) {
			ack.ReasonCodes[i] = mqtt.NoSubscriptionExisted
			continue
		}
		c.cs.s.DeleteSubscription(f)
	}
	c.queue(ctrl{t: mqtt.UNSUBACK, pkt: ack}) // [MQTT-3.10.4-4]
	if hk := c.b.opts.Hooks; hk != nil {
		hk.OnUnsubscribe(c.info(), p.Filters)
	}
}

// disconnect handles the client's DISCONNECT.
func (c *conn) disconnect(p *mqtt.Disconnect) error {
	if c.version == mqtt.Version5 && p.Properties.Has(mqtt.PropSessionExpiry) {
		exp := p.Properties.SessionExpiry
		if c.connectExpiry == 0 && exp != 0 { // [MQTT-3.14.2-2]
			return c.readError(protoErr(mqtt.ProtocolError, "session expiry set at DISCONNECT after 0 at CONNECT"))
		}
		c.cs.s.SetExpiry(c.b.capExpiry(exp))
		c.cs.s.SaveMeta(time.Time{})
	}
	c.sendWill.Store(c.version == mqtt.Version5 && p.ReasonCode == mqtt.DisconnectWithWillMessage)
	c.graceful.Store(true) // [MQTT-3.14.4-3] the will is discarded unless 0x04
	return nil
}

// writeAll sends what is queued: packets from the reader first, then messages
// from the session while the inflight window allows, and flushes when nothing is
// left, so that a burst leaves in few writes. It reports false when the
// connection must end, having shut it.
func (c *conn) writeAll() bool {
	ws := writeStates.Get().(*writeState)
	w := ws.w
	w.Reset(c.nc)
	defer func() {
		w.Reset(nil)
		clear(ws.batch)
		ws.batch = ws.batch[:0]
		clear(ws.out)
		ws.out = ws.out[:0]
		writeStates.Put(ws)
	}()
	for {
		// Packets from the reader.
		c.ctrlMu.Lock()
		ws.batch, c.ctrls = c.ctrls, ws.batch[:0]
		c.ctrlMu.Unlock()
		for i := range ws.batch {
			x := &ws.batch[i]
			if err := c.writeCtrl(w, x); err != nil {
				c.shutdown()
				return false
			}
			if x.t == mqtt.DISCONNECT {
				_ = w.Flush()
				c.shutdown()
				return false
			}
			*x = ctrl{}
		}
		if !c.resent { // after CONNACK, the messages this session still owes [MQTT-4.4.0-1]
			c.resent = true
			if err := c.resend(w, &ws.pub); err != nil {
				c.shutdown()
				return false
			}
		}
		// Messages from the session, a batch at a time.
		ws.out = c.cs.s.NextBatch(ws.out[:0], writeBatch, c.window, time.Now(), c.expired)
		if len(ws.out) > 0 {
			for i := range ws.out {
				if ws.out[i].QoS == mqtt.ExactlyOnce {
					// Once for the batch: its QoS 2 identifiers are durable before any goes out.
					if !c.durable() {
						c.shutdown()
						return false
					}
					break
				}
			}
			for i := range ws.out {
				if err := c.writePublish(w, &ws.pub, &ws.out[i].Delivery, ws.out[i].PacketID, false, &c.aliasOut); err != nil {
					c.shutdown()
					return false
				}
				ws.out[i] = session.Outgoing{}
			}
			if len(ws.out) == writeBatch {
				continue // more may be waiting; look at the reader's packets first
			}
		}
		if w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				c.shutdown()
				return false
			}
		}
		return true
	}
}

// writeState is a writer's buffer and scratch space, pooled: a connection with
// nothing to send holds none.
type writeState struct {
	w     *bufio.Writer
	pub   mqtt.Publish
	batch []ctrl
	out   []session.Outgoing
}

var writeStates = sync.Pool{New: func() any {
	return &writeState{w: bufio.NewWriterSize(nil, writeBufferSize), out: make([]session.Outgoing, 0, writeBatch)}
}}

func (c *conn) expired(session.Delivery) { c.b.stats.MessagesExpired.Add(1) }

// durable waits until the packet identifier just given to a QoS 2 message of a
// persistent session is in the store, so that after a crash the message is sent
// again with the same identifier and never taken for a new one. It reports false
// when the store failed or the connection closed.
func (c *conn) durable() bool {
	st := c.b.opts.SessionStore
	if st == nil || !c.cs.s.Persistent() {
		return true
	}
	done := make(chan error, 1)
	st.Barrier(func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			c.log.Error("store write failed", "err", err)
			return false
		}
		return true
	case <-c.closed:
		return false
	}
}

// resend sends again the inflight messages of a resumed session.
func (c *conn) resend(w *bufio.Writer, pub *mqtt.Publish) error {
	for _, f := range c.cs.s.Resend() {
		if f.State == session.AwaitPubcomp {
			x := ctrl{t: mqtt.PUBREL, id: f.PacketID}
			if err := c.writeCtrl(w, &x); err != nil {
				return err
			}
			continue
		}
		if err := c.writePublish(w, pub, &f.Delivery, f.PacketID, true, nil); err != nil {
			return err
		}
	}
	return nil
}

// writePublish encodes one message for this client into w.
func (c *conn) writePublish(w *bufio.Writer, pub *mqtt.Publish, d *session.Delivery, id uint16, dup bool, aliases *map[string]uint16) error {
	now := time.Now()
	d.Msg.Fill(pub, d.QoS, d.Retain, now)
	pub.PacketID = id
	pub.Dup = dup
	if c.version == mqtt.Version5 {
		pub.Properties.SubscriptionIDs = append(pub.Properties.SubscriptionIDs[:0], d.SubscriptionIDs...)
		if c.aliasMaxOut > 0 && aliases != nil {
			c.applyAlias(pub, aliases)
		}
	}
	if c.maxOut > 0 && pub.Size(c.version) > c.maxOut {
		// [MQTT-3.1.2-24] a message too large for the client is dropped for it,
		// and treated as delivered.
		c.b.stats.drop(&c.b.stats.DroppedTooLarge)
		if id != 0 {
			c.cs.s.Discard(id)
		}
		return nil
	}
	buf, err := pub.Encode(w.AvailableBuffer(), c.version)
	if err != nil {
		c.log.Warn("message not encodable for client", "client_id", c.clientID, "topic", d.Msg.Topic, "err", err)
		if id != 0 {
			c.cs.s.Discard(id)
		}
		return nil
	}
	c.b.stats.MessagesSent.Add(1)
	c.b.stats.PacketsSent[mqtt.PUBLISH].Add(1)
	c.b.traceOut(c, pub)
	if hk := c.b.opts.Hooks; hk != nil {
		hk.OnDeliver(c.info(), d.Msg.Topic, d.Msg.Payload)
	}
	_, err = w.Write(buf)
	return err
}

// applyAlias replaces the topic with a topic alias the broker chose for this
// connection, up to the client's Topic Alias Maximum.
func (c *conn) applyAlias(pub *mqtt.Publish, aliases *map[string]uint16) {
	if *aliases == nil {
		*aliases = make(map[string]uint16)
	}
	if a, ok := (*aliases)[pub.Topic]; ok {
		pub.Topic = ""
		pub.Properties.TopicAlias = a
		pub.Properties.Set(mqtt.PropTopicAlias)
		return
	}
	if n := len(*aliases); n < int(c.aliasMaxOut) {
		a := uint16(n + 1)
		(*aliases)[pub.Topic] = a
		pub.Properties.TopicAlias = a
		pub.Properties.Set(mqtt.PropTopicAlias)
	}
}

// writeCtrl encodes a packet from the reader into w.
func (c *conn) writeCtrl(w *bufio.Writer, x *ctrl) error {
	v := c.version
	buf := w.AvailableBuffer()
	var err error
	switch x.t {
	case mqtt.PUBACK:
		if x.pkt != nil {
			buf, err = x.pkt.Encode(buf, v)
			break
		}
		buf, err = (&mqtt.Puback{PacketID: x.id, ReasonCode: x.code}).Encode(buf, v)
	case mqtt.PUBREC:
		if x.pkt != nil {
			buf, err = x.pkt.Encode(buf, v)
			break
		}
		buf, err = (&mqtt.Pubrec{PacketID: x.id, ReasonCode: x.code}).Encode(buf, v)
	case mqtt.PUBREL:
		buf, err = (&mqtt.Pubrel{PacketID: x.id, ReasonCode: x.code}).Encode(buf, v)
	case mqtt.PUBCOMP:
		buf, err = (&mqtt.Pubcomp{PacketID: x.id, ReasonCode: x.code}).Encode(buf, v)
	case mqtt.PINGRESP:
		buf, err = (&mqtt.Pingresp{}).Encode(buf, v)
	case mqtt.DISCONNECT:
		if x.pkt == nil {
			x.pkt = &mqtt.Disconnect{ReasonCode: x.code}
		}
		buf, err = x.pkt.Encode(buf, v)
	default:
		buf, err = x.pkt.Encode(buf, v)
	}
	if err != nil {
		c.log.Error("packet not encodable", "client_id", c.clientID, "type", x.t.String(), "err", err)
		return nil
	}
	c.b.stats.PacketsSent[x.t].Add(1)
	if c.b.tracing.Load() > 0 {
		if p, _, err := mqtt.Decode(buf, v, 0); err == nil {
			c.b.traceOut(c, p)
		}
	}
	_, err = w.Write(buf)
	return err
}

// tlsState returns the TLS connection state of a TLS connection, or nil.
func (c *conn) tlsState() *tls.ConnectionState {
	if c.b.opts.TLSState == nil {
		return nil
	}
	nc := c.nc
	if cc, ok := nc.(*countingConn); ok {
		nc = cc.Conn
	}
	if st, ok := c.b.opts.TLSState(nc); ok {
		return &st
	}
	return nil
}
