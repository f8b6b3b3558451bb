package broker

// The hostile-input suite: raw sockets that send what no conforming client
// sends, or send it in ways meant to exhaust the broker. After each case the
// offending connection is closed with the reason the specification gives, and
// a well-behaved client still connects, publishes and receives.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Limits of the suite's brokers: a small maximum packet size, so that a
// packet over it is cheap to send, and a short CONNECT timeout, so that
// silent and slow peers are reaped within the suite's time.
const (
	hostileMaxPacket      = 64 << 10
	hostileConnectTimeout = time.Second
)

// startHostile starts a broker with the suite's limits; mod may change them.
func startHostile(t testing.TB, mod func(*Options)) *testBroker {
	t.Helper()
	return startBroker(t, func(o *Options) {
		o.MaxPacketSize = hostileMaxPacket
		o.ConnectTimeout = hostileConnectTimeout
		if mod != nil {
			mod(o)
		}
	})
}

// ---------------------------------------------------------------------------
// Raw packet building, byte by byte, for what the codec refuses to encode.

// vbi encodes n as a variable byte integer (MQTT 5.0 section 1.5.5).
func vbi(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// packet is a fixed header with first byte b0 and the body's length, then
// the body.
func packet(b0 byte, body ...[]byte) []byte {
	var rest []byte
	for _, p := range body {
		rest = append(rest, p...)
	}
	return append(append([]byte{b0}, vbi(len(rest))...), rest...)
}

// str is a UTF-8 string as MQTT carries it: a two-byte length, then the bytes,
// which need not be valid.
func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// u16b is a two-byte integer.
func u16b(n uint16) []byte { return []byte{byte(n >> 8), byte(n)} }

// connectBody is a CONNECT's body with the given protocol name, level and
// client identifier; clean start, keep alive 60 s, no properties.
func connectBody(name string, level byte, id string) []byte {
	b := append(str(name), level, 0x02, 0x00, 0x3c)
	if level == byte(mqtt.Version5) {
		b = append(b, 0x00) // property length
	}
	return append(b, str(id)...)
}

// rawConnectPacket is a valid CONNECT of version v.
func rawConnectPacket(v mqtt.Version, id string) []byte {
	name := mqtt.ProtocolName
	if v == mqtt.Version31 {
		name = mqtt.ProtocolNameV31
	}
	return packet(0x10, connectBody(name, byte(v), id))
}

// publishBody is a PUBLISH body of version v: topic, packet id when id > 0,
// properties for 5.0, payload.
func publishBody(v mqtt.Version, topic string, id uint16, payload string) []byte {
	b := str(topic)
	if id > 0 {
		b = append(b, u16b(id)...)
	}
	if v == mqtt.Version5 {
		b = append(b, 0x00)
	}
	return append(b, payload...)
}

// ---------------------------------------------------------------------------
// Outcomes

// hostileSeq makes client identifiers unique across the suite.
var hostileSeq atomic.Int64

func hostileID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, hostileSeq.Add(1))
}

// healthy shows that the broker still serves: a 5.0 client connects,
// subscribes, publishes at QoS 1 and receives its own message.
func healthy(t testing.TB, b *testBroker) {
	t.Helper()
	id := hostileID("healthy")
	c, _ := rawConnect(t, b.addr, mqtt.Version5, id, nil)
	defer c.close()
	topic := "healthy/" + id
	if codes := c.subscribe(nil, mqtt.Subscription{Filter: topic, QoS: 1}); len(codes) != 1 || codes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("healthy client: SUBACK %v", codes)
	}
	mk := marker()
	if code := c.publish(&mqtt.Publish{Topic: topic, QoS: 1, Payload: mk}); code != mqtt.Success {
		t.Fatalf("healthy client: PUBACK %v", code)
	}
	if p := c.readType(mqtt.PUBLISH).(*mqtt.Publish); string(p.Payload) != string(mk) {
		t.Fatalf("healthy client: received %q, want %q", p.Payload, mk)
	}
	c.send(&mqtt.Disconnect{})
}

// outcome checks how the broker ended a hostile connection.
type outcome func(t *testing.T, c *rawClient)

// closedSilently: the connection is closed and nothing was sent.
func closedSilently() outcome {
	return func(t *testing.T, c *rawClient) {
		t.Helper()
		if got := c.expectClosed(itTimeout); len(got) != 0 {
			t.Errorf("received %s before the close, want nothing", describePackets(got))
		}
	}
}

// refused: a CONNACK of version v with the reason code (3.x: the return
// code) want, then the close.
func refused(v mqtt.Version, want mqtt.ReasonCode) outcome {
	return func(t *testing.T, c *rawClient) {
		t.Helper()
		c.v, c.r.Version = v, v
		got := c.expectClosed(itTimeout)
		if len(got) != 1 {
			t.Fatalf("received %s, want one CONNACK %v and the close", describePackets(got), want)
		}
		if ack, ok := got[0].(*mqtt.Connack); !ok || ack.ReasonCode != want || ack.SessionPresent {
			t.Errorf("received %s, want CONNACK %v", describePackets(got), want)
		}
	}
}

// disconnected: a 5.0 DISCONNECT with reason code want, then the close.
func disconnected(want mqtt.ReasonCode) outcome {
	return func(t *testing.T, c *rawClient) {
		t.Helper()
		got := c.expectClosed(itTimeout)
		if len(got) != 1 {
			t.Fatalf("received %s, want one DISCONNECT %v and the close", describePackets(got), want)
		}
		if d, ok := got[0].(*mqtt.Disconnect); !ok || d.ReasonCode != want {
			t.Errorf("received %s, want DISCONNECT %v", describePackets(got), want)
		}
	}
}

// TestHostile runs the hostile-input suite. It is not parallel with other
// tests, so that its heap figures are its own.
func TestHostile(t *testing.T) {
	heapStart := heapAlloc()
	t.Run("protocol", hostileProtocol)
	t.Run("slow", hostileSlow)
	t.Run("half-open", hostileHalfOpen)
	t.Run("memory-bomb", hostileMemoryBomb)
	heapEnd := heapAlloc()
	t.Logf("heap over the whole suite: %.1f MB before, %.1f MB after, every broker closed (%+.1f MB)",
		mb(heapStart), mb(heapEnd), mb(heapEnd)-mb(heapStart))
}

// hostileProtocol sends malformed packets and protocol violations to one
// broker, one connection per case, all at once.
func hostileProtocol(t *testing.T) {
	b := startHostile(t, nil)
	healthy(t, b)
	heapBefore := heapAlloc()
	errsBefore := b.Stats().ProtocolErrors.Load()

	v5, v311 := mqtt.Version5, mqtt.Version311
	tests := []struct {
		name      string
		v         mqtt.Version // a CONNECT of this version is accepted first; 0: none
		send      []byte
		halfClose bool // shut the client's write side after send
		want      outcome
	}{
		// Fixed headers [MQTT-2.1.3-1] [MQTT-2.2.2-2].
		{name: "reserved type 0 first", send: []byte{0x00, 0x00}, want: closedSilently()},
		{name: "AUTH first, before a 5.0 CONNECT", send: []byte{0xf0, 0x00}, want: closedSilently()},
		{name: "CONNECT with flags 1", send: append([]byte{0x11}, rawConnectPacket(v311, "flags")[1:]...), want: closedSilently()},
		{name: "reserved type 0 (5.0)", v: v5, send: []byte{0x00, 0x00}, want: disconnected(mqtt.MalformedPacket)},
		{name: "reserved type 0 (3.1.1)", v: v311, send: []byte{0x00, 0x00}, want: closedSilently()},
		{name: "AUTH in 3.1.1", v: v311, send: []byte{0xf0, 0x00}, want: closedSilently()},
		{name: "SUBSCRIBE with flags 0 (5.0)", v: v5, send: packet(0x80, u16b(1), []byte{0}, str("a/b"), []byte{0}), want: disconnected(mqtt.MalformedPacket)},
		{name: "PINGREQ with flags 1 (5.0)", v: v5, send: []byte{0xc1, 0x00}, want: disconnected(mqtt.MalformedPacket)},
		{name: "PINGREQ with flags 1 (3.1.1)", v: v311, send: []byte{0xc1, 0x00}, want: closedSilently()},

		// Remaining length [MQTT-1.5.5-1]: at most four bytes, and in its
		// shortest form.
		{name: "length of five bytes first", send: []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, want: closedSilently()},
		{name: "length of five bytes (5.0)", v: v5, send: []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, want: disconnected(mqtt.MalformedPacket)},
		{name: "length of five bytes (3.1.1)", v: v311, send: []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, want: closedSilently()},
		{name: "length not in shortest form (5.0)", v: v5, send: []byte{0xc0, 0x80, 0x00}, want: disconnected(mqtt.MalformedPacket)},

		// Over the maximum packet size: a 5.0 client learnt it from CONNACK
		// and gets 0x95 (MQTT 5.0 section 3.1.2.11.4); a CONNECT is not
		// answered.
		{name: "CONNECT over the maximum", send: append([]byte{0x10}, vbi(hostileMaxPacket)...), want: closedSilently()},
		{name: "PUBLISH over the maximum (5.0)", v: v5, send: append([]byte{0x30}, vbi(hostileMaxPacket)...), want: disconnected(mqtt.PacketTooLarge)},
		{name: "PUBLISH over the maximum (3.1.1)", v: v311, send: append([]byte{0x30}, vbi(hostileMaxPacket)...), want: closedSilently()},
		{name: "SUBSCRIBE far over the maximum (5.0)", v: v5, send: append([]byte{0x82}, vbi(mqtt.MaxRemainingLength)...), want: disconnected(mqtt.PacketTooLarge)},

		// Truncated packets, then the client's end of the stream.
		{name: "truncated CONNECT", send: rawConnectPacket(v5, "truncated")[:9], halfClose: true, want: closedSilently()},
		{name: "fixed header only", send: []byte{0x10}, halfClose: true, want: closedSilently()},
		{name: "truncated PUBLISH (5.0)", v: v5, send: packet(0x30, publishBody(v5, "a/b", 0, "payload"))[:8], halfClose: true, want: closedSilently()},
		{name: "truncated SUBSCRIBE (3.1.1)", v: v311, send: packet(0x82, u16b(1), str("a/b"), []byte{0})[:6], halfClose: true, want: closedSilently()},
		{name: "truncated length (3.1.1)", v: v311, send: []byte{0x30, 0x80}, halfClose: true, want: closedSilently()},

		// Protocol names and levels [MQTT-3.1.2-1] [MQTT-3.1.2-2]: an
		// unsupported level gets the 3.1.1 return code 0x01; a wrong name
		// may be closed, or refused like an unknown level.
		{name: "level 6", send: packet(0x10, connectBody("MQTT", 6, "level6")), want: refused(v311, mqtt.UnsupportedProtocolVersion)},
		{name: "level 0", send: packet(0x10, connectBody("MQTT", 0, "level0")), want: refused(v311, mqtt.UnsupportedProtocolVersion)},
		{name: "level 255", send: packet(0x10, connectBody("MQTT", 255, "level255")), want: refused(v311, mqtt.UnsupportedProtocolVersion)},
		{name: "MQIsdp at level 4", send: packet(0x10, connectBody("MQIsdp", 4, "mqisdp4")), want: refused(v311, mqtt.UnsupportedProtocolVersion)},
		{name: "MQTT at level 3", send: packet(0x10, connectBody("MQTT", 3, "mqtt3")), want: refused(mqtt.Version31, mqtt.UnsupportedProtocolVersion)},
		{name: "name MQTX at level 5", send: packet(0x10, connectBody("MQTX", 5, "mqtx")), want: refused(v5, mqtt.UnsupportedProtocolVersion)},
		{name: "empty name", send: packet(0x10, connectBody("", 4, "noname")), want: refused(v311, mqtt.UnsupportedProtocolVersion)},
		{name: "HTTP request", send: []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), want: closedSilently()},
		{name: "TLS ClientHello", send: []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}, want: closedSilently()},

		// A second CONNECT [MQTT-3.1.0-2].
		{name: "second CONNECT (5.0)", v: v5, send: rawConnectPacket(v5, "second"), want: disconnected(mqtt.ProtocolError)},
		{name: "second CONNECT (3.1.1)", v: v311, send: rawConnectPacket(v311, "second"), want: closedSilently()},

		// Packets before CONNECT [MQTT-3.1.0-1].
		{name: "PUBLISH first", send: packet(0x30, publishBody(v311, "a/b", 0, "x")), want: closedSilently()},
		{name: "SUBSCRIBE first", send: packet(0x82, u16b(1), str("a/b"), []byte{0}), want: closedSilently()},
		{name: "PINGREQ first", send: []byte{0xc0, 0x00}, want: closedSilently()},
		{name: "DISCONNECT first", send: []byte{0xe0, 0x00}, want: closedSilently()},
		{name: "CONNACK first", send: []byte{0x20, 0x02, 0x00, 0x00}, want: closedSilently()},

		// Invalid UTF-8 and U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]: malformed.
		{name: "client id invalid UTF-8 (5.0)", send: packet(0x10, connectBody("MQTT", 5, "bad\xff\xfeid")), want: refused(v5, mqtt.MalformedPacket)},
		{name: "client id U+0000 (5.0)", send: packet(0x10, connectBody("MQTT", 5, "nul\x00id")), want: refused(v5, mqtt.MalformedPacket)},
		{name: "client id surrogate (5.0)", send: packet(0x10, connectBody("MQTT", 5, "sur\xed\xa0\x80")), want: refused(v5, mqtt.MalformedPacket)},
		{name: "CONNECT reserved flag (5.0)", send: packet(0x10, str("MQTT"), []byte{5, 0x03, 0x00, 0x3c, 0x00}, str("reserved")), want: refused(v5, mqtt.MalformedPacket)},
		{name: "CONNECT reserved flag (3.1.1)", send: packet(0x10, str("MQTT"), []byte{4, 0x03, 0x00, 0x3c}, str("reserved")), want: closedSilently()},
		{name: "client id invalid UTF-8 (3.1.1)", send: packet(0x10, connectBody("MQTT", 4, "bad\xc0\xafid")), want: closedSilently()},
		{name: "topic invalid UTF-8 (5.0)", v: v5, send: packet(0x30, publishBody(v5, "a/\xff", 0, "x")), want: disconnected(mqtt.MalformedPacket)},
		{name: "topic U+0000 (5.0)", v: v5, send: packet(0x30, publishBody(v5, "a/\x00", 0, "x")), want: disconnected(mqtt.MalformedPacket)},
		{name: "topic overlong encoding (5.0)", v: v5, send: packet(0x30, publishBody(v5, "a/\xc0\x80", 0, "x")), want: disconnected(mqtt.MalformedPacket)},
		{name: "topic U+0000 (3.1.1)", v: v311, send: packet(0x30, publishBody(v311, "a\x00b", 0, "x")), want: closedSilently()},
		{name: "filter invalid UTF-8 (5.0)", v: v5, send: packet(0x82, u16b(1), []byte{0}, str("a/\xfe"), []byte{0}), want: disconnected(mqtt.MalformedPacket)},

		// Wildcards in a PUBLISH topic [MQTT-3.3.2-2]: 5.0 reason 0x90.
		{name: "topic with # (5.0)", v: v5, send: packet(0x30, publishBody(v5, "a/#", 0, "x")), want: disconnected(mqtt.TopicNameInvalid)},
		{name: "topic with + (5.0)", v: v5, send: packet(0x32, publishBody(v5, "a/+/b", 1, "x")), want: disconnected(mqtt.TopicNameInvalid)},
		{name: "topic with + (3.1.1)", v: v311, send: packet(0x30, publishBody(v311, "+", 0, "x")), want: closedSilently()},
		{name: "empty topic without alias (5.0)", v: v5, send: packet(0x30, publishBody(v5, "", 0, "x")), want: disconnected(mqtt.ProtocolError)},

		// QoS 3 [MQTT-3.3.1-4].
		{name: "QoS 3 (5.0)", v: v5, send: packet(0x36, publishBody(v5, "a/b", 1, "x")), want: disconnected(mqtt.MalformedPacket)},
		{name: "QoS 3 (3.1.1)", v: v311, send: packet(0x36, publishBody(v311, "a/b", 1, "x")), want: closedSilently()},

		// Packet identifier 0 [MQTT-2.2.1-3].
		{name: "PUBLISH QoS 1 id 0 (5.0)", v: v5, send: packet(0x32, str("a/b"), u16b(0), []byte{0}, []byte("x")), want: disconnected(mqtt.MalformedPacket)},
		{name: "PUBLISH QoS 2 id 0 (3.1.1)", v: v311, send: packet(0x34, str("a/b"), u16b(0), []byte("x")), want: closedSilently()},
		{name: "SUBSCRIBE id 0 (5.0)", v: v5, send: packet(0x82, u16b(0), []byte{0}, str("a/b"), []byte{0}), want: disconnected(mqtt.MalformedPacket)},
		{name: "UNSUBSCRIBE id 0 (5.0)", v: v5, send: packet(0xa2, u16b(0), []byte{0}, str("a/b")), want: disconnected(mqtt.MalformedPacket)},

		// SUBSCRIBE without a filter [MQTT-3.8.3-2], and bad options.
		{name: "empty SUBSCRIBE (5.0)", v: v5, send: packet(0x82, u16b(1), []byte{0}), want: disconnected(mqtt.ProtocolError)},
		{name: "empty SUBSCRIBE (3.1.1)", v: v311, send: packet(0x82, u16b(1)), want: closedSilently()},
		{name: "empty UNSUBSCRIBE (5.0)", v: v5, send: packet(0xa2, u16b(1), []byte{0}), want: disconnected(mqtt.ProtocolError)},
		{name: "SUBSCRIBE options QoS 3 (5.0)", v: v5, send: packet(0x82, u16b(1), []byte{0}, str("a/b"), []byte{0x03}), want: disconnected(mqtt.ProtocolError)},
		{name: "SUBSCRIBE reserved option bits (5.0)", v: v5, send: packet(0x82, u16b(1), []byte{0}, str("a/b"), []byte{0xc1}), want: disconnected(mqtt.MalformedPacket)},
		{name: "SUBSCRIBE reserved option bits (3.1.1)", v: v311, send: packet(0x82, u16b(1), str("a/b"), []byte{0x41}), want: closedSilently()},

		// Packets a client never sends.
		{name: "SUBACK from a client (5.0)", v: v5, send: packet(0x90, u16b(1), []byte{0}, []byte{0}), want: disconnected(mqtt.ProtocolError)},
		{name: "PINGRESP from a client (5.0)", v: v5, send: []byte{0xd0, 0x00}, want: disconnected(mqtt.ProtocolError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c *rawClient
			if tt.v != 0 {
				c, _ = rawConnect(t, b.addr, tt.v, hostileID("hostile"), nil)
			} else {
				c = dialRaw(t, b.addr)
			}
			c.write(tt.send)
			if tt.halfClose {
				if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			tt.want(t, c)
			healthy(t, b)
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel cases.
		heapAfter := heapAlloc()
		t.Logf("protocol cases: heap %.1f MB before, %.1f MB after, broker still up (%+.1f MB); protocol errors counted: %d",
			mb(heapBefore), mb(heapAfter), mb(heapAfter)-mb(heapBefore), b.Stats().ProtocolErrors.Load()-errsBefore)
		eventually(t, "every connection of the protocol cases closed", func() bool {
			return b.Stats().ConnectionsCurrent.Load() == 0
		})
	})
}

// hostileSlow: peers that send too slowly. A CONNECT dripped a byte at a
// time is cut by the CONNECT timeout, and a packet dripped after CONNECT by
// the keep alive.
func hostileSlow(t *testing.T) {
	b := startHostile(t, nil)
	t.Run("slowloris CONNECT", func(t *testing.T) {
		t.Parallel()
		const n = 20
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dialRaw(t, b.addr)
				start := time.Now()
				drip(c.nc, rawConnectPacket(mqtt.Version5, hostileID("slowloris-with-a-long-client-identifier")), 100*time.Millisecond)
				c.v, c.r.Version = mqtt.Version5, mqtt.Version5
				if got := c.expectClosed(itTimeout); len(got) != 0 {
					t.Errorf("received %s, want nothing", describePackets(got))
				}
				if d := time.Since(start); d < hostileConnectTimeout-50*time.Millisecond || d > hostileConnectTimeout+2*time.Second {
					t.Errorf("closed after %v, want about the CONNECT timeout of %v", d, hostileConnectTimeout)
				}
			}()
		}
		wg.Wait()
		healthy(t, b)
	})
	t.Run("slow PUBLISH after CONNECT (5.0)", func(t *testing.T) {
		t.Parallel()
		// Keep alive 1 s: the broker waits 1.5 s for a whole packet
		// [MQTT-3.1.2-22]; the PUBLISH takes 4 s to arrive.
		c, _ := rawConnect(t, b.addr, mqtt.Version5, hostileID("drip"), func(cp *mqtt.Connect) { cp.KeepAlive = 1 })
		start := time.Now()
		drip(c.nc, packet(0x30, publishBody(mqtt.Version5, "drip/topic/that/takes/a/while", 0, "x")), 100*time.Millisecond)
		c.expectDisconnect(mqtt.KeepAliveTimeout, itTimeout)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v, want about 1.5 s", d)
		}
		healthy(t, b)
	})
}

// drip writes p to nc one byte every d, in a goroutine, until done or a
// write fails.
func drip(nc net.Conn, p []byte, d time.Duration) {
	go func() {
		for i := range p {
			_ = nc.SetWriteDeadline(time.Now().Add(itTimeout))
			if _, err := nc.Write(p[i : i+1]); err != nil {
				return
			}
			time.Sleep(d)
		}
	}()
}

// hostileHalfOpen opens thousands of connections that never send a byte;
// the CONNECT timeout closes every one, and the broker's count of open
// connections returns to zero.
func hostileHalfOpen(t *testing.T) {
	b := startHostile(t, nil)
	const n = 2000
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var dialErr atomic.Pointer[error]
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", b.addr, itTimeout)
			if err != nil {
				dialErr.Store(&err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	if p := dialErr.Load(); p != nil {
		t.Fatalf("dial: %v", *p)
	}
	peak := b.Stats().ConnectionsCurrent.Load()
	healthy(t, b)
	start := time.Now()
	eventually(t, "every half-open connection closed", func() bool {
		return b.Stats().ConnectionsCurrent.Load() == 0
	})
	t.Logf("%d half-open connections (%d open at once seen), all closed within %v of the last dial",
		n, peak, time.Since(start).Round(10*time.Millisecond))
	if total := b.Stats().ConnectionsTotal.Load(); total < n {
		t.Errorf("broker accepted %d connections, want at least %d", total, n)
	}
	// Every client sees its connection closed, with nothing sent.
	buf := make([]byte, 1)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(itTimeout))
		if n, err := c.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d: read %d bytes, %v; want it closed", i, n, err)
		}
	}
	healthy(t, b)
}

// hostileMemoryBomb: connections whose fixed header claims 200 MB and that
// then stall after 1 KB. The broker commits memory for the bytes that
// arrive, not for the length claimed: its heap grows by little while they
// hang, with the maximum packet size at the protocol's maximum.
func hostileMemoryBomb(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.MaxPacketSize = mqtt.MaxPacketSize
		o.ConnectTimeout = time.Minute // the bombs are closed by the test
	})
	const (
		n     = 50
		claim = 200 << 20
		sent  = 1 << 10
	)
	healthy(t, b)
	before := heapAlloc()

	// Every client first connects, or for a CONNECT bomb just dials.
	clients := make([]*rawClient, n)
	bombs := make([][]byte, n)
	for i := range clients {
		switch i % 3 {
		case 0: // a CONNECT claiming 200 MB
			clients[i] = dialRaw(t, b.addr)
			bombs[i] = append(append([]byte{0x10}, vbi(claim)...), connectBody("MQTT", 4, "bomb")...)
		case 1: // a PUBLISH claiming 200 MB from a 3.1.1 client without keep alive
			clients[i], _ = rawConnect(t, b.addr, mqtt.Version311, hostileID("bomb"), func(cp *mqtt.Connect) { cp.KeepAlive = 0 })
			bombs[i] = append(append([]byte{0x30}, vbi(claim)...), str("bomb/t")...)
		default: // the same from 5.0
			clients[i], _ = rawConnect(t, b.addr, mqtt.Version5, hostileID("bomb"), func(cp *mqtt.Connect) { cp.KeepAlive = 0 })
			bombs[i] = append(append([]byte{0x30}, vbi(claim)...), str("bomb/t")...)
		}
		for len(bombs[i]) < sent {
			bombs[i] = append(bombs[i], 'x')
		}
	}
	connected := heapAlloc()
	received := b.Stats().BytesReceived.Load()
	var total int64
	for i, c := range clients {
		c.write(bombs[i])
		total += int64(len(bombs[i]))
	}
	// The broker has read every byte sent before the heap is measured.
	eventually(t, "the bombs' bytes read", func() bool {
		return b.Stats().BytesReceived.Load()-received >= total
	})
	during := heapAlloc()
	t.Logf("memory bomb: %d connections claiming %d MB each (%.0f GB in all), each sending %d bytes then stalling:",
		n, claim>>20, float64(n)*claim/(1<<30), sent)
	t.Logf("memory bomb: heap %.1f MB before, %.1f MB with the connections open (%+.1f MB), %.1f MB with the bombs stalled (%+.1f MB more, %.0f KB a bomb)",
		mb(before), mb(connected), mb(connected)-mb(before), mb(during), mb(during)-mb(connected), (mb(during)-mb(connected))*1024/n)
	if limit := 16.0; mb(during)-mb(before) > limit {
		t.Errorf("heap grew by %.1f MB with %d stalled bombs, want at most %.0f MB", mb(during)-mb(before), n, limit)
	}
	healthy(t, b)
	for _, c := range clients {
		c.close()
	}
	eventually(t, "the bombs' connections closed", func() bool {
		return b.Stats().ConnectionsCurrent.Load() == 0
	})
	after := heapAlloc()
	t.Logf("memory bomb: heap %.1f MB after the bombs closed", mb(after))
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }
