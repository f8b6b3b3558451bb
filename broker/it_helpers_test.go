package broker

// Helpers of the integration tests (it_*_test.go): an MQTT 5.0 client on
// paho.golang, a 3.1.1 client on paho.mqtt.golang with its session-present flag,
// and a raw client on package mqtt for what a library would not send or would
// hide (DUP, packet identifiers, topic aliases, reason codes, the close itself).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// itTimeout bounds every wait for something that must happen.
const itTimeout = 10 * time.Second

// quiet is how long a test listens to show that something does NOT arrive. It
// bounds a wait for an absence, never a synchronisation: by then the broker has
// long handled what would have caused the packet (each use says why).
const quiet = 200 * time.Millisecond

// markerSeq makes marker payloads unique across tests.
var markerSeq atomic.Int64

func marker() []byte { return []byte("marker-" + strconv.FormatInt(markerSeq.Add(1), 10)) }

// testContext returns a context that ends after itTimeout.
func testContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), itTimeout)
}

// ---------------------------------------------------------------------------
// MQTT 5.0: paho.golang

// client5 is a connected paho.golang client with the messages it received and the
// DISCONNECT the server sent it, if any.
type client5 struct {
	*pahov5.Client
	nc   net.Conn
	ack  *pahov5.Connack
	msgs chan *pahov5.Publish
	disc chan *pahov5.Disconnect
}

// connect5 connects a paho.golang client with client id id, clean start and a keep
// alive of 30 s; mod may change the CONNECT. It fails the test unless the broker
// accepts the connection.
func connect5(t testing.TB, addr, id string, mod func(*pahov5.Connect)) *client5 {
	t.Helper()
	c, err := dial5(t, addr, id, mod)
	if err != nil {
		t.Fatalf("connect %q (5.0): %v", id, err)
	}
	return c
}

// dial5 is connect5 that returns the broker's refusal instead of failing. The
// CONNACK, when there was one, is in c.ack.
func dial5(t testing.TB, addr, id string, mod func(*pahov5.Connect)) (*client5, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, itTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &client5{nc: nc, msgs: make(chan *pahov5.Publish, 4096), disc: make(chan *pahov5.Disconnect, 1)}
	c.Client = pahov5.NewClient(pahov5.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){
			func(pr pahov5.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *pahov5.Disconnect) {
			select {
			case c.disc <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	cp := &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if mod != nil {
		mod(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	c.ack, err = c.Connect(ctx, cp)
	if err != nil {
		_ = nc.Close()
		return c, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&pahov5.Disconnect{}) })
	return c, nil
}

// sub subscribes with the given options and fails the test unless every
// subscription is granted.
func (c *client5) sub(t testing.TB, props *pahov5.SubscribeProperties, subs ...pahov5.SubscribeOptions) *pahov5.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &pahov5.Subscribe{Properties: props, Subscriptions: subs})
	if err != nil {
		t.Fatalf("subscribe %+v: %v (SUBACK %+v)", subs, err, sa)
	}
	return sa
}

// pub publishes p and returns the broker's answer (a zero one for QoS 0). A reason
// code of 0x80 or more is returned, not failed on.
func (c *client5) pub(t testing.TB, p *pahov5.Publish) *pahov5.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, p)
	if pr == nil {
		t.Fatalf("publish to %q: %v", p.Topic, err)
	}
	return pr
}

// next returns the next message c received.
func (c *client5) next(t testing.TB) *pahov5.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(itTimeout):
		t.Fatalf("client %s: no message within %v", c.ClientID(), itTimeout)
		return nil
	}
}

// flush publishes a marker to topic, which c must be subscribed to, and returns
// what c received before the marker. The marker goes through c's own connection,
// so the broker has handled every packet c sent before it; and a session's queue
// is first in, first out, so whatever the broker queued for c until then arrives
// before the marker. flush is how the tests show that something was NOT sent
// without sleeping.
func (c *client5) flush(t testing.TB, topic string) []*pahov5.Publish {
	t.Helper()
	mk := marker()
	c.pub(t, &pahov5.Publish{Topic: topic, QoS: 1, Payload: mk})
	var before []*pahov5.Publish
	for {
		m := c.next(t)
		if string(m.Payload) == string(mk) {
			return before
		}
		before = append(before, m)
	}
}

// ---------------------------------------------------------------------------
// MQTT 3.1.1: paho.mqtt.golang

// collect returns a handler that sends every message to a channel, and the channel.
func collect() (pahov3.MessageHandler, chan pahov3.Message) {
	ch := make(chan pahov3.Message, 4096)
	return func(_ pahov3.Client, m pahov3.Message) { ch <- m }, ch
}

// next3 returns the next message from ch.
func next3(t testing.TB, ch <-chan pahov3.Message) pahov3.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(itTimeout):
		t.Fatalf("no 3.1.1 message within %v", itTimeout)
		return nil
	}
}

// paho3Session connects a 3.1.1 client with the given clean session flag whose
// messages, those of its earlier session included, go to handler, and returns it
// with the CONNACK's session present flag.
func paho3Session(t testing.TB, addr, id string, clean bool, handler pahov3.MessageHandler) (pahov3.Client, bool) {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).
		SetCleanSession(clean).SetDefaultPublishHandler(handler)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(itTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, tok.(*pahov3.ConnectToken).SessionPresent()
}

// ---------------------------------------------------------------------------
// Raw client on package mqtt

// rawClient is an MQTT client on a bare TCP connection. It sends any packet the
// codec can encode, or any bytes, and reads what the broker sends, packet by
// packet. It is used by one goroutine.
type rawClient struct {
	t       testing.TB
	nc      net.Conn
	r       *mqtt.Reader
	v       mqtt.Version
	pending []mqtt.Packet // read while looking for another type, not yet returned
	lastID  uint16
}

// dialRaw opens a TCP connection to the broker; nothing is sent yet.
func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	return dialRawWith(t, addr, &net.Dialer{Timeout: itTimeout})
}

func dialRawWith(t testing.TB, addr string, d *net.Dialer) *rawClient {
	t.Helper()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: mqtt.Version311}
}

// dialRawSmallBuffer is dialRaw with a receive buffer of a few kilobytes, set
// before the connection is made, so that a client that does not read makes the
// broker's writes block soon.
func dialRawSmallBuffer(t testing.TB, addr string) *rawClient {
	t.Helper()
	return dialRawWith(t, addr, &net.Dialer{Timeout: itTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}})
}

// rawConnect dials and sends a CONNECT of version v with client id id and clean
// start; mod may change it. It fails the test unless the CONNACK is a success.
func rawConnect(t testing.TB, addr string, v mqtt.Version, id string, mod func(*mqtt.Connect)) (*rawClient, *mqtt.Connack) {
	t.Helper()
	c := dialRaw(t, addr)
	ack := c.connect(&mqtt.Connect{Version: v, ClientID: id, CleanStart: true}, mod)
	if ack.ReasonCode != mqtt.Success {
		t.Fatalf("connect %q (%v): CONNACK %v", id, v, ack.ReasonCode)
	}
	return c, ack
}

// connect sends cp, changed by mod when not nil, and returns the CONNACK.
func (c *rawClient) connect(cp *mqtt.Connect, mod func(*mqtt.Connect)) *mqtt.Connack {
	c.t.Helper()
	if mod != nil {
		mod(cp)
	}
	c.v = cp.Version
	c.send(cp)
	c.r.Version = cp.Version
	p := c.read()
	ack, ok := p.(*mqtt.Connack)
	if !ok {
		c.t.Fatalf("got %v, want CONNACK", p.Type())
	}
	return ack
}

// send encodes p in the client's version and writes it.
func (c *rawClient) send(p mqtt.Packet) {
	c.t.Helper()
	b, err := p.Encode(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	c.write(b)
}

// write writes raw bytes.
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(itTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// id returns the next packet identifier.
func (c *rawClient) id() uint16 {
	c.lastID++
	if c.lastID == 0 {
		c.lastID = 1
	}
	return c.lastID
}

// readWithin returns the next packet, waiting at most d for it.
func (c *rawClient) readWithin(d time.Duration) (mqtt.Packet, error) {
	if len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p, nil
	}
	return c.readSocket(d)
}

// readSocket reads a packet from the connection, waiting at most d, and returns a
// copy that does not share the reader's storage.
func (c *rawClient) readSocket(d time.Duration) (mqtt.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	p, err := c.r.ReadPacket()
	if err != nil {
		return nil, err
	}
	b, err := p.Encode(nil, c.v)
	if err != nil {
		return nil, fmt.Errorf("re-encode %v: %w", p.Type(), err)
	}
	q, _, err := mqtt.Decode(b, c.v, 0)
	if err != nil {
		return nil, fmt.Errorf("copy %v: %w", p.Type(), err)
	}
	return q, nil
}

// read returns the next packet and fails the test if none comes.
func (c *rawClient) read() mqtt.Packet {
	c.t.Helper()
	p, err := c.readWithin(itTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// readType returns the next packet of type want, keeping the packets of other
// types it reads on the way for read.
func (c *rawClient) readType(want mqtt.PacketType) mqtt.Packet {
	c.t.Helper()
	for i, p := range c.pending {
		if p.Type() == want {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return p
		}
	}
	for {
		p, err := c.readSocket(itTimeout)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v", want, err)
		}
		if p.Type() == want {
			return p
		}
		c.pending = append(c.pending, p)
	}
}

// expectPublish returns the next packet, which must be a PUBLISH.
func (c *rawClient) expectPublish() *mqtt.Publish {
	c.t.Helper()
	p := c.read()
	pub, ok := p.(*mqtt.Publish)
	if !ok {
		c.t.Fatalf("got %v, want PUBLISH", p.Type())
	}
	return pub
}

// expectNothing fails the test if a packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.readWithin(d)
	switch {
	case err == nil:
		c.t.Fatalf("got %v %s, want nothing", p.Type(), describePacket(p))
	case !errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("want nothing, read failed: %v", err)
	}
}

// expectClosed reads until the broker closes the connection, which must happen
// within d, and returns the packets that came before the close.
func (c *rawClient) expectClosed(d time.Duration) []mqtt.Packet {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var got []mqtt.Packet
	for {
		p, err := c.readWithin(time.Until(deadline))
		switch {
		case err == nil:
			got = append(got, p)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.t.Fatalf("connection still open after %v (received %s)", d, describePackets(got))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		default:
			c.t.Logf("read ended with %v", err)
		}
		return got
	}
}

// expectDisconnect expects a DISCONNECT with reason code want and then the close,
// within d. A missing or wrong DISCONNECT is reported and the test goes on; a
// connection still open fails it.
func (c *rawClient) expectDisconnect(want mqtt.ReasonCode, d time.Duration) {
	c.t.Helper()
	got := c.expectClosed(d)
	for _, p := range got {
		if dp, ok := p.(*mqtt.Disconnect); ok {
			if dp.ReasonCode != want {
				c.t.Errorf("DISCONNECT %v, want %v", dp.ReasonCode, want)
			}
			return
		}
	}
	c.t.Errorf("connection closed without DISCONNECT %v (received %s)", want, describePackets(got))
}

// publish sends a PUBLISH and, for QoS 1 and 2, completes the exchange; it
// returns the reason code of the PUBACK or PUBREC. Other packets that arrive in the
// meantime are kept for read.
func (c *rawClient) publish(p *mqtt.Publish) mqtt.ReasonCode {
	c.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.id()
	}
	c.send(p)
	switch p.QoS {
	case mqtt.AtLeastOnce:
		return c.readType(mqtt.PUBACK).(*mqtt.Puback).ReasonCode
	case mqtt.ExactlyOnce:
		rec := c.readType(mqtt.PUBREC).(*mqtt.Pubrec)
		if rec.ReasonCode.IsError() {
			return rec.ReasonCode
		}
		c.send(&mqtt.Pubrel{PacketID: p.PacketID})
		c.readType(mqtt.PUBCOMP)
		return rec.ReasonCode
	}
	return mqtt.Success
}

// subscribe sends one SUBSCRIBE and returns the SUBACK's reason codes.
func (c *rawClient) subscribe(props *mqtt.Properties, subs ...mqtt.Subscription) []mqtt.ReasonCode {
	c.t.Helper()
	s := &mqtt.Subscribe{PacketID: c.id(), Subscriptions: subs}
	if props != nil {
		s.Properties = *props
	}
	c.send(s)
	ack := c.readType(mqtt.SUBACK).(*mqtt.Suback)
	if ack.PacketID != s.PacketID {
		c.t.Fatalf("SUBACK for packet %d, want %d", ack.PacketID, s.PacketID)
	}
	return ack.ReasonCodes
}

// flush publishes a QoS 0 marker to topic, which c must be subscribed to, and
// returns the packets c received before it (see client5.flush).
func (c *rawClient) flush(topic string) []mqtt.Packet {
	c.t.Helper()
	mk := marker()
	c.publish(&mqtt.Publish{Topic: topic, Payload: mk})
	var before []mqtt.Packet
	for {
		p := c.read()
		if pub, ok := p.(*mqtt.Publish); ok && string(pub.Payload) == string(mk) {
			return before
		}
		before = append(before, p)
	}
}

func (c *rawClient) close() { _ = c.nc.Close() }

func describePacket(p mqtt.Packet) string {
	switch p := p.(type) {
	case *mqtt.Publish:
		return fmt.Sprintf("{topic %q qos %d id %d dup %v retain %v payload %q}", p.Topic, p.QoS, p.PacketID, p.Dup, p.Retain, p.Payload)
	case *mqtt.Disconnect:
		return fmt.Sprintf("{reason %v}", p.ReasonCode)
	case *mqtt.Connack:
		return fmt.Sprintf("{reason %v present %v}", p.ReasonCode, p.SessionPresent)
	}
	return ""
}

func describePackets(ps []mqtt.Packet) string {
	s := "["
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.Type().String() + describePacket(p)
	}
	return s + "]"
}

// sessions returns the number of sessions the broker keeps, online or not, as
// $SYS reports it.
func sessions(b *testBroker) int {
	n, _ := strconv.Atoi(b.SysTopics()["$SYS/broker/clients/total"])
	return n
}

// u32, u16 and byteP make the pointers paho.golang's properties take.
func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func byteP(v byte) *byte   { return &v }
