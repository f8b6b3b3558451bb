package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// handshakeTimeout bounds the dial, CONNACK and SUBACK waits.
const handshakeTimeout = 10 * time.Second

// ackBufferLimit is how many bytes of acknowledgements the reader collects before
// it writes them even though more input is buffered.
const ackBufferLimit = 4 << 10

// client is one MQTT connection of the tool. After connect returns, its reader
// goroutine (readLoop) owns r and acks and hands what it reads to pub and sub;
// every write to the connection goes through bw under wmu.
type client struct {
	id   string
	conn net.Conn
	v    mqtt.Version
	r    *mqtt.Reader
	in   *countingReader // under r's bufio.Reader

	// Set by connect from the CONNACK, read-only afterwards.
	sessionPresent bool
	receiveMax     int // the broker's Receive Maximum (5.0), 65535 when absent or before 5.0
	maxQoS         mqtt.QoS

	pub *publisher  // receives PUBACK, PUBREC and PUBCOMP; nil for a subscriber
	sub *subscriber // receives PUBLISH; nil for a publisher

	wmu     sync.Mutex
	bw      *bufio.Writer // guarded by wmu
	scratch []byte        // encoding buffer; guarded by wmu

	// Owned by the reader goroutine.
	acks    []byte // encoded acknowledgements not yet written
	puback  mqtt.Puback
	pubrec  mqtt.Pubrec
	pubrel  mqtt.Pubrel
	pubcomp mqtt.Pubcomp

	subacks chan []mqtt.ReasonCode // SUBACK reason codes, one SUBACK at a time
	started bool                   // the reader goroutine runs; set by the owner before it starts
	closing atomic.Bool            // set before the tool closes the connection itself
	done    chan struct{}          // closed when the reader goroutine returns
	err     error                  // why the reader stopped; read after done is closed
}

// connectOptions are what a scenario chooses for one connection: the broker and
// the CONNECT fields.
type connectOptions struct {
	addr          string // broker host:port; empty is cfg.addr
	clean         bool   // Clean Session (3.1.1) or Clean Start (5.0)
	sessionExpiry uint32 // 5.0 Session Expiry Interval in seconds; 0 leaves it out
	keepAlive     uint16 // seconds
	readBuf       int    // bufio.Reader size
	writeBuf      int    // bufio.Writer size
	local         net.Addr
}

// connect dials the broker (o.addr, or else cfg.addr), sends CONNECT and reads the
// CONNACK. It does not start the reader goroutine: start does, once pub or sub is
// set.
func connect(ctx context.Context, cfg *config, id string, o connectOptions) (*client, error) {
	addr := o.addr
	if addr == "" {
		addr = cfg.addr
	}
	d := net.Dialer{Timeout: handshakeTimeout, LocalAddr: o.local}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	c, err := handshake(conn, cfg.version, id, o)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("client %s: %w", id, err)
	}
	return c, nil
}

func handshake(conn net.Conn, v mqtt.Version, id string, o connectOptions) (*client, error) {
	if o.readBuf == 0 {
		o.readBuf = 16 << 10
	}
	if o.writeBuf == 0 {
		o.writeBuf = 4 << 10
	}
	c := &client{
		id:      id,
		conn:    conn,
		v:       v,
		in:      &countingReader{r: conn},
		bw:      bufio.NewWriterSize(conn, o.writeBuf),
		subacks: make(chan []mqtt.ReasonCode, 1),
		done:    make(chan struct{}),
	}
	c.r = mqtt.NewReader(bufio.NewReaderSize(c.in, o.readBuf))
	c.r.Version = v
	p := mqtt.Connect{Version: v, CleanStart: o.clean, KeepAlive: o.keepAlive, ClientID: id}
	if v == mqtt.Version5 && o.sessionExpiry > 0 {
		p.Properties.SessionExpiry = o.sessionExpiry
		p.Properties.Set(mqtt.PropSessionExpiry)
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.write(&p); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	pkt, err := c.r.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("read CONNACK: %w", unexpectedEOF(err))
	}
	ca, ok := pkt.(*mqtt.Connack)
	if !ok {
		return nil, fmt.Errorf("expected CONNACK, got %v", pkt.Type())
	}
	if ca.ReasonCode.IsError() {
		return nil, fmt.Errorf("connection refused: %v", ca.ReasonCode)
	}
	c.sessionPresent = ca.SessionPresent
	c.receiveMax = int(ca.Properties.ReceiveMax())
	c.maxQoS = ca.Properties.MaxQoS()
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// unexpectedEOF names a connection the broker closed.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("connection closed by the broker: %w", err)
	}
	return err
}

// write encodes p, writes and flushes it.
func (c *client) write(p mqtt.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.scratch, err = p.Encode(c.scratch[:0], c.v); err != nil {
		return fmt.Errorf("encode %v: %w", p.Type(), err)
	}
	if _, err := c.bw.Write(c.scratch); err != nil {
		return err
	}
	return c.bw.Flush()
}

// start runs the reader goroutine; its owner waits for it with <-c.done.
func (c *client) start() {
	c.started = true
	go c.readLoop()
}

// readLoop reads packets until the connection ends, answers QoS 1 and 2 flows and
// hands messages and acknowledgements to sub and pub. Acknowledgements are
// collected and written when no more input is buffered, so that a burst of
// messages is answered with one write.
func (c *client) readLoop() {
	defer close(c.done)
	var reads uint64
	var now int64 // bench time just after the latest read from the connection
	for {
		pkt, err := c.r.ReadPacket()
		if err != nil {
			c.stop(err)
			return
		}
		switch p := pkt.(type) {
		case *mqtt.Publish:
			if c.sub == nil {
				c.stop(fmt.Errorf("unexpected PUBLISH on %q", p.Topic))
				return
			}
			// Messages that came in one read arrived together: one clock reading serves them all.
			if c.in.reads != reads {
				reads, now = c.in.reads, c.sub.b.now()
			}
			c.sub.deliver(p, now)
			switch p.QoS {
			case mqtt.AtLeastOnce:
				c.puback.PacketID = p.PacketID
				c.acks, err = c.puback.Encode(c.acks, c.v)
			case mqtt.ExactlyOnce:
				c.pubrec.PacketID = p.PacketID
				c.acks, err = c.pubrec.Encode(c.acks, c.v)
			}
		case *mqtt.Pubrel:
			c.pubcomp.PacketID = p.PacketID
			c.acks, err = c.pubcomp.Encode(c.acks, c.v)
		case *mqtt.Puback:
			err = c.pub.acked(p.PacketID, p.ReasonCode)
		case *mqtt.Pubrec:
			if p.ReasonCode.IsError() { // the flow ends here (MQTT 5.0 section 4.3.3)
				err = c.pub.acked(p.PacketID, p.ReasonCode)
				break
			}
			if err = c.pub.received(p.PacketID); err == nil {
				c.pubrel.PacketID = p.PacketID
				c.acks, err = c.pubrel.Encode(c.acks, c.v)
			}
		case *mqtt.Pubcomp:
			err = c.pub.acked(p.PacketID, p.ReasonCode)
		case *mqtt.Suback:
			select {
			case c.subacks <- slices.Clone(p.ReasonCodes):
			default:
				err = errors.New("unexpected SUBACK")
			}
		case *mqtt.Pingresp, *mqtt.Unsuback:
		case *mqtt.Disconnect:
			err = fmt.Errorf("broker sent DISCONNECT: %v", p.ReasonCode)
		default:
			err = fmt.Errorf("unexpected %v", pkt.Type())
		}
		if err == nil && len(c.acks) > 0 && (c.r.Buffered() == 0 || len(c.acks) >= ackBufferLimit) {
			err = c.writeAcks()
		}
		if err != nil {
			c.stop(err)
			return
		}
	}
}

// stop records why the reader stopped, unless the tool closed the connection, and
// closes it so that a publisher blocked on a write returns.
func (c *client) stop(err error) {
	if !c.closing.Load() {
		c.err = unexpectedEOF(err)
	}
	_ = c.conn.Close()
}

func (c *client) writeAcks() error {
	c.wmu.Lock()
	_, err := c.bw.Write(c.acks)
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	c.acks = c.acks[:0]
	return err
}

// subscribe sends SUBSCRIBE and waits for the SUBACK, which the reader goroutine
// hands over. It returns the granted QoS.
func (c *client) subscribe(ctx context.Context, filter string, qos mqtt.QoS) (mqtt.QoS, error) {
	s := mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: filter, QoS: qos}}}
	if err := c.write(&s); err != nil {
		return 0, fmt.Errorf("client %s: send SUBSCRIBE: %w", c.id, err)
	}
	t := time.NewTimer(handshakeTimeout)
	defer t.Stop()
	select {
	case codes := <-c.subacks:
		if len(codes) != 1 || codes[0].IsError() || codes[0] > mqtt.GrantedQoS2 {
			return 0, fmt.Errorf("client %s: subscription to %q refused: %v", c.id, filter, codes)
		}
		return mqtt.QoS(codes[0]), nil
	case <-c.done:
		return 0, fmt.Errorf("client %s: waiting for SUBACK: %w", c.id, c.err)
	case <-t.C:
		return 0, fmt.Errorf("client %s: no SUBACK for %q within %v", c.id, filter, handshakeTimeout)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// ping sends a PINGREQ.
func (c *client) ping() error { return c.write(&mqtt.Pingreq{}) }

// close sends DISCONNECT (with d's properties in 5.0), closes the connection and
// waits for the reader goroutine, if it runs. Later calls do nothing.
func (c *client) close(d *mqtt.Disconnect) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	if d == nil {
		d = &mqtt.Disconnect{}
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write(d)
	_ = c.conn.Close()
	if c.started {
		<-c.done
	}
}

// disconnectAndWait sends DISCONNECT and waits until the broker closes the
// connection, so that the session is offline when it returns. The reader goroutine
// must be running.
func (c *client) disconnectAndWait(d *mqtt.Disconnect) error {
	if !c.closing.CompareAndSwap(false, true) {
		return nil
	}
	if d == nil {
		d = &mqtt.Disconnect{}
	}
	err := c.write(d)
	if err == nil {
		select {
		case <-c.done:
		case <-time.After(handshakeTimeout):
			err = fmt.Errorf("client %s: the broker did not close the connection after DISCONNECT", c.id)
		}
	}
	_ = c.conn.Close()
	<-c.done
	return err
}

// countingReader counts the reads from the connection, so that the reader
// goroutine knows when packets are fresh from the network. Owned by the reader
// goroutine.
type countingReader struct {
	r     io.Reader
	reads uint64
}

func (c *countingReader) Read(b []byte) (int, error) {
	c.reads++
	return c.r.Read(b)
}
