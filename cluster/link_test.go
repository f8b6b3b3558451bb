package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/session"
	"github.com/avocet-mqtt/avocet/store"
)

// got is one item a handler received.
type got struct {
	from string
	kind byte
	body string
}

// inbox collects what a LinkServer receives. With hold set, it keeps the done
// functions instead of calling them.
type inbox struct {
	hold bool

	mu    sync.Mutex
	items []got
	dones []func()
}

func (b *inbox) handle(from string, it Item, done func()) {
	b.mu.Lock()
	b.items = append(b.items, got{from, it.Kind, string(it.Body)})
	if b.hold {
		b.dones = append(b.dones, done)
	}
	b.mu.Unlock()
	if !b.hold {
		done()
	}
}

func (b *inbox) snapshot() []got {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.items)
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

func (b *inbox) bodies() []string {
	var out []string
	for _, g := range b.snapshot() {
		out = append(out, g.body)
	}
	return out
}

func (b *inbox) wantBodies(want ...string) func() error {
	return func() error {
		if got := b.bodies(); !slices.Equal(got, want) {
			return fmt.Errorf("received %q, want %q", got, want)
		}
		return nil
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func listen(t *testing.T, addr string, secret []byte, st session.Store, in *inbox) *LinkServer {
	t.Helper()
	s, err := ListenLinks(addr, nil, secret, st, in.handle, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// relisten listens again on addr, which may take a moment to free.
func relisten(t *testing.T, addr string, st session.Store, in *inbox) *LinkServer {
	t.Helper()
	var srv *LinkServer
	checkFor(t, 5*time.Second, func() error {
		s, err := ListenLinks(addr, nil, nil, st, in.handle, quiet())
		srv = s
		return err
	})
	t.Cleanup(func() { srv.Close() })
	return srv
}

func linkConfig(name string, secret []byte, queue int) LinkConfig {
	return LinkConfig{
		Name: name, Secret: secret, Queue: queue,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: quiet(),
	}
}

func newLinks(t *testing.T, name string, secret []byte, queue int) *Links {
	t.Helper()
	l := NewLinks(linkConfig(name, secret, queue))
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
		if s := stats(l, node); s.Connected != want || l.Connected(node) != want {
			return fmt.Errorf("link to %s: %+v, want connected %v", node, s, want)
		}
		return nil
	}
}

// wantDrained waits until every item sent to node is acknowledged.
func wantDrained(l *Links, node string) func() error {
	return func() error {
		if s := stats(l, node); s.Queued != 0 || s.Unacked != 0 {
			return fmt.Errorf("link to %s: %+v, want all acknowledged", node, s)
		}
		return nil
	}
}

func item(body string) Item { return Item{Kind: 1, Body: []byte(body)} }

func mustSend(t *testing.T, l *Links, node string, it Item) {
	t.Helper()
	if queued, _ := l.Send(node, it); !queued {
		t.Fatalf("Send %q to %s refused", it.Body, node)
	}
}

func TestLinkDeliversInOrder(t *testing.T) {
	var inB, inA inbox
	secret := key(7)
	srvB := listen(t, "127.0.0.1:0", secret, nil, &inB)
	srvA := listen(t, "127.0.0.1:0", secret, nil, &inA)
	la := newLinks(t, "a", secret, 1000)
	lb := newLinks(t, "b", secret, 1000)
	la.Update(map[string]string{"a": srvA.Addr(), "b": srvB.Addr()})
	lb.Update(map[string]string{"a": srvA.Addr(), "b": srvB.Addr()})

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	want := []got{{"a", 0, ""}, {"a", 255, string(big)}}
	for i := range 500 {
		want = append(want, got{"a", byte(i % 4), fmt.Sprintf("item/%d", i)})
	}
	for _, w := range want {
		queued, stored := la.Send("b", Item{Kind: w.kind, Body: []byte(w.body), Durable: w.kind == 2})
		if !queued || stored {
			t.Fatalf("Send %q = %v, %v; want queued, not stored (no store)", w.body, queued, stored)
		}
	}
	if queued, stored := la.Send("nobody", item("x")); queued || stored {
		t.Fatal("Send to a node without a link succeeded")
	}
	mustSend(t, lb, "a", item("back"))
	checkFor(t, 5*time.Second, func() error {
		if n := inB.len(); n != len(want) {
			return fmt.Errorf("received %d items, want %d", n, len(want))
		}
		return nil
	})
	checkFor(t, 5*time.Second, inA.wantBodies("back"))
	for i, g := range inB.snapshot() {
		if g != want[i] {
			t.Fatalf("item %d: got %q/%d (%d bytes), want %q/%d (%d bytes)", i,
				g.from, g.kind, len(g.body), want[i].from, want[i].kind, len(want[i].body))
		}
	}
	checkFor(t, 5*time.Second, func() error {
		s := stats(la, "b")
		if s.Sent != int64(len(want)) || s.Acked != int64(len(want)) || s.Unacked != 0 || s.Queued != 0 ||
			s.Dropped != 0 || !s.Connected || s.Addr != srvB.Addr() {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if len(la.Stats()) != 1 || la.Connected("a") {
		t.Fatalf("a has links %v, want only b", la.Stats())
	}
}

func TestLinkReconnectKeepsQueue(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	addr := srv.Addr()
	l := newLinks(t, "a", nil, 100)
	l.Dial("b", addr)
	mustSend(t, l, "b", item("before"))
	checkFor(t, 5*time.Second, in.wantBodies("before"))
	checkFor(t, 5*time.Second, wantDrained(l, "b"))

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, wantConnected(l, "b", false))
	var bodies []string
	for i := range 50 {
		bodies = append(bodies, fmt.Sprintf("queued/%d", i))
		mustSend(t, l, "b", item(bodies[i]))
	}
	if s := stats(l, "b"); s.Queued != 50 || s.Unacked != 0 {
		t.Fatalf("stats %+v, want 50 queued", s)
	}

	var in2 inbox
	relisten(t, addr, nil, &in2)
	checkFor(t, 5*time.Second, in2.wantBodies(bodies...))
	checkFor(t, 5*time.Second, wantDrained(l, "b"))
	if s := stats(l, "b"); s.Reconnects < 1 || s.Dropped != 0 || s.Sent != 51 || s.Acked != 51 {
		t.Fatalf("stats %+v", s)
	}
}

// proxy forwards TCP connections to a target until cut.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // guarded by mu

	stalled atomic.Bool // drop what passes, as a partitioned network does
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, d)
			go p.pipe(d, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// cut closes every connection through the proxy, both sides.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func TestLinkExactlyOnceAcrossCuts(t *testing.T) {
	const n, cuts = 20000, 19
	var p *proxy
	var mu sync.Mutex
	var bodies []string
	handler := func(from string, it Item, done func()) {
		mu.Lock()
		bodies = append(bodies, fmt.Sprintf("%d:%s", it.Kind, it.Body))
		k := len(bodies)
		mu.Unlock()
		if k%(n/(cuts+1)) == 0 && k < n {
			p.cut() // mid-stream: more is queued, on the wire and unacknowledged
		}
		if k%3 == 0 {
			go done()
		} else {
			done()
		}
	}
	srv, err := ListenLinks("127.0.0.1:0", nil, nil, nil, handler, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p = newProxy(t, srv.Addr())

	var ups atomic.Int64
	cfg := linkConfig("a", nil, n)
	cfg.OnUp = func(peer string) {
		if peer == "b" {
			ups.Add(1)
		}
	}
	l := NewLinks(cfg)
	t.Cleanup(l.Close)
	l.Dial("b", p.addr())
	want := make([]string, n)
	for i := range n {
		kind := byte(i % 5)
		want[i] = fmt.Sprintf("%d:item-%d", kind, i)
		mustSend(t, l, "b", Item{Kind: kind, Body: fmt.Appendf(nil, "item-%d", i)})
	}
	checkFor(t, 10*time.Second, func() error {
		mu.Lock()
		k := len(bodies)
		mu.Unlock()
		if k < n {
			return fmt.Errorf("received %d of %d", k, n)
		}
		return nil
	})
	checkFor(t, 5*time.Second, wantDrained(l, "b"))
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != n {
		t.Fatalf("received %d items, want %d", len(bodies), n)
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Fatalf("item %d is %q, want %q", i, bodies[i], want[i])
		}
	}
	s := stats(l, "b")
	// A cut may come while the server still reads what the connection it
	// closed had brought, so fewer connections than cuts may be lost.
	if s.Reconnects < 3 || s.Acked != n || s.Sent < n || s.Dropped != 0 {
		t.Fatalf("stats %+v, want at least 3 reconnects", s)
	}
	t.Logf("%d cuts: %+v", cuts, s)
	checkFor(t, 5*time.Second, func() error {
		s := stats(l, "b")
		if !s.Connected || ups.Load() != s.Reconnects+1 {
			return fmt.Errorf("OnUp called %d times, stats %+v", ups.Load(), s)
		}
		return nil
	})
}

func TestLinkLateDoneAcknowledgesInOrder(t *testing.T) {
	const n = 600
	in := inbox{hold: true}
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	l := newLinks(t, "a", nil, n)
	l.Dial("b", srv.Addr())
	for i := range n {
		mustSend(t, l, "b", item(fmt.Sprint(i)))
	}
	checkFor(t, 5*time.Second, func() error {
		if s := stats(l, "b"); in.len() != n || s.Unacked != n {
			return fmt.Errorf("received %d, stats %+v", in.len(), s)
		}
		return nil
	})
	frontier := func() uint64 {
		srv.mu.Lock()
		st := srv.senders["a"].st
		srv.mu.Unlock()
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.frontier
	}

	// Done for every item but the first, out of order, from many goroutines:
	// nothing may be acknowledged.
	in.mu.Lock()
	dones := slices.Clone(in.dones)
	in.mu.Unlock()
	rest := rand.Perm(n - 1)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(rest); i += 4 {
				dones[rest[i]+1]()
				dones[rest[i]+1]() // a second call is ignored
			}
		})
	}
	wg.Wait()
	if f := frontier(); f != 0 {
		t.Fatalf("frontier %d with the first item not done", f)
	}
	if s := stats(l, "b"); s.Acked != 0 || s.Unacked != n {
		t.Fatalf("stats %+v, want nothing acknowledged", s)
	}

	dones[0]()
	checkFor(t, 5*time.Second, wantDrained(l, "b"))
	if s := stats(l, "b"); s.Acked != n || s.Sent != n {
		t.Fatalf("stats %+v", s)
	}
	if f := frontier(); f != n {
		t.Fatalf("frontier %d, want %d", f, n)
	}

	// Done after Close does no harm.
	mustSend(t, l, "b", item("last"))
	checkFor(t, 5*time.Second, func() error {
		if in.len() != n+1 {
			return fmt.Errorf("received %d", in.len())
		}
		return nil
	})
	srv.Close()
	in.mu.Lock()
	last := in.dones[n]
	in.mu.Unlock()
	last()
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
		queued, _ := l.Send("b", item(fmt.Sprint(i)))
		if queued != (i < 4) {
			t.Fatalf("Send %d = %v", i, queued)
		}
	}
	if s := stats(l, "b"); s.Queued != 4 || s.Dropped != 6 || s.Connected {
		t.Fatalf("stats %+v", s)
	}

	// Items written and not acknowledged still count against the bound.
	in := inbox{hold: true}
	listen(t, addr, nil, nil, &in)
	checkFor(t, 5*time.Second, in.wantBodies("0", "1", "2", "3"))
	checkFor(t, 5*time.Second, func() error {
		if s := stats(l, "b"); s.Unacked != 4 || s.Queued != 0 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if queued, _ := l.Send("b", item("refused")); queued {
		t.Fatal("Send beyond the bound of unacknowledged items succeeded")
	}
	in.mu.Lock()
	for _, done := range in.dones {
		done()
	}
	in.mu.Unlock()
	checkFor(t, 5*time.Second, wantDrained(l, "b"))
	mustSend(t, l, "b", item("4"))
	checkFor(t, 5*time.Second, in.wantBodies("0", "1", "2", "3", "4"))
	if s := stats(l, "b"); s.Dropped != 7 || s.Acked != 4 {
		t.Fatalf("stats %+v", s)
	}
	big := make([]byte, maxItemBody+1)
	if queued, _ := l.Send("b", Item{Body: big}); queued {
		t.Fatal("Send of an item larger than a frame succeeded")
	}
}

func TestLinkWrongSecretRefused(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", key(1), nil, &in)
	bad := newLinks(t, "intruder", key(2), 10)
	none := newLinks(t, "anon", nil, 10)
	good := newLinks(t, "friend", key(1), 10)
	for _, l := range []*Links{bad, none, good} {
		l.Dial("b", srv.Addr())
		mustSend(t, l, "b", item("from-"+l.cfg.Name))
	}
	checkFor(t, 5*time.Second, in.wantBodies("from-friend"))
	checkFor(t, 5*time.Second, func() error {
		if s := stats(bad, "b"); s.Connected || s.Queued != 1 {
			return fmt.Errorf("intruder link %+v", s)
		}
		if s := stats(none, "b"); s.Connected || s.Queued != 1 {
			return fmt.Errorf("anonymous link %+v", s)
		}
		return nil
	})
	if g := in.snapshot(); len(g) != 1 || g[0].from != "friend" {
		t.Fatalf("received %v", g)
	}
}

// rawHello connects to addr and completes the handshake by hand.
func rawHello(t *testing.T, addr, name string, epoch uint64) net.Conn {
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
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = appendString(b, "")
	if err := writeFrame(c, frameHello, b); err != nil {
		t.Fatal(err)
	}
	if typ, _, _, err := readFrame(c, nil, maxHandshakeFrame); err != nil || typ != frameWelcome {
		t.Fatalf("welcome: %d %v", typ, err)
	}
	return c
}

// waitAck reads acks from c until one acknowledges want.
func waitAck(t *testing.T, c net.Conn, want uint64) {
	t.Helper()
	for {
		typ, payload, _, err := readFrame(c, nil, maxAckFrame)
		if err != nil {
			t.Fatalf("waiting for ack %d: %v", want, err)
		}
		seq, err := decodeAck(payload)
		if typ != frameAck || err != nil || seq > want {
			t.Fatalf("frame %d %x (%v), waiting for ack %d", typ, payload, err, want)
		}
		if seq == want {
			return
		}
	}
}

// itemsFrame is an items frame carrying item "{seq}" for each seq.
func itemsFrame(seqs ...uint64) []byte {
	var items []outItem
	for _, s := range seqs {
		items = append(items, outItem{seq: s, Item: item(fmt.Sprint(s))})
	}
	return frameBytes(frameItems, appendItems(nil, items))
}

func wantClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// EOF, or a reset when the server closed with bytes unread. Acks may come
	// first.
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection not closed by the server: %v", err)
		}
	}
}

func TestLinkGarbageClosesOnlyThatConnection(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	l := newLinks(t, "a", nil, 100)
	l.Dial("b", srv.Addr())
	mustSend(t, l, "b", item("one"))
	checkFor(t, 5*time.Second, in.wantBodies("one"))

	okPayload := appendItems(nil, []outItem{{seq: 1, Item: item("g")}})
	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0xff, 0xff, 0xff, 0xff, frameItems},
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
	// A hello of another version, or with a zero epoch, is refused.
	for _, hello := range [][]byte{
		appendString(binary.BigEndian.AppendUint64(appendString([]byte{1}, "old"), 1), ""),
		appendString(binary.BigEndian.AppendUint64(appendString([]byte{linkVersion}, "zero"), 0), ""),
		appendString([]byte{linkVersion}, "noepoch"),
	} {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := readFrame(c, nil, maxHandshakeFrame); err != nil {
			t.Fatal(err)
		}
		c.Write(frameBytes(frameHello, hello))
		wantClosed(t, c)
		c.Close()
	}
	afterHello := [][]byte{
		frameBytes(0xee, nil),
		frameBytes(frameAck, []byte{1}),
		frameBytes(frameItems, []byte{0}),
		frameBytes(frameItems, []byte{5}),
		frameBytes(frameItems, []byte{1, 0, 1, 0}),                 // delta 0
		frameBytes(frameItems, []byte{2, 1, 1, 0, 0, 1, 0}),        // second delta 0
		frameBytes(frameItems, append(slices.Clone(okPayload), 0)), // trailing byte
		frameBytes(frameItems, []byte{1, 3, 9, 9, 9}),              // body beyond the frame
		frameBytes(frameItems, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0}),
		{0x01, 0, 0, 1, frameItems}, // 16 MiB + 1 announced, beyond the limit
		frameBytes(frameHello, nil),
	}
	for i, g := range afterHello {
		c := rawHello(t, srv.Addr(), fmt.Sprintf("raw%d", i), 1)
		c.Write(g)
		wantClosed(t, c)
	}
	if len(in.bodies()) != 1 {
		t.Fatalf("received %q from garbage", in.bodies())
	}
	// A well-formed frame from a hand-made connection is delivered and
	// acknowledged.
	c := rawHello(t, srv.Addr(), "raw", 1)
	c.Write(frameBytes(frameItems, okPayload))
	checkFor(t, 5*time.Second, in.wantBodies("one", "g"))
	waitAck(t, c, 1)

	mustSend(t, l, "b", item("two"))
	checkFor(t, 5*time.Second, in.wantBodies("one", "g", "two"))
	if s := stats(l, "b"); s.Reconnects != 0 || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
}

func frameBytes(typ byte, payload []byte) []byte {
	var buf bytes.Buffer
	writeFrame(&buf, typ, payload)
	return buf.Bytes()
}

func TestItemsWireFormat(t *testing.T) {
	items := []outItem{
		{seq: 5, Item: Item{Kind: 0, Body: []byte("ab")}},
		{seq: 6, Item: Item{Kind: 7}},
		{seq: 300, Item: Item{Kind: 255, Body: []byte("c")}},
	}
	want := []byte{
		3,                 // count
		5, 0, 2, 'a', 'b', // seq 5 (delta from 0), kind 0, body "ab"
		1, 7, 0, // seq 6, kind 7, empty body
		0xa6, 0x02, 255, 1, 'c', // seq 300 (delta 294), kind 255, body "c"
	}
	b := appendItems(nil, items)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	recs, err := decodeItems(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.seq != items[i].seq || r.kind != items[i].Kind || !bytes.Equal(r.body, items[i].Body) {
			t.Fatalf("item %d: %+v, want %+v", i, r, items[i])
		}
	}
	if seq, err := decodeAck([]byte{0xac, 0x02}); seq != 300 || err != nil {
		t.Fatalf("ack %d %v", seq, err)
	}
	for _, bad := range [][]byte{nil, {0}, {1, 1, 0}, {1, 0, 0, 0}, {2, 1, 0, 0}, {1, 1, 0, 1}} {
		if _, err := decodeItems(bad, nil); !errors.Is(err, errMalformed) {
			t.Fatalf("decodeItems(% x) = %v, want malformed", bad, err)
		}
	}
}

func TestLinksUpdate(t *testing.T) {
	var inB, inC inbox
	srvB := listen(t, "127.0.0.1:0", nil, nil, &inB)
	srvC := listen(t, "127.0.0.1:0", nil, nil, &inC)
	l := newLinks(t, "a", nil, 100)
	l.Update(map[string]string{"a": "127.0.0.1:1", "b": srvB.Addr()})
	checkFor(t, 5*time.Second, wantConnected(l, "b", true))
	if got := l.Stats(); len(got) != 1 || got[0].Node != "b" {
		t.Fatalf("links %+v", got)
	}
	l.Update(map[string]string{"b": srvB.Addr(), "c": srvC.Addr()})
	checkFor(t, 5*time.Second, wantConnected(l, "c", true))
	mustSend(t, l, "b", item("to-b"))
	mustSend(t, l, "c", item("to-c"))
	checkFor(t, 5*time.Second, inB.wantBodies("to-b"))
	checkFor(t, 5*time.Second, inC.wantBodies("to-c"))

	l.Update(map[string]string{"c": srvC.Addr()})
	if got := l.Stats(); len(got) != 1 || got[0].Node != "c" {
		t.Fatalf("links after removing b: %+v", got)
	}
	if queued, _ := l.Send("b", item("late")); queued || l.Connected("b") {
		t.Fatal("Send to a removed peer succeeded")
	}
	// b comes back: its sequence numbers go on, so b takes what is new.
	l.Update(map[string]string{"b": srvB.Addr(), "c": srvC.Addr()})
	mustSend(t, l, "b", item("again"))
	checkFor(t, 5*time.Second, inB.wantBodies("to-b", "again"))
	l.Update(nil)
	if got := l.Stats(); len(got) != 0 {
		t.Fatalf("links after removing all: %+v", got)
	}
}

// storeKeys returns the keys in st with the prefix.
func storeKeys(st *store.Mem, prefix string) []string {
	var out []string
	for _, k := range st.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func TestLinkDurableAcrossSenderRestart(t *testing.T) {
	st := store.NewMem()
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	addr := srv.Addr()
	cfg := linkConfig("a", nil, 100)
	cfg.Store = st
	la := NewLinks(cfg)
	t.Cleanup(la.Close)
	la.Dial("b", addr)
	var bodies []string
	for i := range 5 {
		bodies = append(bodies, fmt.Sprintf("d/%d", i))
		if queued, stored := la.Send("b", Item{Kind: 3, Body: []byte(bodies[i]), Durable: true}); !queued || !stored {
			t.Fatalf("Send = %v, %v; want queued and stored", queued, stored)
		}
	}
	checkFor(t, 5*time.Second, in.wantBodies(bodies...))
	checkFor(t, 5*time.Second, wantDrained(la, "b"))
	if keys := storeKeys(st, prefixLinkOut); len(keys) != 0 {
		t.Fatalf("acknowledged items still stored: %q", keys)
	}

	// b goes down; durable and other items are queued; a restarts.
	srv.Close()
	checkFor(t, 5*time.Second, wantConnected(la, "b", false))
	var later []string
	for i := 5; i < 10; i++ {
		later = append(later, fmt.Sprintf("d/%d", i))
		if _, stored := la.Send("b", Item{Kind: 3, Body: []byte(later[i-5]), Durable: true}); !stored {
			t.Fatal("durable item not stored")
		}
		if _, stored := la.Send("b", item(fmt.Sprintf("lost/%d", i))); stored {
			t.Fatal("item stored although not durable")
		}
	}
	if keys := storeKeys(st, prefixLinkOut); len(keys) != 5 {
		t.Fatalf("stored items %q, want 5", keys)
	}
	la.Close()
	epoch := la.epoch

	la2 := NewLinks(cfg)
	t.Cleanup(la2.Close)
	if la2.epoch != epoch {
		t.Fatalf("epoch %x after restart, was %x", la2.epoch, epoch)
	}
	if len(la2.Stats()) != 0 {
		t.Fatalf("links before Dial: %+v", la2.Stats())
	}
	var in2 inbox
	relisten(t, addr, nil, &in2)
	la2.Update(map[string]string{"b": addr})
	mustSend(t, la2, "b", item("after"))
	checkFor(t, 5*time.Second, in2.wantBodies(append(slices.Clone(later), "after")...))
	checkFor(t, 5*time.Second, wantDrained(la2, "b"))
	if keys := storeKeys(st, prefixLinkOut); len(keys) != 0 {
		t.Fatalf("acknowledged items still stored: %q", keys)
	}
	for _, g := range in2.snapshot() {
		if strings.HasPrefix(g.body, "d/") && g.kind != 3 {
			t.Fatalf("item %q came back with kind %d", g.body, g.kind)
		}
	}
}

func TestLinkSequenceSurvivesSenderRestart(t *testing.T) {
	st := store.NewMem()
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in) // stays up, remembering a's items
	cfg := linkConfig("a", nil, 100)
	cfg.Store = st
	var want []string
	for round := range 3 {
		l := NewLinks(cfg)
		l.Dial("b", srv.Addr())
		for i := range 3 {
			want = append(want, fmt.Sprintf("r%d/%d", round, i))
			mustSend(t, l, "b", item(want[len(want)-1]))
		}
		checkFor(t, 5*time.Second, in.wantBodies(want...))
		checkFor(t, 5*time.Second, wantDrained(l, "b"))
		l.Close()
	}
	if v, ok := st.Get(linkNextKey("b")); !ok || binary.BigEndian.Uint64(v) < 3*linkReserveBlock {
		t.Fatalf("reservation %x", v)
	}
}

func TestLinkReceiverRestartSkipsDone(t *testing.T) {
	st := store.NewMem()
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, st, &in)
	c := rawHello(t, srv.Addr(), "raw", 42)
	c.Write(itemsFrame(1, 2, 3, 4, 5))
	waitAck(t, c, 5)
	checkFor(t, 5*time.Second, in.wantBodies("1", "2", "3", "4", "5"))
	// Sent again on the same connection: skipped, acknowledged.
	c.Write(itemsFrame(4, 5, 6))
	waitAck(t, c, 6)
	srv.Close()
	if v, ok := st.Get(linkInKey("raw")); !ok || !bytes.Equal(v, linkInValue(42, 6)) {
		t.Fatalf("stored %x", v)
	}

	var in2 inbox
	srv2 := listen(t, "127.0.0.1:0", nil, st, &in2)
	c2 := rawHello(t, srv2.Addr(), "raw", 42)
	waitAck(t, c2, 6) // what was done before, at once
	c2.Write(itemsFrame(3, 4, 5, 6, 7, 9))
	waitAck(t, c2, 9)
	checkFor(t, 5*time.Second, in2.wantBodies("7", "9"))

	// A new epoch starts afresh, and takes over from the older connection.
	c3 := rawHello(t, srv2.Addr(), "raw", 43)
	c3.Write(itemsFrame(1, 2))
	waitAck(t, c3, 2)
	checkFor(t, 5*time.Second, in2.wantBodies("7", "9", "1", "2"))
	wantClosed(t, c2)
	srv2.Close()
	if v, ok := st.Get(linkInKey("raw")); !ok || !bytes.Equal(v, linkInValue(43, 2)) {
		t.Fatalf("stored %x", v)
	}
}

func FuzzDecodeItems(f *testing.F) {
	f.Add(appendItems(nil, []outItem{{seq: 1, Item: item("x")}, {seq: 3, Item: Item{Kind: 9}}}))
	f.Add([]byte{0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeItems(b, nil)
		if err == nil {
			var items []outItem
			for _, r := range recs {
				items = append(items, outItem{seq: r.seq, Item: Item{Kind: r.kind, Body: r.body}})
			}
			if again := appendItems(nil, items); !bytes.Equal(again, b) {
				// Varints may be written longer than needed; decoding again
				// must give the same items.
				recs2, err := decodeItems(again, nil)
				if err != nil || len(recs2) != len(recs) {
					t.Fatalf("re-decode: %v, %d items, want %d", err, len(recs2), len(recs))
				}
			}
		}
		_, _, _, _ = readFrame(bytes.NewReader(b), nil, 1<<10)
	})
}

// TestLinkDetectsSilentPeer: a peer that stops answering without closing the
// connection, as behind a network partition, is taken for unreachable once
// nothing came from it for DefaultLinkTimeout; the dialer dials again, and what
// was queued meanwhile arrives once the network is back.
func TestLinkDetectsSilentPeer(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	p := newProxy(t, srv.Addr())
	l := newLinks(t, "a", nil, 100)
	l.Dial("b", p.addr())
	mustSend(t, l, "b", item("before"))
	checkFor(t, 5*time.Second, in.wantBodies("before"))
	time.Sleep(2 * DefaultLinkHeartbeat) // pings keep an idle link up
	if !l.Connected("b") {
		t.Fatal("idle link taken for down")
	}
	p.stalled.Store(true)
	mustSend(t, l, "b", item("during"))
	checkFor(t, DefaultLinkTimeout+3*time.Second, wantConnected(l, "b", false))
	p.cut()
	p.stalled.Store(false)
	checkFor(t, 10*time.Second, in.wantBodies("before", "during"))
}

// TestLinkSendWaitHoldsBackInsteadOfDropping: with the peer's queue full,
// SendWait waits until acknowledgements make room, and gives up, counting a
// drop, only after its timeout.
func TestLinkSendWaitHoldsBackInsteadOfDropping(t *testing.T) {
	var in inbox
	srv := listen(t, "127.0.0.1:0", nil, nil, &in)
	p := newProxy(t, srv.Addr())
	l := newLinks(t, "a", nil, 4)
	l.Dial("b", p.addr())
	mustSend(t, l, "b", item("first"))
	checkFor(t, 5*time.Second, in.wantBodies("first"))
	p.stalled.Store(true) // nothing is acknowledged: the queue fills up
	for i := range 4 {
		mustSend(t, l, "b", item(fmt.Sprintf("held/%d", i)))
	}
	if queued, _ := l.SendWait("b", item("late"), 100*time.Millisecond); queued {
		t.Fatal("queued into a full queue")
	}
	if s := stats(l, "b"); s.Dropped != 1 {
		t.Fatalf("dropped %d, want 1", s.Dropped)
	}
	done := make(chan bool)
	go func() {
		queued, _ := l.SendWait("b", item("waited"), 20*time.Second)
		done <- queued
	}()
	select {
	case <-done:
		t.Fatal("SendWait returned while the queue was full")
	case <-time.After(200 * time.Millisecond):
	}
	p.cut()
	p.stalled.Store(false)
	if !<-done {
		t.Fatal("SendWait gave up although room came")
	}
	checkFor(t, 10*time.Second, in.wantBodies("first", "held/0", "held/1", "held/2", "held/3", "waited"))
}
