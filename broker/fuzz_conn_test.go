package broker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// fuzzConn is an in-memory connection that serves a fixed byte stream and then
// io.EOF, and takes every write without blocking, so that the broker never
// waits on its peer. Closing it closes done.
type fuzzConn struct {
	mu     sync.Mutex
	data   []byte // what is left to read; guarded by mu
	closed bool   // guarded by mu

	done      chan struct{}
	closeOnce sync.Once
}

func newFuzzConn(data []byte) *fuzzConn {
	return &fuzzConn{data: data, done: make(chan struct{})}
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return 0, net.ErrClosed
	case len(c.data) == 0:
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.done) })
	return nil
}

var (
	fuzzLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883}
	fuzzRemote = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}
)

func (c *fuzzConn) LocalAddr() net.Addr                { return fuzzLocal }
func (c *fuzzConn) RemoteAddr() net.Addr               { return fuzzRemote }
func (c *fuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// fuzzSeeds are byte streams a client might send: valid sessions of every
// version, and malformed ones.
func fuzzSeeds(t testing.TB) [][]byte {
	enc := func(v mqtt.Version, ps ...mqtt.Packet) []byte {
		var b []byte
		for _, p := range ps {
			var err error
			if b, err = p.Encode(b, v); err != nil {
				t.Fatalf("encode %v: %v", p.Type(), err)
			}
		}
		return b
	}
	var seeds [][]byte
	for _, v := range []mqtt.Version{mqtt.Version31, mqtt.Version311, mqtt.Version5} {
		// A whole session: subscribe, publish at every QoS to itself,
		// complete the exchanges, unsubscribe, leave.
		seeds = append(seeds, enc(v,
			&mqtt.Connect{Version: v, ClientID: "fuzz", CleanStart: true, KeepAlive: 30},
			&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a/#", QoS: 2}, {Filter: "+/b", QoS: 1}}},
			&mqtt.Publish{Topic: "a/b", Payload: []byte("qos0")},
			&mqtt.Publish{Topic: "a/b", QoS: 1, PacketID: 2, Payload: []byte("qos1")},
			&mqtt.Publish{Topic: "a/b", QoS: 2, PacketID: 3, Retain: true, Payload: []byte("qos2")},
			&mqtt.Pubrel{PacketID: 3},
			&mqtt.Puback{PacketID: 1},
			&mqtt.Pubrec{PacketID: 2},
			&mqtt.Pubcomp{PacketID: 2},
			&mqtt.Pingreq{},
			&mqtt.Unsubscribe{PacketID: 4, Filters: []string{"a/#", "x"}},
			&mqtt.Disconnect{},
		))
		// A persistent session with a will and credentials that ends
		// without DISCONNECT, so that the will is published.
		seeds = append(seeds, enc(v,
			&mqtt.Connect{Version: v, ClientID: "fuzz-will", KeepAlive: 5, WillFlag: true, WillQoS: 1,
				WillRetain: true, WillTopic: "will/t", WillPayload: []byte("gone"),
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p")},
			&mqtt.Subscribe{PacketID: 7, Subscriptions: []mqtt.Subscription{{Filter: "will/#", QoS: 1}}},
			&mqtt.Publish{Topic: "will/x", QoS: 1, PacketID: 8, Payload: []byte("y")},
		))
	}
	v5 := mqtt.Version5
	cp := &mqtt.Connect{Version: v5, ClientID: "fuzz5", CleanStart: true, KeepAlive: 10}
	cp.Properties.SessionExpiry = 30
	cp.Properties.Set(mqtt.PropSessionExpiry)
	cp.Properties.ReceiveMaximum = 2
	cp.Properties.Set(mqtt.PropReceiveMaximum)
	cp.Properties.TopicAliasMaximum = 4
	cp.Properties.Set(mqtt.PropTopicAliasMaximum)
	cp.Properties.MaximumPacketSize = 64
	cp.Properties.Set(mqtt.PropMaximumPacketSize)
	cp.Properties.RequestProblemInfo = 1
	cp.Properties.Set(mqtt.PropRequestProblemInfo)
	aliased := &mqtt.Publish{Topic: "t/alias", QoS: 1, PacketID: 10, Payload: []byte("first")}
	aliased.Properties.TopicAlias = 1
	aliased.Properties.Set(mqtt.PropTopicAlias)
	byAlias := &mqtt.Publish{QoS: 1, PacketID: 11, Payload: []byte("second")}
	byAlias.Properties.TopicAlias = 1
	byAlias.Properties.Set(mqtt.PropTopicAlias)
	sub := &mqtt.Subscribe{PacketID: 12, Subscriptions: []mqtt.Subscription{
		{Filter: "t/#", QoS: 2, NoLocal: false, RetainAsPublished: true, RetainHandling: 1},
		{Filter: "$share/g/t/+", QoS: 1},
		{Filter: "$SYS/#", QoS: 0},
	}}
	sub.Properties.SubscriptionIDs = []uint32{9}
	expiring := &mqtt.Publish{Topic: "t/e", QoS: 2, PacketID: 13, Payload: []byte(strings.Repeat("z", 80))}
	expiring.Properties.MessageExpiry = 1
	expiring.Properties.Set(mqtt.PropMessageExpiry)
	expiring.Properties.PayloadFormat = 1
	expiring.Properties.Set(mqtt.PropPayloadFormat)
	disc := &mqtt.Disconnect{ReasonCode: mqtt.DisconnectWithWillMessage}
	disc.Properties.SessionExpiry = 0
	disc.Properties.Set(mqtt.PropSessionExpiry)
	seeds = append(seeds, enc(v5, cp, sub, aliased, byAlias, expiring, &mqtt.Pubrel{PacketID: 13},
		&mqtt.Puback{PacketID: 99}, &mqtt.Auth{}, disc))

	// Malformed streams and protocol violations.
	connect311 := enc(mqtt.Version311, &mqtt.Connect{Version: mqtt.Version311, ClientID: "bad", CleanStart: true})
	connect5 := enc(v5, &mqtt.Connect{Version: v5, ClientID: "bad5", CleanStart: true})
	for _, tail := range [][]byte{
		{0x36, 0x07, 0x00, 0x01, 'a', 0x00, 0x01, 0x00, 'x'}, // QoS 3
		{0x00, 0x00},                                           // reserved type 0
		{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f},                   // remaining length of five bytes
		{0x82, 0x03, 0x00, 0x01, 0x00},                         // SUBSCRIBE without a filter
		{0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 0x00},          // wildcard in a topic
		{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00},        // packet id 0
		{0x30, 0x06, 0x00, 0x03, 'a', 0xff, 0xfe, 0x00},        // invalid UTF-8
		{0x30, 0x80, 0x80, 0x04},                               // a claim of 64 KiB, not sent
		{0x62, 0x02, 0x00, 0x05, 0x62, 0x02, 0x00, 0x05},       // PUBREL for unknown ids
		{0x30, 0x03, 0x00, 0x00, 0x00, 0xe0, 0x02, 0x04, 0x00}, // empty topic, DISCONNECT with will
		{0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07, 'x'},  // unknown topic alias
		{0xe0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x10}, // DISCONNECT raising session expiry
	} {
		seeds = append(seeds, append(append([]byte{}, connect311...), tail...))
		seeds = append(seeds, append(append([]byte{}, connect5...), tail...))
	}
	seeds = append(seeds,
		append(append([]byte{}, connect5...), connect5...), // second CONNECT
		[]byte{0xc0, 0x00}, // PINGREQ before CONNECT
		[]byte{0x10, 0x0a, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02}, // unknown level, truncated
		connect5[:len(connect5)-2],                                     // truncated CONNECT
		nil,
	)
	return seeds
}

// FuzzConnHandler feeds a fuzzed byte stream to the broker's connection
// handler, as a client would send it, on one broker that every input shares.
// The invariant: no panic; the connection ends within a bounded time, the
// broker closing it once the stream is read; and every goroutine the
// connection started ends.
func FuzzConnHandler(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	opts := DefaultOptions()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.SysInterval = 0
	opts.MaxPacketSize = 64 << 10
	opts.MaxQueued = 16
	opts.MaxInflight = 8
	opts.MaxSessionExpiry = 60
	b, err := New(opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			f.Errorf("Close: %v", err)
		}
	})
	const bound = 10 * time.Second

	f.Fuzz(func(t *testing.T, data []byte) {
		before := runtime.NumGoroutine()
		nc := newFuzzConn(bytes.Clone(data))
		b.ServeConn(nc, "fuzz")
		select {
		case <-nc.done:
		case <-time.After(bound):
			t.Fatalf("connection still open %v after its input of %d bytes ended\n%s", bound, len(data), goroutines())
		}
		deadline := time.Now().Add(bound)
		for b.Stats().ConnectionsCurrent.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("connection closed but not settled after %v\n%s", bound, goroutines())
			}
			time.Sleep(50 * time.Microsecond)
		}
		// Timers the session left (a will delay, a session expiry) may run
		// a goroutine for a moment; none stays.
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines, %d before the connection\n%s", runtime.NumGoroutine(), before, goroutines())
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
}

// goroutines returns the stacks of every goroutine.
func goroutines() string {
	var sb strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
	return sb.String()
}
