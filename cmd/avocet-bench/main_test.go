package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// startBroker serves an in-process Avocet broker on 127.0.0.1:0 until the test
// ends and returns its address. Its queues are unlimited, so that a QoS 1 or 2
// loss is the tool's, not the broker's queue policy.
func startBroker(t *testing.T) string {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.MaxQueued = 0
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Serve(ln, "tcp"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ln.Addr().String()
}

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// benchRun runs one scenario against addr with short timings and returns its result.
func benchRun(t *testing.T, addr string, args ...string) *Result {
	t.Helper()
	all := append([]string{"-addr", addr, "-duration", "500ms", "-warmup", "100ms"}, args...)
	cfg, err := parseArgs(all, io.Discard)
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", all, err)
	}
	cfg.idle = 300 * time.Millisecond
	res, err := runScenario(context.Background(), cfg, logWriter{t})
	if err != nil {
		t.Fatalf("%q: %v", all, err)
	}
	var table bytes.Buffer
	res.writeTable(&table)
	t.Logf("%q:\n%s", all, table.String())
	return res
}

// checkDelivery asserts what every scenario must show: something sent, the
// deliveries due for it, no foreign messages, and at QoS 1 and 2 every message
// delivered once and in order.
func checkDelivery(t *testing.T, res *Result, perMessage int64) {
	t.Helper()
	if res.Sent == 0 || res.Delivered == 0 {
		t.Fatalf("sent %d, delivered %d", res.Sent, res.Delivered)
	}
	if res.Expected != res.Sent*perMessage {
		t.Errorf("expected %d deliveries for %d messages to %d subscribers each", res.Expected, res.Sent, perMessage)
	}
	if res.Foreign != 0 || res.Refused != 0 {
		t.Errorf("foreign %d, refused %d", res.Foreign, res.Refused)
	}
	if res.Lost != res.Expected-res.Delivered {
		t.Errorf("lost %d, but %d expected and %d delivered", res.Lost, res.Expected, res.Delivered)
	}
	if res.QoS > 0 && (res.Lost != 0 || res.Duplicates != 0 || res.OutOfOrder != 0) {
		t.Errorf("QoS %d: lost %d, duplicates %d, out of order %d", res.QoS, res.Lost, res.Duplicates, res.OutOfOrder)
	}
	if len(res.Notes) > 0 {
		t.Errorf("notes: %q", res.Notes)
	}
}

func TestThroughputScenarios(t *testing.T) {
	addr := startBroker(t)
	for _, tc := range []struct {
		args       []string
		perMessage int64
	}{
		{[]string{"-qos", "1", "fanin", "-pubs", "3"}, 1},
		{[]string{"-v", "5", "-qos", "2", "fanin", "-pubs", "3", "-inflight", "16"}, 1},
		{[]string{"-v", "5", "-qos", "1", "fanout", "-subs", "5"}, 5},
		{[]string{"-qos", "2", "pairs", "-pairs", "3"}, 1},
		{[]string{"-v", "5", "-rate", "2000", "pairs", "-pairs", "2"}, 1},
		{[]string{"-size", "24", "fanin", "-pubs", "2"}, 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := benchRun(t, addr, tc.args...)
			checkDelivery(t, res, tc.perMessage)
			if res.SentPerSec <= 0 || res.DeliveredPerSec <= 0 || res.Duration < 0.4 {
				t.Errorf("sent/s %.0f, delivered/s %.0f over %.2f s", res.SentPerSec, res.DeliveredPerSec, res.Duration)
			}
			if res.Latency == nil || res.Latency.Count == 0 {
				t.Errorf("no latency measured")
			}
			if res.QoS > 0 && (res.Inflight < 1 || res.Inflight > 64) {
				t.Errorf("inflight window %d", res.Inflight)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	addr := startBroker(t)
	res := benchRun(t, addr, "-qos", "1", "-rate", "400", "latency")
	checkDelivery(t, res, 1)
	l := res.Latency
	if l == nil {
		t.Fatal("no latency")
	}
	if l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Errorf("percentiles out of order: %+v", *l)
	}
	// 400 messages a second for 0.6 s, of which 0.5 s measured.
	if res.Sent < 150 || res.Sent > 300 || l.Count < 150 || l.Count > 230 {
		t.Errorf("sent %d, %d samples at 400/s", res.Sent, l.Count)
	}
	if res.SentPerSec < 300 || res.SentPerSec > 500 {
		t.Errorf("sent/s %.0f at -rate 400", res.SentPerSec)
	}
}

func TestConnections(t *testing.T) {
	addr := startBroker(t)
	res := benchRun(t, addr, "connections", "-conns", "150", "-duration", "200ms")
	c := res.Connections
	if c == nil || c.Requested != 150 || c.Succeeded != 150 || c.Failed != 0 || c.AliveAtEnd != 150 || c.ConnectPerSec <= 0 {
		t.Fatalf("connections: %+v", c)
	}
	if res.Memory != nil {
		t.Errorf("memory measured without -pid")
	}
	res = benchRun(t, addr, "-pid", strconv.Itoa(os.Getpid()), "connections", "-conns", "20", "-duration", "50ms")
	if m := res.Memory; m == nil || m.BeforeKiB <= 0 || m.AfterKiB <= 0 || m.PerConnectionKiB == nil {
		t.Errorf("memory: %+v", res.Memory)
	}
}

func TestRetained(t *testing.T) {
	addr := startBroker(t)

	// A retained message of some earlier run, which the scenario must find and clear.
	c, err := connect(context.Background(), &config{addr: addr, version: mqtt.Version311, inflight: 1}, "bench-test-stale", connectOptions{clean: true})
	if err != nil {
		t.Fatal(err)
	}
	p := mqtt.Publish{QoS: mqtt.AtLeastOnce, Retain: true, PacketID: 1, Topic: "bench/retained/99999", Payload: []byte("stale")}
	if err := c.write(&p); err != nil {
		t.Fatal(err)
	}
	if pkt, err := c.r.ReadPacket(); err != nil || pkt.Type() != mqtt.PUBACK {
		t.Fatalf("PUBACK: %v %v", pkt, err)
	}
	c.close(nil)

	for i, want := range []struct{ stale, cleared int }{{1, 301}, {0, 300}} {
		res := benchRun(t, addr, "-v", []string{"4", "5"}[i], "-qos", "1", "retained", "-retained", "300")
		r := res.Retained
		if r == nil {
			t.Fatal("no retained result")
		}
		if r.Stale != want.stale || r.Cleared != want.cleared {
			t.Errorf("run %d: stale %d, cleared %d; want %d, %d", i, r.Stale, r.Cleared, want.stale, want.cleared)
		}
		res.Foreign -= int64(want.stale)
		res.Notes = nil
		checkDelivery(t, res, 1)
		if res.Sent != 300 || r.PublishPerSec <= 0 || r.DeliverySeconds <= 0 || res.DeliveredPerSec <= 0 {
			t.Errorf("run %d: sent %d, published/s %.0f, delivery %.3f s", i, res.Sent, r.PublishPerSec, r.DeliverySeconds)
		}
	}
}

func TestPersistent(t *testing.T) {
	addr := startBroker(t)
	for _, args := range [][]string{
		{"persistent", "-messages", "500"},
		{"-v", "5", "-qos", "2", "-inflight", "8", "persistent", "-messages", "300"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := benchRun(t, addr, args...)
			checkDelivery(t, res, 1)
			p := res.Persistent
			if p == nil || !p.SessionPresent || p.PublishPerSec <= 0 || p.DrainPerSec <= 0 {
				t.Errorf("persistent: %+v", p)
			}
			if res.QoS == 0 || res.Delivered != res.Sent {
				t.Errorf("QoS %d, sent %d, delivered %d", res.QoS, res.Sent, res.Delivered)
			}
		})
	}
}

func TestRunWritesTableAndJSON(t *testing.T) {
	addr := startBroker(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", addr, "-qos", "1", "-duration", "300ms", "-warmup", "0s", "-json", "-", "pairs", "-pairs", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	var res Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not a JSON result: %v\n%s", err, stdout.String())
	}
	if res.Scenario != "pairs" || res.Version != "3.1.1" || res.QoS != 1 || res.Publishers != 2 || res.Lost != 0 || res.Delivered == 0 {
		t.Errorf("result: %+v", res)
	}
	if !strings.Contains(stderr.String(), "delivered/s") || !strings.Contains(stderr.String(), "scenario") {
		t.Errorf("no table or progress on stderr:\n%s", stderr.String())
	}

	if code := run(context.Background(), []string{"-addr", "127.0.0.1:1", "fanin"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit status %d with no broker; want 1", code)
	}
	if code := run(context.Background(), []string{"nosuch"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit status %d for an unknown scenario; want 2", code)
	}
}

// TestSubAddr checks that subscribers connect to -sub-addr and publishers to
// -addr: with one of them on a closed port, the other connects and the run
// fails at the side on the closed port.
func TestSubAddr(t *testing.T) {
	addr := startBroker(t)
	for _, tc := range []struct {
		addr, subAddr, failing string
	}{
		{addr: addr, subAddr: "127.0.0.1:1", failing: "subscribers:"},
		{addr: "127.0.0.1:1", subAddr: addr, failing: "publishers:"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-addr", tc.addr, "-sub-addr", tc.subAddr, "-duration", "100ms", "pairs", "-pairs", "2"}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.failing) {
			t.Errorf("-addr %s -sub-addr %s: exit status %d, stderr %q; want 1 and an error about the %s", tc.addr, tc.subAddr, code, stderr.String(), strings.TrimSuffix(tc.failing, ":"))
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(config) bool
		err   string
	}{
		{args: []string{"fanin"}, check: func(c config) bool {
			return c.addr == "127.0.0.1:1883" && c.version == mqtt.Version311 && c.qos == 0 && c.size == 64 &&
				c.duration == 10*time.Second && c.warmup == time.Second && c.inflight == 64 && c.pubs == 10 && c.rate == 0
		}},
		{args: []string{"fanin"}, check: func(c config) bool { return c.subAddr == "127.0.0.1:1883" }},
		{args: []string{"-addr", "127.0.0.3:1884", "pairs"}, check: func(c config) bool {
			return c.addr == "127.0.0.3:1884" && c.subAddr == "127.0.0.3:1884"
		}},
		{args: []string{"-addr", "127.0.0.3:1884", "pairs", "-sub-addr", "127.0.0.1:1885"}, check: func(c config) bool {
			return c.addr == "127.0.0.3:1884" && c.subAddr == "127.0.0.1:1885"
		}},
		{args: []string{"-sub-addr", "127.0.0.2:1885", "latency"}, check: func(c config) bool {
			return c.addr == "127.0.0.1:1883" && c.subAddr == "127.0.0.2:1885"
		}},
		{args: []string{"-v", "5", "fanout", "-subs", "7", "-qos", "2"}, check: func(c config) bool {
			return c.version == mqtt.Version5 && c.subs == 7 && c.qos == 2
		}},
		{args: []string{"latency"}, check: func(c config) bool { return c.rate == 1000 }},
		{args: []string{"-rate", "50", "latency"}, check: func(c config) bool { return c.rate == 50 }},
		{args: []string{"persistent"}, check: func(c config) bool { return c.qos == 1 && c.messages == 100000 }},
		{args: []string{"-qos", "2", "persistent"}, check: func(c config) bool { return c.qos == 2 }},
		{args: []string{"-qos", "0", "persistent"}, err: "-qos 1 or 2"},
		{args: []string{}, err: "no scenario"},
		{args: []string{"fanin", "extra"}, err: "unexpected arguments"},
		{args: []string{"nosuch"}, err: "unknown scenario"},
		{args: []string{"-v", "3", "fanin"}, err: "-v 3"},
		{args: []string{"-qos", "3", "fanin"}, err: "-qos 3"},
		{args: []string{"-size", "23", "fanin"}, err: "-size 23"},
		{args: []string{"-inflight", "0", "fanin"}, err: "-inflight 0"},
		{args: []string{"fanin", "-pubs", "0"}, err: "at least 1"},
	} {
		cfg, err := parseArgs(tc.args, io.Discard)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v; want one containing %q", tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err == "" && !tc.check(cfg):
			t.Errorf("%q: %+v", tc.args, cfg)
		}
	}
}

func TestStream(t *testing.T) {
	var s stream
	type step struct {
		seq       uint64
		dup, late bool
	}
	for _, st := range []step{{0, false, false}, {1, false, false}, {3, false, false}, {2, false, true}, {3, true, false}, {200, false, false}, {0, true, false}, {150, false, true}} {
		dup, late := s.add(st.seq)
		if dup != st.dup || late != st.late {
			t.Errorf("add(%d) = %v, %v; want %v, %v", st.seq, dup, late, st.dup, st.late)
		}
	}
	if s.distinct != 6 {
		t.Errorf("distinct %d; want 6", s.distinct)
	}
	for n, want := range map[uint64]int64{0: 0, 1: 1, 3: 3, 4: 4, 150: 4, 151: 5, 201: 6, 100000: 6} {
		if got := s.countBelow(n); got != want {
			t.Errorf("countBelow(%d) = %d; want %d", n, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1e6, 123456789, 1e12, 1 << 40} {
		i := histBucket(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucket(%d) = %d, outside 0..%d", v, i, histBuckets)
		}
		if got := histValue(i); v < 1<<40 && (float64(got) < float64(v)*0.984 || float64(got) > float64(v)*1.016+1) {
			t.Errorf("value(bucket(%d)) = %d: more than 1.6%% off", v, got)
		}
		if i > 0 && histBucket(v-1) > i {
			t.Errorf("buckets not monotonic at %d", v)
		}
	}
	var h histogram
	for v := int64(1); v <= 10000; v++ {
		h.record(v * 1000) // 1 µs to 10 ms
	}
	for q, want := range map[float64]float64{0.5: 5e6, 0.9: 9e6, 0.99: 9.9e6, 0.999: 9.99e6} {
		if got := float64(h.quantile(q)); got < want*0.98 || got > want*1.02 {
			t.Errorf("quantile(%v) = %.0f; want about %.0f", q, got, want)
		}
	}
	if h.quantile(1) != 1e7 || h.max != 1e7 || h.n != 10000 {
		t.Errorf("max %d, n %d, quantile(1) %d", h.max, h.n, h.quantile(1))
	}
}

// The paths taken for every message, publishing and receiving, do not allocate.
func TestMessagePathsDoNotAllocate(t *testing.T) {
	b := &bench{cfg: &config{inflight: 1000}, runID: 7, start: time.Now()}
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		c := &client{v: v, bw: bufio.NewWriterSize(io.Discard, 64<<10), receiveMax: 65535}
		p := newPublisher(b, c, 3, "bench/alloc", mqtt.AtLeastOnce, 64)
		if allocs := testing.AllocsPerRun(100, func() {
			if err := p.writeBurst(8); err != nil {
				t.Fatal(err)
			}
			for range 8 {
				if err := p.acked(p.nextID-uint16(p.inflight.Load())+1, mqtt.Success); err != nil {
					t.Fatal(err)
				}
			}
		}); allocs != 0 {
			t.Errorf("%v: publishing allocates %.1f times per burst", v, allocs)
		}
		if p.inflight.Load() != 0 || p.stray.Load() != 0 {
			t.Errorf("%v: inflight %d, stray %d", v, p.inflight.Load(), p.stray.Load())
		}
	}

	s := newSubscriber(b, 3, 1, true)
	s.streams[0].seen = make([]uint64, 1024)
	msg := mqtt.Publish{Topic: "bench/alloc", Payload: make([]byte, 64)}
	var seq uint64
	if allocs := testing.AllocsPerRun(1000, func() {
		putHeader(msg.Payload, 7, 3, seq, 0)
		seq++
		s.deliver(&msg, 1000)
	}); allocs != 0 {
		t.Errorf("receiving allocates %.1f times per message", allocs)
	}
	if s.delivered.Load() != int64(seq) || s.dups != 0 || s.late != 0 || s.hist.n != uint64(seq) {
		t.Errorf("delivered %d of %d, dups %d, late %d, samples %d", s.delivered.Load(), seq, s.dups, s.late, s.hist.n)
	}
}
