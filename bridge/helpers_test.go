package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// testLogger discards logs unless the test runs verbose.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// node is a broker serving a TCP listener on loopback.
type node struct {
	*broker.Broker
	addr string
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// startNode starts a broker on addr ("127.0.0.1:0" for a free port); before
// it accepts connections, setup (if not nil) may attach receivers. It stops
// when the test ends, if stop was not called before.
func startNode(t testing.TB, addr string, mod func(*broker.Options), setup func(*broker.Broker)) *node {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.Logger = testLogger(t)
	if mod != nil {
		mod(&opts)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(b)
	}
	var ln net.Listener
	eventually(t, "listen on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	n := &node{Broker: b, addr: ln.Addr().String(), ln: ln, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if err := b.Serve(ln, "tcp"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop closes the listener and the broker, and with it every connection.
func (n *node) stop(t testing.TB) {
	n.once.Do(func() {
		_ = n.ln.Close()
		<-n.done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// publish publishes a message on n as a local client would.
func (n *node) publish(topic, payload string, qos mqtt.QoS, retain bool) {
	n.Publish(&mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain, Origin: "test-publisher"})
}

// received is one message a sink or a client got.
type received struct {
	Topic   string
	Payload string
	QoS     mqtt.QoS
	Retain  bool
}

func (r received) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v", r.Topic, r.Payload, r.QoS, r.Retain)
}

// sink is a broker.Receiver that records what it gets, in order.
type sink struct {
	mu   sync.Mutex
	msgs []received // guarded by mu
}

func (s *sink) Deliver(m *mqtt.Message, qos mqtt.QoS, retain bool, _ []uint32) bool {
	s.mu.Lock()
	s.msgs = append(s.msgs, received{m.Topic, string(m.Payload), qos, retain})
	s.mu.Unlock()
	return false
}

func (s *sink) add(topic string, payload []byte, qos mqtt.QoS, retain bool) {
	s.mu.Lock()
	s.msgs = append(s.msgs, received{topic, string(payload), qos, retain})
	s.mu.Unlock()
}

func (s *sink) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// wait polls until s holds at least n messages and returns them.
func (s *sink) wait(t testing.TB, n int) []received {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages", n), func() bool { return len(s.all()) >= n })
	return s.all()
}

// count is how many messages s got on topic.
func (s *sink) count(topic string) int {
	n := 0
	for _, m := range s.all() {
		if m.Topic == topic {
			n++
		}
	}
	return n
}

// attachSink subscribes a new sink to filter on b as subscriber id.
func attachSink(t testing.TB, b *broker.Broker, id, filter string, qos mqtt.QoS) *sink {
	t.Helper()
	s := &sink{}
	b.AttachReceiver(id, s)
	if _, err := b.Subscribe(id, filter, broker.SubscriptionOptions{QoS: qos, RetainAsPublished: true}); err != nil {
		t.Fatal(err)
	}
	return s
}

// client connects a paho client to addr that records what it receives in s.
func client(t testing.TB, addr, id string, s *sink) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			if s != nil {
				s.add(m.Topic(), m.Payload(), mqtt.QoS(m.Qos()), m.Retained())
			}
		})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// wait waits for tok and fails t on an error.
func wait(t testing.TB, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// bridgeConfig is a bridge to addr with short reconnect delays.
func bridgeConfig(name string, addrs []string, topics ...config.BridgeTopic) config.Bridge {
	var urls config.StringList
	for _, a := range addrs {
		urls = append(urls, "tcp://"+a)
	}
	return config.Bridge{
		Name:            name,
		Addresses:       urls,
		ClientID:        "bridge-" + name,
		CleanSession:    true,
		Keepalive:       config.Duration(30 * time.Second),
		ProtocolVersion: 4,
		QueueSize:       10000,
		QueueOverflow:   config.OverflowDropOldest,
		ReconnectMin:    config.Duration(20 * time.Millisecond),
		ReconnectMax:    config.Duration(200 * time.Millisecond),
		Topics:          topics,
	}
}

// startBridge makes and starts a bridge from cfg on local, stopped when the
// test ends.
func startBridge(t testing.TB, cfg config.Bridge, local *broker.Broker, st session.Store) *Bridge {
	t.Helper()
	br, err := New(cfg, local, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopBridge(t, br) })
	return br
}

func stopBridge(t testing.TB, br *Bridge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := br.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// waitConnected polls until br is connected.
func waitConnected(t testing.TB, br *Bridge) {
	t.Helper()
	eventually(t, "bridge "+br.Name()+" connected", func() bool { return br.Status().Connected })
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// settled polls the bridge's status until cond holds, because the counters move
// a moment after the messages they count arrive, and returns the last status.
func settled(br *Bridge, cond func(Status) bool) Status {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := br.Status()
		if cond(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
