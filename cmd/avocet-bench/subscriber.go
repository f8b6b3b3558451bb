package main

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// maxSeq bounds the sequence numbers a subscriber tracks, so that a corrupt header
// cannot make it allocate without bound.
const maxSeq = 1 << 36

// subscriber checks the messages one subscription receives. Its fields are owned
// by the reader goroutine of its connection (a persistent subscriber moves from
// one connection to the next, never with two readers at once) and are read by
// others after that goroutine ends, except the atomics, which progress lines and
// waits read while it runs.
type subscriber struct {
	b       *bench
	lo      uint32   // number of the first publisher whose messages it expects
	streams []stream // one per expected publisher, from lo on
	latency bool     // record the round trip of messages sent after the warmup
	hist    histogram

	delivered atomic.Int64 // distinct messages of this run
	last      atomic.Int64 // bench time at which the last message arrived
	foreign   atomic.Int64 // messages of other runs or publishers, or without a header
	dups      int64        // messages received again
	late      int64        // messages received after a later one of the same publisher

	// foreignTopics collects the topics of foreign messages when not nil.
	foreignTopics *[]string
}

func newSubscriber(b *bench, lo, n int, latency bool) *subscriber {
	return &subscriber{b: b, lo: uint32(lo), streams: make([]stream, n), latency: latency}
}

// deliver counts one received message, read from the network at bench time now.
// Called by the reader goroutine.
func (s *subscriber) deliver(p *mqtt.Publish, now int64) {
	s.last.Store(now)
	pl := p.Payload
	if len(pl) < headerSize || binary.LittleEndian.Uint32(pl) != s.b.runID {
		s.foreignMessage(p.Topic)
		return
	}
	idx := binary.LittleEndian.Uint32(pl[4:]) - s.lo
	seq := binary.LittleEndian.Uint64(pl[8:])
	if idx >= uint32(len(s.streams)) || seq >= maxSeq {
		s.foreignMessage(p.Topic)
		return
	}
	dup, late := s.streams[idx].add(seq)
	switch {
	case dup:
		s.dups++
		return
	case late:
		s.late++
	}
	s.delivered.Add(1)
	if sentAt := int64(binary.LittleEndian.Uint64(pl[16:])); s.latency && sentAt >= s.b.measureFrom.Load() {
		s.hist.record(now - sentAt)
	}
}

func (s *subscriber) foreignMessage(topic string) {
	s.foreign.Add(1)
	if s.foreignTopics != nil {
		*s.foreignTopics = append(*s.foreignTopics, topic)
	}
}

// stream tracks the sequence numbers received from one publisher.
type stream struct {
	seen     []uint64 // bit n: sequence number n was received
	next     uint64   // one past the highest sequence number received
	distinct int64
}

// add records seq and reports whether it was received before (dup) or arrives
// after a higher one (late).
func (s *stream) add(seq uint64) (dup, late bool) {
	w := seq >> 6
	if w >= uint64(len(s.seen)) {
		n := max(2*len(s.seen), int(w)+1, 64)
		s.seen = append(s.seen, make([]uint64, n-len(s.seen))...)
	}
	m := uint64(1) << (seq & 63)
	if s.seen[w]&m != 0 {
		return true, false
	}
	s.seen[w] |= m
	s.distinct++
	if seq < s.next {
		return false, true
	}
	s.next = seq + 1
	return false, false
}

// countBelow returns how many distinct sequence numbers below n were received.
func (s *stream) countBelow(n uint64) int64 {
	var c int
	for w, bitsW := range s.seen {
		base := uint64(w) << 6
		if base >= n {
			break
		}
		if n-base < 64 {
			bitsW &= uint64(1)<<(n-base) - 1
		}
		c += bits.OnesCount64(bitsW)
	}
	return int64(c)
}

// histogram is a log-linear histogram of nanosecond durations: exact below 128 ns,
// then 64 buckets per power of two (under 1.6% error), up to 2^40 ns.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128
	histHalf    = histSub / 2      // 64
	histMaxBits = 40
	histBuckets = histSub + (histMaxBits-histSubBits)*histHalf
)

func histBucket(v int64) int {
	if v < histSub {
		return int(max(v, 0))
	}
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	shift := bits.Len64(uint64(v)) - histSubBits
	return histSub + (shift-1)*histHalf + int(v>>shift) - histHalf
}

// histValue returns the middle of bucket i.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := (i-histSub)/histHalf + 1
	top := int64((i-histSub)%histHalf + histHalf)
	return top<<shift + int64(1)<<(shift-1)
}

func (h *histogram) record(v int64) {
	h.counts[histBucket(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q (0 to 1), no more than the maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}
