package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Connections scenario settings.
const (
	dialConcurrency = 200              // dials in progress at once
	idleKeepAlive   = 300              // seconds, in the CONNECT of idle connections
	portsPerAddress = 20000            // connections per local loopback address
	aliveTimeout    = 10 * time.Second // for the PINGRESP of the final check
)

// connections opens idle connections, holds them and checks they are still open.
func (b *bench) connections(ctx context.Context) (bool, error) {
	cfg := b.cfg
	res := b.res
	n := cfg.conns
	if b.nofile < uint64(n)+64 {
		avail := int(b.nofile) - 64
		if avail < 1 {
			return false, fmt.Errorf("the open file limit of %d is too low for %d connections; raise it with ulimit -n", b.nofile, n)
		}
		b.note("the open file limit is %d, the most this process may have (raise the hard limit with ulimit -Hn, or run as root): opening %d of the %d connections", b.nofile, avail, n)
		fmt.Fprintf(b.stderr, "avocet-bench: %s\n", res.Notes[len(res.Notes)-1])
		n = avail
	}
	cr := &Connections{Requested: cfg.conns}
	res.Connections = cr

	// One loopback address has about 28000 ephemeral ports; past portsPerAddress
	// connections, spread them over 127.0.0.1, 127.0.0.2, ...
	var locals []net.Addr
	if host, _, err := net.SplitHostPort(cfg.addr); err == nil && n > portsPerAddress {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			for k := range (n + portsPerAddress - 1) / portsPerAddress {
				locals = append(locals, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+k))})
			}
		}
	}

	clients := make([]*client, n)
	defer closeClients(clients)
	var attempted, succeeded atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	stopProgress := b.progress("dials/s", "connects/s", func() (int64, int64) { return attempted.Load(), succeeded.Load() })
	defer stopProgress()
	t0 := time.Now()
	_ = forEach(ctx, n, dialConcurrency, func(i int) error {
		attempted.Add(1)
		o := connectOptions{clean: true, keepAlive: idleKeepAlive, readBuf: 16, writeBuf: 64}
		if locals != nil {
			o.local = locals[i%len(locals)]
		}
		c, err := connect(ctx, cfg, b.clientID("idle", i), o)
		if err != nil {
			if ctx.Err() == nil {
				if inner := errors.Unwrap(err); inner != nil {
					err = inner
				}
				mu.Lock()
				failures[err.Error()]++
				mu.Unlock()
			}
			return nil
		}
		clients[i] = c
		succeeded.Add(1)
		return nil
	})
	cr.ConnectSeconds = time.Since(t0).Seconds()
	cr.Succeeded = int(succeeded.Load())
	cr.Failed = int(attempted.Load()) - cr.Succeeded
	if cr.ConnectSeconds > 0 {
		cr.ConnectPerSec = float64(cr.Succeeded) / cr.ConnectSeconds
	}
	res.Duration = cr.ConnectSeconds
	reasons := make([]string, 0, len(failures))
	for r := range failures {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return failures[reasons[i]] > failures[reasons[j]] })
	for i, r := range reasons {
		if i == 3 {
			b.note("and %d other kinds of connection failure", len(reasons)-3)
			break
		}
		b.note("%d connections failed: %s", failures[r], r)
	}

	b.setPhase("hold")
	held := time.Now()
	stopPing := keepAlive(clients, idleKeepAlive/2*time.Second)
	b.sleepUntil(ctx, b.now()+int64(cfg.duration))
	stopPing()
	cr.HoldSeconds = time.Since(held).Seconds()
	if m := res.Memory; m != nil {
		after, err := readRSS(cfg.pid)
		if err != nil {
			return true, err
		}
		m.AfterKiB = after
		if cr.Succeeded > 0 {
			per := float64(after-m.BeforeKiB) / float64(cr.Succeeded)
			m.PerConnectionKiB = &per
		}
	}

	b.setPhase("check")
	var alive atomic.Int64
	_ = forEach(context.Background(), n, dialConcurrency, func(i int) error {
		c := clients[i]
		if c == nil {
			return nil
		}
		_ = c.conn.SetDeadline(time.Now().Add(aliveTimeout))
		if c.ping() != nil {
			return nil
		}
		for {
			pkt, err := c.r.ReadPacket()
			if err != nil {
				return nil
			}
			if _, ok := pkt.(*mqtt.Pingresp); ok {
				alive.Add(1)
				_ = c.conn.SetDeadline(time.Time{})
				return nil
			}
		}
	})
	cr.AliveAtEnd = int(alive.Load())
	if cr.AliveAtEnd < cr.Succeeded {
		b.note("%d connections did not answer a PINGREQ after the hold", cr.Succeeded-cr.AliveAtEnd)
	}
	stopProgress()
	closeClients(clients)
	if cr.Succeeded < cr.Requested {
		return true, fmt.Errorf("%d of %d connections opened", cr.Succeeded, cr.Requested)
	}
	return true, nil
}

// retained publishes retained messages, has a new subscriber receive them all and
// clears them.
func (b *bench) retained(ctx context.Context) (bool, error) {
	cfg := b.cfg
	res := b.res
	res.Publishers, res.Subscribers, res.Rate = 1, 1, 0
	topics := make([]string, cfg.retained)
	for i := range topics {
		topics[i] = "bench/retained/" + strconv.Itoa(i)
	}
	pc, err := connect(ctx, cfg, b.clientID("pub", 0), connectOptions{clean: true, keepAlive: 2 * uint16(pingEvery/time.Second), readBuf: 4 << 10, writeBuf: 64 << 10})
	if err != nil {
		return false, err
	}
	defer pc.close(nil)
	p := newPublisher(b, pc, 0, "", mqtt.AtLeastOnce, cfg.size)
	p.topics, p.limit, p.interval = topics, uint64(len(topics)), 0
	p.pkt.Retain = true
	pc.start()
	res.Inflight = int(p.window)
	defer keepAlive([]*client{pc}, pingEvery)()

	sub := newSubscriber(b, 0, 1, false)
	var stale []string
	sub.foreignTopics = &stale
	stopProgress := b.progress("sent/s", "delivered/s", func() (int64, int64) { return p.sent.Load(), sub.delivered.Load() })
	defer stopProgress()

	// Publish, waiting for every PUBACK.
	b.setPhase("publish")
	t0 := b.now()
	if err := p.run(ctx.Done()); err != nil {
		return false, err
	}
	waitQuiet(b.idle(), func() bool { return p.inflight.Load() == 0 || isDone(pc) }, p.acks.Load)
	if p.inflight.Load() > 0 {
		return false, fmt.Errorf("%d retained messages not acknowledged", p.inflight.Load())
	}
	rr := &Retained{PublishSeconds: time.Duration(p.lastAck.Load() - t0).Seconds()}
	res.Retained = rr
	if rr.PublishSeconds > 0 {
		rr.PublishPerSec = float64(p.acks.Load()) / rr.PublishSeconds
	}
	res.Sent = p.sent.Load()
	res.Expected = res.Sent
	res.SentPerSec = rr.PublishPerSec

	// A new subscriber receives them all. From here on an interruption no longer
	// stops the run, so that the messages are cleared.
	b.setPhase("deliver")
	sc, err := connect(context.Background(), cfg, b.clientID("sub", 0), connectOptions{addr: cfg.subAddr, clean: true, keepAlive: 2 * uint16(pingEvery/time.Second), readBuf: 64 << 10})
	if err != nil {
		return false, err
	}
	defer sc.close(nil)
	sc.sub = sub
	sc.start()
	t1 := b.now()
	if _, err := sc.subscribe(context.Background(), "bench/retained/#", cfg.qos); err != nil {
		return false, err
	}
	waitQuiet(b.idle(), func() bool { return sub.delivered.Load() >= res.Sent },
		func() int64 { return sub.delivered.Load() + sub.foreign.Load() })
	sc.close(nil)
	rr.DeliverySeconds = time.Duration(sub.last.Load() - t1).Seconds()
	res.Duration = rr.DeliverySeconds
	res.Delivered = sub.delivered.Load()
	res.Lost = max(0, res.Sent-sub.streams[0].countBelow(uint64(res.Sent)))
	res.Duplicates, res.OutOfOrder, res.Foreign = sub.dups, sub.late, sub.foreign.Load()
	if rr.DeliverySeconds > 0 {
		res.DeliveredPerSec = float64(res.Delivered) / rr.DeliverySeconds
	}
	rr.Stale = len(stale)

	// Clear them, and what earlier runs left.
	b.setPhase("clear")
	toClear := append(topics[:res.Sent:res.Sent], stale...)
	p.topics, p.limit, p.seq, p.empty, p.pkt.Payload = toClear, uint64(len(toClear)), 0, true, nil
	p.sent.Store(0)
	acks := p.acks.Load()
	if err := p.run(make(chan struct{})); err != nil {
		return true, fmt.Errorf("clear retained messages: %w", err)
	}
	waitQuiet(b.idle(), func() bool { return p.inflight.Load() == 0 || isDone(pc) }, p.acks.Load)
	rr.Cleared = int(p.acks.Load() - acks)
	stopProgress()
	pc.close(nil)
	err = b.connectionErrors([]*publisher{p}, nil, []*client{sc}, []*client{pc})
	if rr.Cleared < len(toClear) && err == nil {
		err = fmt.Errorf("%d of %d retained messages cleared", rr.Cleared, len(toClear))
	}
	return true, err
}

// persistent queues messages for an offline persistent session and drains them.
func (b *bench) persistent(ctx context.Context) (bool, error) {
	cfg := b.cfg
	res := b.res
	res.Publishers, res.Subscribers = 1, 1
	topic := "bench/persistent/" + b.tag
	subID := b.clientID("sub", 0)
	keep := 2 * uint16(pingEvery/time.Second)
	const expiry = 3600

	// 3.1.1: Clean Session 0 keeps the session. 5.0: Clean Start 1 starts anew and
	// the Session Expiry Interval keeps it.
	first := connectOptions{addr: cfg.subAddr, clean: cfg.version == mqtt.Version5, sessionExpiry: expiry, keepAlive: keep, readBuf: 64 << 10}
	sub := newSubscriber(b, 0, 1, false)
	sc, err := connect(ctx, cfg, subID, first)
	if err != nil {
		return false, err
	}
	sc.sub = sub
	sc.start()
	if _, err := sc.subscribe(ctx, topic, cfg.qos); err != nil {
		sc.close(nil)
		return false, err
	}
	if err := sc.disconnectAndWait(nil); err != nil {
		return false, err
	}
	// Whatever happens next, the session is removed at the end.
	drained := false
	defer func() {
		if !drained {
			b.removeSession(subID)
		}
	}()

	// Publish to the offline session, waiting for every acknowledgement.
	pc, err := connect(ctx, cfg, b.clientID("pub", 0), connectOptions{clean: true, keepAlive: keep, readBuf: 4 << 10, writeBuf: 64 << 10})
	if err != nil {
		return false, err
	}
	defer pc.close(nil)
	if pc.maxQoS < cfg.qos {
		return false, fmt.Errorf("the broker's Maximum QoS is %d", pc.maxQoS)
	}
	p := newPublisher(b, pc, 0, topic, cfg.qos, cfg.size)
	p.limit = uint64(cfg.messages)
	pc.start()
	res.Inflight = int(p.window)
	stopProgress := b.progress("sent/s", "delivered/s", func() (int64, int64) { return p.sent.Load(), sub.delivered.Load() })
	defer stopProgress()
	b.setPhase("publish")
	t0 := b.now()
	pubErr := p.run(ctx.Done())
	waitQuiet(b.idle(), func() bool { return p.inflight.Load() == 0 || isDone(pc) }, p.acks.Load)
	pr := &Persistent{PublishSeconds: time.Duration(p.lastAck.Load() - t0).Seconds()}
	res.Persistent = pr
	if pr.PublishSeconds > 0 {
		pr.PublishPerSec = float64(p.acks.Load()) / pr.PublishSeconds
	}
	res.Sent = p.sent.Load()
	res.Expected = res.Sent
	res.SentPerSec = pr.PublishPerSec
	pc.close(nil)

	// Come back and drain.
	b.setPhase("drain")
	t1 := b.now()
	again := connectOptions{addr: cfg.subAddr, clean: false, sessionExpiry: expiry, keepAlive: keep, readBuf: 64 << 10}
	sc2, err := connect(context.Background(), cfg, subID, again)
	if err != nil {
		return true, fmt.Errorf("reconnect the subscriber: %w", err)
	}
	pr.SessionPresent = sc2.sessionPresent
	if !sc2.sessionPresent {
		b.note("the broker did not keep the session (session present 0 on reconnection)")
	}
	sc2.sub = sub
	sc2.start()
	waitQuiet(b.idle(), func() bool { return sub.delivered.Load() >= res.Sent },
		func() int64 { return sub.delivered.Load() + sub.foreign.Load() })
	stopProgress()
	// Remove the session: 5.0 sets the Session Expiry Interval to 0 on DISCONNECT;
	// 3.1.1 connects again with Clean Session 1.
	var d mqtt.Disconnect
	if cfg.version == mqtt.Version5 {
		d.Properties.SessionExpiry = 0
		d.Properties.Set(mqtt.PropSessionExpiry)
	}
	if err := sc2.disconnectAndWait(&d); err != nil {
		b.note("%v", err)
	}
	if cfg.version != mqtt.Version5 {
		b.removeSession(subID)
	}
	drained = true

	pr.DrainSeconds = time.Duration(sub.last.Load() - t1).Seconds()
	res.Duration = pr.DrainSeconds
	res.Delivered = sub.delivered.Load()
	res.Lost = max(0, res.Sent-sub.streams[0].countBelow(uint64(res.Sent)))
	res.Duplicates, res.OutOfOrder, res.Foreign = sub.dups, sub.late, sub.foreign.Load()
	if pr.DrainSeconds > 0 {
		pr.DrainPerSec = float64(res.Delivered) / pr.DrainSeconds
		res.DeliveredPerSec = pr.DrainPerSec
	}
	if res.Lost > 0 {
		b.note("lost messages: brokers cap offline queues (Mosquitto max_queued_messages, Avocet mqtt.max_queued_messages; 1000 by default)")
	}
	err = b.connectionErrors([]*publisher{p}, []error{pubErr}, []*client{sc2}, []*client{pc})
	return true, err
}

// removeSession connects as id with a clean session to the subscribers' broker
// and disconnects, which ends the session the broker kept for id.
func (b *bench) removeSession(id string) {
	c, err := connect(context.Background(), b.cfg, id, connectOptions{addr: b.cfg.subAddr, clean: true, readBuf: 4 << 10})
	if err != nil {
		b.note("remove session %s: %v", id, err)
		return
	}
	c.start()
	if err := c.disconnectAndWait(nil); err != nil {
		b.note("remove session %s: %v", id, err)
	}
}
