package cluster

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// inbox collects what a LinkServer receives.
type inbox struct {
	mu   sync.Mutex
	from []string
	msgs []*mqtt.Message
}

func (b *inbox) handle(from string, m *mqtt.Message) {
	b.mu.Lock()
	b.from = append(b.from, from)
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

func (b *inbox) snapshot() ([]string, []*mqtt.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.from), slices.Clone(b.msgs)
}

func (b *inbox) wantTopics(want ...string) func() error {
	return func() error {
		_, msgs := b.snapshot()
		var got []string
		for _, m := range msgs {
			got = append(got, m.Topic)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("received %v, want %v", got, want)
		}
		return nil
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func listen(t *testing.T, addr string, secret []byte, in *inbox) *LinkServer {
	t.Helper()
	s, err := ListenLinks(addr, nil, secret, in.handle, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newLinks(t *testing.T, name string, secret []byte, queue int) *Links {
	t.Helper()
	l := NewLinks(LinkConfig{
		Name: name, Secret: secret, Queue: queue,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: quiet(),
	})
	t.Cleanup(l.Close)
	return l
}

func stats(l *Links, node string) LinkStats {
	for _, s := range l.Stats() {
		if s.Node == node {
			return s
		}
	}
	return LinkStats{}
}

func wantConnected(l *Links, node string, want bool) func() error {
	return func() error {
		if s := stats(l, node); s.Connected != want {
			return fmt.Errorf("link to %s: %+v, want connected %v", node, s, want)
		}
		return nil
	}
}

func msg(topic string) *mqtt.Message {
	return &mqtt.Message{Topic: topic, Payload: []byte("p-" + topic), QoS: mqtt.AtLeastOnce}
}

func encoded(t *testing.T, m *mqtt.Message) []byte {
	t.Helper()
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLinkDeliversInOrder(t *testing.T) {
	var inB, inA inbox
	secret := key(7)
	srvB := listen(t, "127.0.0.1:0", secret, &inB)
	srvA := listen(t, "127.0.0.1:0", secret, &inA)
	la := newLinks(t, "a", secret, 1000)
	lb := newLinks(t, "b", secret, 1000)
	la.Update(map[string]string{"a": srvA.Addr(), "b": srvB.Addr()})
	lb.Update(map[string]string{"a": srvA.Addr(), "b": srvB.Addr()})

	props := &mqtt.Properties{ContentType: "text/plain", ResponseTopic: "reply/1", CorrelationData: []byte{1, 2, 3}, PayloadFormat: 1,
		User: []mqtt.StringPair{{Name: "k", Value: "v"}, {Name: "k", Value: "w"}}}
	props.Set(mqtt.PropContentType)
	props.Set(mqtt.PropResponseTopic)
	props.Set(mqtt.PropCorrelationData)
	props.Set(mqtt.PropPayloadFormat)
	rich := &mqtt.Message{Topic: "rich/x", Payload: []byte("hello"), QoS: mqtt.ExactlyOnce, Retain: true,
		Properties: props, Expiry: time.Unix(2000000000, 123), Origin: "client-1"}

	var want []*mqtt.Message
	var topics []string
	want = append(want, rich)
	topics = append(topics, rich.Topic)
	for i := range 500 {
		m := msg(fmt.Sprintf("t/%d", i))
		m.QoS = mqtt.QoS(i % 3)
		want = append(want, m)
		topics = append(topics, m.Topic)
	}
	for _, m := range want {
		if !la.Send("b", m) {
			t.Fatalf("Send %s refused", m.Topic)
		}
	}
	if la.Send("nobody", msg("x")) {
		t.Fatal("Send to a node without a link succeeded")
	}
	if !lb.Send("a", msg("back")) {
		t.Fatal("Send b->a refused")
	}
	checkFor(t, 5*time.Second, inB.wantTopics(topics...))
	checkFor(t, 5*time.Second, inA.wantTopics("back"))
	from, got := inB.snapshot()
	for i, m := range got {
		if from[i] != "a" {
			t.Fatalf("message %d from %q", i, from[i])
		}
		if !bytes.Equal(encoded(t, m), encoded(t, want[i])) {
			t.Fatalf("message %d: got %+v, want %+v", i, m, want[i])
		}
	}
	if r := got[0]; !r.Retain || r.QoS != mqtt.ExactlyOnce || !r.Expiry.Equal(rich.Expiry) ||
		r.Properties == nil || r.Properties.ContentType != "text/plain" || len(r.Properties.User) != 2 || r.Origin != "client-1" {
		t.Fatalf("rich message: %+v %+v", r, r.Properties)
	}
	checkFor(t, 5*time.Second, func() error {
		if s := stats(la, "b"); s.Sent != int64(len(want)) || s.Dropped != 0 || s.Queued != 0 || !s.Connected || s.Addr != srvB.Addr() {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if len(la.Stats()) != 1 {
		t.Fatalf("a has links %v, want only b", la.Stats())
	}
}

func TestLinkReconnectKeepsQueue(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, &in)
	addr := srv.Addr()
	l := newLinks(t, "a", nil, 100)
	l.Dial("b", addr)
	l.Send("b", msg("before"))
	checkFor(t, 5*time.Second, in.wantTopics("before"))

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantConnected(l, "b", false))
	var topics []string
	for i := range 50 {
		topic := fmt.Sprintf("queued/%d", i)
		topics = append(topics, topic)
		if !l.Send("b", msg(topic)) {
			t.Fatalf("Send %s refused", topic)
		}
	}
	if s := stats(l, "b"); s.Queued != 50 {
		t.Fatalf("queued %d, want 50", s.Queued)
	}

	var in2 inbox
	var srv2 *LinkServer
	checkFor(t, 5*time.Second, func() error { // the port may take a moment to free
		s, err := ListenLinks(addr, nil, nil, in2.handle, quiet())
		srv2 = s
		return err
	})
	t.Cleanup(func() { srv2.Close() })
	checkFor(t, 5*time.Second, in2.wantTopics(topics...))
	s := stats(l, "b")
	if s.Reconnects < 1 || s.Dropped != 0 || s.Sent != 51 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLinkQueueBound(t *testing.T) {
	l := newLinks(t, "a", nil, 4)
	// Nothing listens here: the link keeps trying while its queue fills.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l.Dial("b", addr)
	for i := range 10 {
		ok := l.Send("b", msg(fmt.Sprint(i)))
		if ok != (i < 4) {
			t.Fatalf("Send %d = %v", i, ok)
		}
	}
	if s := stats(l, "b"); s.Queued != 4 || s.Dropped != 6 || s.Connected {
		t.Fatalf("stats %+v", s)
	}
	var in inbox
	listen(t, addr, nil, &in)
	checkFor(t, 5*time.Second, in.wantTopics("0", "1", "2", "3"))
}

func TestLinkWrongSecretRefused(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", key(1), &in)
	bad := newLinks(t, "intruder", key(2), 10)
	none := newLinks(t, "anon", nil, 10)
	good := newLinks(t, "friend", key(1), 10)
	for _, l := range []*Links{bad, none, good} {
		l.Dial("b", srv.Addr())
		l.Send("b", msg("from-"+l.cfg.Name))
	}
	checkFor(t, 5*time.Second, in.wantTopics("from-friend"))
	checkFor(t, 5*time.Second, func() error {
		if s := stats(bad, "b"); s.Connected || s.Queued != 1 {
			return fmt.Errorf("intruder link %+v", s)
		}
		if s := stats(none, "b"); s.Connected || s.Queued != 1 {
			return fmt.Errorf("anonymous link %+v", s)
		}
		return nil
	})
	if from, _ := in.snapshot(); !slices.Equal(from, []string{"friend"}) {
		t.Fatalf("from %v", from)
	}
}

// rawHello connects to srv and completes the handshake by hand.
func rawHello(t *testing.T, addr, name string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	typ, _, _, err := readFrame(c, nil, maxHandshakeFrame)
	if err != nil || typ != frameChallenge {
		t.Fatalf("challenge: %d %v", typ, err)
	}
	b := appendString([]byte{linkVersion}, name)
	b = appendString(b, "")
	if err := writeFrame(c, frameHello, b); err != nil {
		t.Fatal(err)
	}
	if typ, _, _, err := readFrame(c, nil, maxHandshakeFrame); err != nil || typ != frameWelcome {
		t.Fatalf("welcome: %d %v", typ, err)
	}
	return c
}

func wantClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// EOF, or a reset when the server closed with bytes unread.
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection not closed by the server: %v", err)
		}
	}
}

func TestLinkGarbageClosesOnlyThatConnection(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, &in)
	l := newLinks(t, "a", nil, 100)
	l.Dial("b", srv.Addr())
	l.Send("b", msg("one"))
	checkFor(t, 5*time.Second, in.wantTopics("one"))

	good := encoded(t, msg("g"))
	okFrame := msgsPayload(t, 1, good)
	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0xff, 0xff, 0xff, 0xff, frameMessages},
		{0, 0, 0, 0},
	}
	for _, g := range garbage {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(g)
		wantClosed(t, c)
		c.Close()
	}
	afterHello := [][]byte{
		frameBytes(0xee, nil),
		frameBytes(frameMessages, []byte{5}),
		frameBytes(frameMessages, append([]byte{2}, okFrame[1:]...)),
		frameBytes(frameMessages, append(slices.Clone(okFrame), 0)),
		frameBytes(frameMessages, []byte{1, 3, 9, 9, 9}),
		{0x01, 0, 0, 1, frameMessages}, // 16 MiB + 1 announced, beyond the limit
		frameBytes(frameHello, nil),
	}
	for _, g := range afterHello {
		c := rawHello(t, srv.Addr(), "raw")
		c.Write(g)
		wantClosed(t, c)
	}
	// A well-formed frame from a hand-made connection is delivered.
	c := rawHello(t, srv.Addr(), "raw")
	c.Write(frameBytes(frameMessages, okFrame))
	checkFor(t, 5*time.Second, in.wantTopics("one", "g"))

	l.Send("b", msg("two"))
	checkFor(t, 5*time.Second, in.wantTopics("one", "g", "two"))
	if s := stats(l, "b"); s.Reconnects != 0 || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
}

// msgsPayload builds a messages frame payload: a count and length-prefixed messages.
func msgsPayload(t *testing.T, n int, enc []byte) []byte {
	t.Helper()
	b := appendString([]byte{byte(n)}, string(enc))
	if _, err := decodeMessages(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func frameBytes(typ byte, payload []byte) []byte {
	var buf bytes.Buffer
	writeFrame(&buf, typ, payload)
	return buf.Bytes()
}

func TestLinksUpdate(t *testing.T) {
	var inB, inC inbox
	srvB := listen(t, "127.0.0.1:0", nil, &inB)
	srvC := listen(t, "127.0.0.1:0", nil, &inC)
	l := newLinks(t, "a", nil, 100)
	l.Update(map[string]string{"a": "127.0.0.1:1", "b": srvB.Addr()})
	checkFor(t, 5*time.Second, wantConnected(l, "b", true))
	if got := l.Stats(); len(got) != 1 || got[0].Node != "b" {
		t.Fatalf("links %+v", got)
	}
	l.Update(map[string]string{"b": srvB.Addr(), "c": srvC.Addr()})
	checkFor(t, 5*time.Second, wantConnected(l, "c", true))
	l.Send("b", msg("to-b"))
	l.Send("c", msg("to-c"))
	checkFor(t, 5*time.Second, inB.wantTopics("to-b"))
	checkFor(t, 5*time.Second, inC.wantTopics("to-c"))

	l.Update(map[string]string{"c": srvC.Addr()})
	if got := l.Stats(); len(got) != 1 || got[0].Node != "c" {
		t.Fatalf("links after removing b: %+v", got)
	}
	if l.Send("b", msg("late")) {
		t.Fatal("Send to a removed peer succeeded")
	}
	l.Update(nil)
	if got := l.Stats(); len(got) != 0 {
		t.Fatalf("links after removing all: %+v", got)
	}
}

func FuzzDecodeMessages(f *testing.F) {
	enc, _ := msg("x").AppendBinary(nil)
	f.Add(appendString([]byte{1}, string(enc)))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeMessages(b)
		_, _, _, _ = readFrame(bytes.NewReader(b), nil, 1<<10)
	})
}
