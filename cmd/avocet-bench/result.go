package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one run, as the table shows it and -json writes it.
// Counts are messages; rates are per second; latencies are microseconds.
type Result struct {
	Scenario    string    `json:"scenario"`
	Broker      string    `json:"broker"`               // the -addr
	SubBroker   string    `json:"sub_broker,omitempty"` // the -sub-addr, when it differs from the -addr
	Version     string    `json:"version"`              // "3.1.1" or "5.0"
	QoS         int       `json:"qos"`
	Size        int       `json:"size"` // payload bytes
	Publishers  int       `json:"publishers"`
	Subscribers int       `json:"subscribers"`
	Inflight    int       `json:"inflight,omitempty"` // per publisher window in use (QoS 1 and 2)
	Rate        float64   `json:"rate,omitempty"`     // target messages per second per publisher
	Started     time.Time `json:"started"`
	Warmup      float64   `json:"warmup_s,omitempty"` // seconds of publishing before the measured window
	Duration    float64   `json:"duration_s"`         // seconds over which DeliveredPerSec is measured

	Sent       int64 `json:"sent"`         // messages published
	Expected   int64 `json:"expected"`     // deliveries due: each message times the subscribers of its topic
	Delivered  int64 `json:"delivered"`    // distinct messages the subscribers received
	Lost       int64 `json:"lost"`         // Expected - Delivered
	Duplicates int64 `json:"duplicates"`   // messages received more than once
	OutOfOrder int64 `json:"out_of_order"` // messages received after a later one of the same publisher
	Foreign    int64 `json:"foreign"`      // messages of other runs, not counted
	Refused    int64 `json:"refused"`      // publications acknowledged with an error reason code (5.0)

	SentPerSec      float64 `json:"sent_per_s"`      // over the measured window
	DeliveredPerSec float64 `json:"delivered_per_s"` // over the measured window

	Latency     *Latency     `json:"latency,omitempty"`
	Connections *Connections `json:"connections,omitempty"`
	Retained    *Retained    `json:"retained,omitempty"`
	Persistent  *Persistent  `json:"persistent,omitempty"`
	Memory      *Memory      `json:"memory,omitempty"`
	Notes       []string     `json:"notes,omitempty"` // anything unusual: refusals, errors, limits
}

// Latency is the distribution of the time from a message's encoding by its
// publisher to its decoding by a subscriber, for messages sent after the warmup.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// Connections is the result of the connections scenario.
type Connections struct {
	Requested      int     `json:"requested"`
	Succeeded      int     `json:"succeeded"`
	Failed         int     `json:"failed"`
	AliveAtEnd     int     `json:"alive_at_end"` // answered a PINGREQ after the hold
	ConnectSeconds float64 `json:"connect_s"`    // from the first dial to the last CONNACK
	ConnectPerSec  float64 `json:"connect_per_s"`
	HoldSeconds    float64 `json:"hold_s"`
}

// Retained is the result of the retained scenario.
type Retained struct {
	PublishSeconds  float64 `json:"publish_s"` // publishing every message and receiving every PUBACK
	PublishPerSec   float64 `json:"publish_per_s"`
	DeliverySeconds float64 `json:"delivery_s"` // from SUBSCRIBE to the last message
	Stale           int     `json:"stale"`      // retained messages of earlier runs found
	Cleared         int     `json:"cleared"`    // retained messages cleared afterwards
}

// Persistent is the result of the persistent scenario.
type Persistent struct {
	SessionPresent bool    `json:"session_present"` // as the CONNACK of the reconnection said
	PublishSeconds float64 `json:"publish_s"`       // from the first PUBLISH to the last acknowledgement
	PublishPerSec  float64 `json:"publish_per_s"`   // acknowledged messages per second
	DrainSeconds   float64 `json:"drain_s"`         // from the reconnection's dial to the last message
	DrainPerSec    float64 `json:"drain_per_s"`
}

// Memory is the broker's resident memory (VmRSS) before and after the run.
type Memory struct {
	PID              int      `json:"pid"`
	BeforeKiB        int64    `json:"before_kib"`
	AfterKiB         int64    `json:"after_kib"`
	PerConnectionKiB *float64 `json:"per_connection_kib,omitempty"` // connections scenario: (after - before) / succeeded
}

// writeTable writes the result as a two-column table.
func (r *Result) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("scenario", "%s", r.Scenario)
	row("broker", "%s", r.Broker)
	if r.SubBroker != "" {
		row("sub broker", "%s", r.SubBroker)
	}
	row("version", "%s", r.Version)
	if r.Connections == nil {
		row("qos", "%d", r.QoS)
		row("size", "%d B", r.Size)
		row("publishers", "%d", r.Publishers)
		row("subscribers", "%d", r.Subscribers)
		if r.Inflight > 0 {
			row("inflight", "%d", r.Inflight)
		}
		if r.Rate > 0 {
			row("rate", "%s/s per publisher", num(r.Rate))
		}
		if r.Warmup > 0 {
			row("duration", "%.3f s (after %.3f s warmup)", r.Duration, r.Warmup)
		} else {
			row("duration", "%.3f s", r.Duration)
		}
		row("sent", "%s", num(float64(r.Sent)))
		row("expected", "%s", num(float64(r.Expected)))
		row("delivered", "%s", num(float64(r.Delivered)))
		lost := "0"
		if r.Lost != 0 && r.Expected > 0 {
			lost = fmt.Sprintf("%s (%.3f%%)", num(float64(r.Lost)), 100*float64(r.Lost)/float64(r.Expected))
		}
		row("lost", "%s", lost)
		row("duplicates", "%s", num(float64(r.Duplicates)))
		row("out of order", "%s", num(float64(r.OutOfOrder)))
		if r.Foreign > 0 {
			row("foreign", "%s", num(float64(r.Foreign)))
		}
		if r.Refused > 0 {
			row("refused", "%s", num(float64(r.Refused)))
		}
		row("sent/s", "%s", num(r.SentPerSec))
		row("delivered/s", "%s", num(r.DeliveredPerSec))
	}
	if l := r.Latency; l != nil {
		row("latency p50", "%.1f µs", l.P50)
		row("latency p90", "%.1f µs", l.P90)
		row("latency p99", "%.1f µs", l.P99)
		row("latency p99.9", "%.1f µs", l.P999)
		row("latency max", "%.1f µs", l.Max)
		row("latency samples", "%s", num(float64(l.Count)))
	}
	if c := r.Connections; c != nil {
		row("requested", "%s", num(float64(c.Requested)))
		row("succeeded", "%s", num(float64(c.Succeeded)))
		row("failed", "%s", num(float64(c.Failed)))
		row("alive at end", "%s", num(float64(c.AliveAtEnd)))
		row("connect time", "%.2f s", c.ConnectSeconds)
		row("connects/s", "%s", num(c.ConnectPerSec))
		row("held", "%.2f s", c.HoldSeconds)
	}
	if p := r.Retained; p != nil {
		row("publish time", "%.2f s", p.PublishSeconds)
		row("published/s", "%s", num(p.PublishPerSec))
		row("delivery time", "%.3f s", p.DeliverySeconds)
		row("stale retained", "%d", p.Stale)
		row("cleared", "%d", p.Cleared)
	}
	if p := r.Persistent; p != nil {
		row("session present", "%v", p.SessionPresent)
		row("publish time", "%.2f s", p.PublishSeconds)
		row("acknowledged/s", "%s", num(p.PublishPerSec))
		row("drain time", "%.3f s", p.DrainSeconds)
		row("drained/s", "%s", num(p.DrainPerSec))
	}
	if m := r.Memory; m != nil {
		row("broker rss before", "%s KiB", num(float64(m.BeforeKiB)))
		row("broker rss after", "%s KiB", num(float64(m.AfterKiB)))
		if m.PerConnectionKiB != nil {
			row("broker KiB/conn", "%.2f", *m.PerConnectionKiB)
		}
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	_ = tw.Flush()
}

// num formats n with thousands separators, with two decimals below 10.
func num(n float64) string {
	if n != float64(int64(n)) && n < 10 && n > -10 {
		return strconv.FormatFloat(n, 'f', 2, 64)
	}
	s := strconv.FormatInt(int64(n+0.5*sign(n)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

// readRSS returns the VmRSS of process pid in KiB.
func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("broker memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			kib, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("broker memory: VmRSS %q: %w", v, err)
			}
			return kib, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("broker memory: %w", err)
	}
	return 0, fmt.Errorf("broker memory: no VmRSS in /proc/%d/status", pid)
}
