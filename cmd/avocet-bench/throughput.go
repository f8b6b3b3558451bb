package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// pingEvery is how often clients of a long run send PINGREQ; their keep alive is
// twice that.
const pingEvery = 30 * time.Second

// stopTimeout is how long publishers may take to finish their last burst.
const stopTimeout = 10 * time.Second

// throughput runs fanin, fanout, pairs and latency: publishers publish for the
// warmup and the duration, subscribers count, and rates are taken over the
// duration. It reports whether it got as far as measuring.
func (b *bench) throughput(ctx context.Context) (bool, error) {
	cfg := b.cfg
	var pubTopics, filters []string
	var ranges [][2]int // publishers [lo, hi) whose messages subscriber i expects
	switch cfg.scenario {
	case "fanin":
		for i := range cfg.pubs {
			pubTopics = append(pubTopics, "bench/fanin/"+strconv.Itoa(i))
		}
		filters, ranges = []string{"bench/fanin/#"}, [][2]int{{0, cfg.pubs}}
	case "fanout":
		pubTopics = []string{"bench/fanout"}
		for range cfg.subs {
			filters, ranges = append(filters, "bench/fanout"), append(ranges, [2]int{0, 1})
		}
	case "pairs":
		for i := range cfg.pairs {
			t := "bench/pairs/" + strconv.Itoa(i)
			pubTopics, filters, ranges = append(pubTopics, t), append(filters, t), append(ranges, [2]int{i, i + 1})
		}
	case "latency":
		pubTopics, filters, ranges = []string{"bench/latency"}, []string{"bench/latency"}, [][2]int{{0, 1}}
	default:
		return false, fmt.Errorf("no throughput scenario %q", cfg.scenario)
	}
	res := b.res
	res.Publishers, res.Subscribers = len(pubTopics), len(filters)
	subClients := make([]*client, len(filters))
	subs := make([]*subscriber, len(filters))
	pubClients := make([]*client, len(pubTopics))
	pubs := make([]*publisher, len(pubTopics))
	defer func() { closeClients(subClients); closeClients(pubClients) }()

	readBuf := 64 << 10
	if len(filters) > 16 {
		readBuf = 16 << 10
	}
	var downgraded atomic.Int64
	err := forEach(ctx, len(filters), 100, func(i int) error {
		c, err := connect(ctx, cfg, b.clientID("sub", i), connectOptions{addr: cfg.subAddr, clean: true, keepAlive: 2 * uint16(pingEvery/time.Second), readBuf: readBuf})
		if err != nil {
			return err
		}
		subClients[i] = c
		subs[i] = newSubscriber(b, ranges[i][0], ranges[i][1]-ranges[i][0], true)
		c.sub = subs[i]
		c.start()
		granted, err := c.subscribe(ctx, filters[i], cfg.qos)
		if granted < cfg.qos {
			downgraded.Add(1)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("subscribers: %w", err)
	}
	if n := downgraded.Load(); n > 0 {
		b.note("the broker granted %d subscriptions a QoS below %d", n, cfg.qos)
	}
	err = forEach(ctx, len(pubTopics), 100, func(i int) error {
		c, err := connect(ctx, cfg, b.clientID("pub", i), connectOptions{clean: true, keepAlive: 2 * uint16(pingEvery/time.Second), readBuf: 4 << 10, writeBuf: 64 << 10})
		if err != nil {
			return err
		}
		pubClients[i] = c
		if c.maxQoS < cfg.qos {
			return fmt.Errorf("client %s: the broker's Maximum QoS is %d", c.id, c.maxQoS)
		}
		pubs[i] = newPublisher(b, c, uint32(i), pubTopics[i], cfg.qos, cfg.size)
		c.start()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("publishers: %w", err)
	}
	if cfg.qos > mqtt.AtMostOnce {
		res.Inflight = int(pubs[0].window)
	}

	counts := func() (sent, delivered int64) {
		for _, p := range pubs {
			sent += p.sent.Load()
		}
		for _, s := range subs {
			delivered += s.delivered.Load()
		}
		return sent, delivered
	}
	measureFrom := b.now() + int64(cfg.warmup)
	b.measureFrom.Store(measureFrom)
	if cfg.warmup > 0 {
		b.setPhase("warmup")
	} else {
		b.setPhase("measure")
	}
	stopProgress := b.progress("sent/s", "delivered/s", counts)
	defer stopProgress()
	defer keepAlive(append(append([]*client{}, subClients...), pubClients...), pingEvery)()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pubErrs := make([]error, len(pubs))
	for i, p := range pubs {
		wg.Go(func() { pubErrs[i] = p.run(stop) })
	}

	interrupted := !b.sleepUntil(ctx, measureFrom)
	sw, dw := counts()
	tw := b.now()
	b.setPhase("measure")
	if !interrupted {
		interrupted = !b.sleepUntil(ctx, measureFrom+int64(cfg.duration))
	}
	se, de := counts()
	te := b.now()
	close(stop)
	b.setPhase("drain")
	if interrupted {
		b.note("interrupted after %.1f s", time.Duration(te).Seconds())
	} else if se == sw {
		b.note("no message was sent in the measured window: the broker stopped reading from the publishers, and delivered/s is the rate at which it worked off its backlog")
	}
	if !waitTimeout(&wg, stopTimeout) {
		for _, c := range pubClients {
			_ = c.conn.SetWriteDeadline(time.Now())
		}
		wg.Wait()
		blocked := 0
		for i, err := range pubErrs {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				pubErrs[i] = nil
				blocked++
			}
		}
		b.note("%d publishers were still blocked writing %v after the end: the broker was not reading from them", blocked, stopTimeout)
	}
	if cfg.qos > mqtt.AtMostOnce {
		waitQuiet(b.idle(), func() bool {
			for i, p := range pubs {
				if p.inflight.Load() > 0 && !isDone(pubClients[i]) {
					return false
				}
			}
			return true
		}, func() int64 {
			var n int64
			for _, p := range pubs {
				n += p.acks.Load()
			}
			return n
		})
	}
	var expected int64
	for i := range subs {
		for j := ranges[i][0]; j < ranges[i][1]; j++ {
			expected += pubs[j].sent.Load()
		}
	}
	waitQuiet(b.idle(), func() bool {
		_, d := counts()
		return d >= expected
	}, func() int64 {
		_, d := counts()
		for _, s := range subs {
			d += s.foreign.Load()
		}
		return d
	})
	stopProgress()
	closeClients(subClients)
	closeClients(pubClients)

	// The readers have ended: every subscriber field may be read.
	res.Warmup = cfg.warmup.Seconds()
	res.Duration = time.Duration(te - tw).Seconds()
	if res.Duration > 0 {
		res.SentPerSec = float64(se-sw) / res.Duration
		res.DeliveredPerSec = float64(de-dw) / res.Duration
	}
	var hist histogram
	for i, s := range subs {
		for j := ranges[i][0]; j < ranges[i][1]; j++ {
			sent := pubs[j].sent.Load()
			res.Lost += max(0, sent-s.streams[j-ranges[i][0]].countBelow(uint64(sent)))
		}
		res.Delivered += s.delivered.Load()
		res.Duplicates += s.dups
		res.OutOfOrder += s.late
		res.Foreign += s.foreign.Load()
		hist.merge(&s.hist)
	}
	for _, p := range pubs {
		res.Sent += p.sent.Load()
	}
	res.Expected = expected
	if hist.n > 0 {
		res.Latency = latencyOf(&hist)
	}
	return true, b.connectionErrors(pubs, pubErrs, subClients, pubClients)
}

// connectionErrors notes refusals, stray acknowledgements and connections that
// ended early, and returns the errors of the publishers, or one saying that
// connections ended early.
func (b *bench) connectionErrors(pubs []*publisher, pubErrs []error, conns ...[]*client) error {
	var refused, stray int64
	var code uint32
	for _, p := range pubs {
		refused += p.refused.Load()
		stray += p.stray.Load()
		if c := p.refusal.Load(); c != 0 {
			code = c
		}
	}
	b.res.Refused = refused
	if refused > 0 {
		b.note("the broker refused %d messages (last reason: %v)", refused, mqtt.ReasonCode(code))
	}
	if stray > 0 {
		b.note("%d acknowledgements of packet identifiers not in flight", stray)
	}
	first := errors.Join(pubErrs...)
	if first != nil {
		b.note("%v", first)
	}
	for i, cs := range conns {
		if b.checkErrors([]string{"subscriber", "publisher"}[min(i, 1)], cs) > 0 && first == nil {
			first = errors.New("connections ended early")
		}
	}
	return first
}

// sleepUntil sleeps until bench time t; it returns false if ctx ended first.
func (b *bench) sleepUntil(ctx context.Context, t int64) bool {
	d := time.Duration(t - b.now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// waitTimeout waits for wg for at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func isDone(c *client) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// closeClients closes every client not closed yet, a few at a time.
func closeClients(cs []*client) {
	_ = forEach(context.Background(), len(cs), 200, func(i int) error {
		if cs[i] != nil {
			cs[i].close(nil)
		}
		return nil
	})
}
