package main

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// maxBurst is the most messages a publisher writes before it flushes.
const maxBurst = 128

// stallTimeout is how long a publisher with a full window waits for an
// acknowledgement before it gives up.
const stallTimeout = 30 * time.Second

// publisher sends numbered messages on one connection. Its goroutine (run) owns
// pkt, seq and nextID and writes under c.wmu; the connection's reader goroutine
// reports acknowledgements through acked and received. The window of QoS 1 and 2
// messages in flight is counted by inflight and the packet identifiers in use are
// marked in ids, both shared by the two goroutines.
type publisher struct {
	c        *client
	b        *bench
	id       uint32        // the publisher's number in payload headers
	qos      mqtt.QoS      // QoS of every message
	window   int64         // QoS 1 and 2 messages in flight at most
	interval time.Duration // time between messages; 0 is as fast as possible
	limit    uint64        // messages to send; 0 sends until stopped
	topics   []string      // when set, message i goes to topics[i] rather than pkt.Topic
	empty    bool          // send empty payloads (clearing retained messages)

	pkt    mqtt.Publish // reused for every message; owned by run
	seq    uint64       // sequence number of the next message; owned by run
	nextID uint16       // last packet identifier handed out; owned by run

	ids      [1024]atomic.Uint64 // bit n: packet identifier n is in flight
	inflight atomic.Int64        // QoS 1 and 2 messages sent and not yet acknowledged
	kick     chan struct{}       // the reader signals window space here
	sent     atomic.Int64        // messages handed to the connection
	acks     atomic.Int64        // PUBACKs, PUBCOMPs and refusing PUBRECs
	lastAck  atomic.Int64        // bench time of the last acknowledgement
	refused  atomic.Int64        // acknowledgements with an error reason code (5.0)
	refusal  atomic.Uint32       // the last such reason code
	stray    atomic.Int64        // acknowledgements of packet identifiers not in flight
}

func newPublisher(b *bench, c *client, id uint32, topic string, qos mqtt.QoS, size int) *publisher {
	window := int64(b.cfg.inflight)
	if c.v == mqtt.Version5 {
		window = min(window, int64(c.receiveMax))
	}
	p := &publisher{
		c:      c,
		b:      b,
		id:     id,
		qos:    qos,
		window: window,
		kick:   make(chan struct{}, 1),
		pkt:    mqtt.Publish{QoS: qos, Topic: topic},
	}
	if b.cfg.rate > 0 {
		p.interval = time.Duration(float64(time.Second) / b.cfg.rate)
	}
	if size > 0 {
		p.pkt.Payload = make([]byte, size)
		for i := headerSize; i < size; i++ {
			p.pkt.Payload[i] = 'a' + byte(i%26)
		}
	}
	c.pub = p
	return p
}

// putHeader writes the header every payload starts with.
func putHeader(b []byte, run, pub uint32, seq uint64, sentAt int64) {
	binary.LittleEndian.PutUint32(b[0:], run)
	binary.LittleEndian.PutUint32(b[4:], pub)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(sentAt))
}

// run publishes until stop is closed or limit messages are sent, in bursts that
// fill the window (and, with a rate, catch up with the schedule), each flushed
// once. It returns when writing fails or no acknowledgement arrives for
// stallTimeout while the window is full.
func (p *publisher) run(stop <-chan struct{}) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := p.b.now()
	p.lastAck.Store(start)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n := uint64(maxBurst)
		if p.limit > 0 {
			if p.seq >= p.limit {
				return nil
			}
			n = min(n, p.limit-p.seq)
		}
		if p.qos > mqtt.AtMostOnce {
			free := p.window - p.inflight.Load()
			if free <= 0 {
				if err := p.waitAck(stop, timer); err != nil {
					return err
				}
				continue
			}
			n = min(n, uint64(free))
		}
		if p.interval > 0 {
			now := p.b.now()
			due := uint64((now-start)/int64(p.interval)) + 1
			if due <= p.seq {
				timer.Reset(time.Duration(start + int64(p.seq)*int64(p.interval) - now))
				select {
				case <-stop:
					return nil
				case <-timer.C:
				}
				continue
			}
			n = min(n, due-p.seq)
		}
		if err := p.writeBurst(int(n)); err != nil {
			return fmt.Errorf("client %s: publish: %w", p.c.id, err)
		}
	}
}

// waitAck waits until the reader frees window space, stop is closed or the
// publisher stalls.
func (p *publisher) waitAck(stop <-chan struct{}, timer *time.Timer) error {
	timer.Reset(time.Second)
	select {
	case <-p.kick:
	case <-stop:
	case <-timer.C:
		if idle := time.Duration(p.b.now() - p.lastAck.Load()); idle > stallTimeout {
			return fmt.Errorf("client %s: no acknowledgement for %v with %d messages in flight", p.c.id, idle.Round(time.Second), p.inflight.Load())
		}
	}
	return nil
}

// writeBurst encodes n messages into the connection's buffer and flushes it.
// When writing fails, the messages still buffered do not count as sent.
func (p *publisher) writeBurst(n int) (err error) {
	c := p.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer func() {
		unsent := 0
		if err != nil && len(c.scratch) > 0 {
			unsent = (c.bw.Buffered() + len(c.scratch) - 1) / len(c.scratch)
		}
		p.sent.Store(int64(p.seq) - int64(unsent))
	}()
	sentAt := p.b.now() // one reading per burst: a burst takes microseconds
	for range n {
		if p.topics != nil {
			p.pkt.Topic = p.topics[p.seq]
		}
		if !p.empty {
			putHeader(p.pkt.Payload, p.b.runID, p.id, p.seq, sentAt)
		}
		if p.qos > mqtt.AtMostOnce {
			p.pkt.PacketID = p.allocID()
			p.inflight.Add(1)
		}
		p.seq++
		if c.scratch, err = p.pkt.Encode(c.scratch[:0], c.v); err != nil {
			return err
		}
		if _, err := c.bw.Write(c.scratch); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// allocID returns a packet identifier not in flight and marks it. There is one,
// as the window is at most 65535 and the caller has window space.
func (p *publisher) allocID() uint16 {
	for {
		p.nextID++
		if p.nextID == 0 {
			p.nextID = 1
		}
		w, m := p.nextID>>6, uint64(1)<<(p.nextID&63)
		if p.ids[w].Load()&m == 0 {
			p.ids[w].Or(m)
			return p.nextID
		}
	}
}

// inFlight reports whether packet identifier id is in flight.
func (p *publisher) inFlight(id uint16) bool {
	return p.ids[id>>6].Load()&(uint64(1)<<(id&63)) != 0
}

// acked ends the flow of packet identifier id: PUBACK, PUBCOMP, or a PUBREC that
// refuses the message. Called by the reader goroutine.
func (p *publisher) acked(id uint16, code mqtt.ReasonCode) error {
	if p == nil {
		return fmt.Errorf("acknowledgement of packet %d on a connection that does not publish", id)
	}
	m := uint64(1) << (id & 63)
	if p.ids[id>>6].And(^m)&m == 0 {
		p.stray.Add(1)
		return nil
	}
	if code.IsError() {
		p.refused.Add(1)
		p.refusal.Store(uint32(code))
	}
	p.acks.Add(1)
	p.lastAck.Store(p.b.now())
	p.inflight.Add(-1)
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// received reports whether a PUBREC for id is expected, so that the reader
// answers it with PUBREL. Called by the reader goroutine.
func (p *publisher) received(id uint16) error {
	if p == nil {
		return fmt.Errorf("PUBREC of packet %d on a connection that does not publish", id)
	}
	if !p.inFlight(id) {
		p.stray.Add(1)
	}
	return nil
}
