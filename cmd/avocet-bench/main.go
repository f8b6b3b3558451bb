// Command avocet-bench is a load generator for MQTT brokers. It speaks MQTT 3.1.1
// and 5.0 through Avocet's own codec (package mqtt), with one reader goroutine per
// connection, buffered writes flushed per burst and packet structs and buffers
// reused from message to message, so that the client is not the bottleneck. It
// uses only standard protocol features and works against any MQTT broker.
//
// Usage:
//
//	avocet-bench [flags] SCENARIO [flags]
//
// Common flags:
//
//	-addr host:port   broker address (default 127.0.0.1:1883)
//	-sub-addr host:port
//	                  broker address of every scenario's subscribers (default: the
//	                  -addr), for example another node of the same cluster
//	-v 4|5            protocol version: 4 is MQTT 3.1.1, 5 is MQTT 5.0 (default 4)
//	-qos 0|1|2        QoS of the published messages and of the subscriptions
//	-size N           payload bytes, at least 24 (default 64)
//	-duration D       how long publishers publish, after the warmup (default 10s)
//	-warmup D         publishing before measuring starts (default 1s)
//	-inflight N       unacknowledged QoS 1/2 messages per publisher (default 64); an
//	                  MQTT 5 broker's Receive Maximum lowers it
//	-rate R           messages per second per publisher; 0 is as fast as possible
//	-json FILE        also write the result as JSON to FILE; "-" is stdout, and the
//	                  table then goes to stderr
//	-pid PID          the broker's process: its VmRSS is read from /proc/PID/status
//	                  before and after the run
//
// Scenarios and their parameters:
//
//	fanin        -pubs P (10) publishers, each on its own topic bench/fanin/<i>,
//	             to one subscriber of bench/fanin/#.
//	fanout       one publisher on bench/fanout to -subs S (100) subscribers of it.
//	pairs        -pairs N (10) publisher and subscriber pairs, pair i on bench/pairs/<i>.
//	latency      one publisher at a fixed -rate (1000/s when -rate is 0) to one
//	             subscriber of bench/latency; reports round-trip percentiles.
//	connections  opens -conns C (10000) idle connections (keep alive 300 s), at most
//	             200 dials at a time, holds them for -duration, then checks with a
//	             PINGREQ that they are still open. Reports how many succeeded, the
//	             connect rate and, with -pid, the broker's KiB per connection. The
//	             tool raises its own RLIMIT_NOFILE up to the hard limit and says so
//	             when that is too low. Past 20000 connections to a loopback address
//	             the local addresses 127.0.0.1, 127.0.0.2, ... are used in turn, as
//	             one address has about 28000 ephemeral ports.
//	retained     publishes -retained R (10000) retained QoS 1 messages on
//	             bench/retained/<i>, waiting for each PUBACK within the window, then
//	             measures how long a new subscriber of bench/retained/# at -qos takes
//	             to receive them all. Afterwards it clears them with empty retained
//	             messages, together with any left by an earlier run.
//	persistent   a subscriber with a persistent session (3.1.1: clean session 0;
//	             5.0: session expiry 3600 s) subscribes to bench/persistent/<run> at
//	             -qos (1 when not given) and disconnects; a publisher sends -messages
//	             M (100000) messages at -qos to the offline session, waiting for each
//	             acknowledgement within the window; then the subscriber comes back
//	             and drains them. The session is removed afterwards. Brokers cap
//	             offline queues (Mosquitto max_queued_messages, Avocet
//	             mqtt.max_queued_messages, both 1000 by default), and what a cap drops
//	             is reported as lost.
//
// Every payload starts with a 24-byte header: a run identifier, the publisher's
// number, its sequence number and the send time in monotonic nanoseconds since the
// tool started. Subscribers use it to count, for each publisher, distinct messages,
// duplicates and messages that arrive after a later one (out of order), and to
// measure the round trip; messages of other runs are counted as foreign and
// otherwise ignored. Lost is what the subscribers should have received (each
// message sent, times the subscribers of its topic) less what they received.
// QoS 0 loss is reported but is expected when the broker is overloaded.
// Subscribers acknowledge QoS 1 and 2 messages (PUBACK; PUBREC, then PUBCOMP on
// PUBREL). Client identifiers are bench-<scenario>-<role>-<n>-<random>.
//
// While a scenario runs, a progress line goes to stderr every second. At the end
// a table goes to stdout: messages sent and delivered, lost, duplicates, out of
// order, rates over the measured window (messages/s delivered), latency
// percentiles in microseconds where measured and memory where measured. The JSON
// form is the Result type.
//
// The exit status is 0 on success, 1 when the scenario could not run, 2 for bad
// usage and 3 when a QoS 1 or 2 scenario lost messages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// headerSize is the length of the header every payload starts with.
const headerSize = 24

// config is the parsed command line.
type config struct {
	scenario string
	addr     string
	subAddr  string // the subscribers' broker; the same as addr unless -sub-addr
	version  mqtt.Version
	qos      mqtt.QoS
	size     int
	duration time.Duration
	warmup   time.Duration
	jsonFile string
	inflight int
	rate     float64
	pubs     int
	subs     int
	pairs    int
	conns    int
	retained int
	messages int
	pid      int

	// idle is how long to wait for more deliveries once nothing arrives any more;
	// zero means the defaults (2 s at QoS 0, 5 s at QoS 1 and 2). Tests shorten it.
	idle time.Duration
}

var scenarios = []string{"fanin", "fanout", "pairs", "latency", "connections", "retained", "persistent"}

func main() {
	// The first interrupt ends the measurement; the result is still reported. A
	// second one, with the default handling restored, ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the scenario and writes the result. It returns the exit
// status. Cancelling ctx ends the measurement early; the result is still written.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "avocet-bench: %v\n", err)
		return 2
	}
	res, err := runScenario(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "avocet-bench: %s: %v\n", cfg.scenario, err)
		if res == nil {
			return 1
		}
	}
	table := stdout
	if cfg.jsonFile == "-" {
		table = stderr
	}
	res.writeTable(table)
	if cfg.jsonFile != "" {
		if werr := writeJSON(cfg.jsonFile, res, stdout); werr != nil {
			fmt.Fprintf(stderr, "avocet-bench: %v\n", werr)
			return 1
		}
	}
	switch {
	case err != nil:
		return 1
	case res.QoS > 0 && res.Lost > 0:
		return 3
	}
	return 0
}

// parseArgs parses the flags, which may come before and after the scenario name.
func parseArgs(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("avocet-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: avocet-bench [flags] SCENARIO\n\nScenarios: %s\n\nFlags:\n", strings.Join(scenarios, ", "))
		fs.PrintDefaults()
	}
	var version, qos int
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:1883", "broker `host:port`")
	fs.StringVar(&cfg.subAddr, "sub-addr", "", "subscribers' broker `host:port` (default: the -addr)")
	fs.IntVar(&version, "v", 4, "protocol version: 4 (MQTT 3.1.1) or 5 (MQTT 5.0)")
	fs.IntVar(&qos, "qos", 0, "QoS of messages and subscriptions: 0, 1 or 2")
	fs.IntVar(&cfg.size, "size", 64, "payload `bytes` (at least 24)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to publish after the warmup; connections: how long to hold them")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "how long to publish before measuring")
	fs.StringVar(&cfg.jsonFile, "json", "", "write the result as JSON to `file` (\"-\" for stdout)")
	fs.IntVar(&cfg.inflight, "inflight", 64, "unacknowledged QoS 1/2 messages per publisher")
	fs.Float64Var(&cfg.rate, "rate", 0, "messages per second per publisher; 0 is as fast as possible (latency: 1000)")
	fs.IntVar(&cfg.pubs, "pubs", 10, "fanin: publishers")
	fs.IntVar(&cfg.subs, "subs", 100, "fanout: subscribers")
	fs.IntVar(&cfg.pairs, "pairs", 10, "pairs: publisher and subscriber pairs")
	fs.IntVar(&cfg.conns, "conns", 10000, "connections: idle connections to open")
	fs.IntVar(&cfg.retained, "retained", 10000, "retained: retained messages")
	fs.IntVar(&cfg.messages, "messages", 100000, "persistent: messages sent to the offline session")
	fs.IntVar(&cfg.pid, "pid", 0, "broker process `id` whose memory (VmRSS) is reported")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return cfg, errors.New("no scenario given")
	}
	cfg.scenario = rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments after the scenario: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	known := false
	for _, s := range scenarios {
		known = known || s == cfg.scenario
	}
	switch {
	case !known:
		return cfg, fmt.Errorf("unknown scenario %q; scenarios are %s", cfg.scenario, strings.Join(scenarios, ", "))
	case version != 4 && version != 5:
		return cfg, fmt.Errorf("-v %d: the version is 4 (MQTT 3.1.1) or 5 (MQTT 5.0)", version)
	case qos < 0 || qos > 2:
		return cfg, fmt.Errorf("-qos %d: QoS is 0, 1 or 2", qos)
	case cfg.size < headerSize || cfg.size > 1<<20:
		return cfg, fmt.Errorf("-size %d: payloads are %d bytes to 1 MiB, as each carries a %d-byte header", cfg.size, headerSize, headerSize)
	case cfg.duration <= 0 || cfg.warmup < 0:
		return cfg, errors.New("-duration must be positive and -warmup not negative")
	case cfg.inflight < 1 || cfg.inflight > 65535:
		return cfg, fmt.Errorf("-inflight %d: the window is 1 to 65535", cfg.inflight)
	case cfg.rate < 0:
		return cfg, errors.New("-rate must not be negative")
	case cfg.pubs < 1 || cfg.subs < 1 || cfg.pairs < 1 || cfg.conns < 1 || cfg.retained < 1 || cfg.messages < 1:
		return cfg, errors.New("-pubs, -subs, -pairs, -conns, -retained and -messages must be at least 1")
	}
	if cfg.subAddr == "" {
		cfg.subAddr = cfg.addr
	}
	cfg.version = mqtt.Version(version)
	cfg.qos = mqtt.QoS(qos)
	switch cfg.scenario {
	case "latency":
		if cfg.rate == 0 {
			cfg.rate = 1000
		}
	case "persistent":
		if !set["qos"] {
			cfg.qos = mqtt.AtLeastOnce
		}
		if cfg.qos == mqtt.AtMostOnce {
			return cfg, errors.New("persistent: -qos 0 messages are not queued for offline sessions; use -qos 1 or 2")
		}
	}
	return cfg, nil
}

func writeJSON(file string, res *Result, stdout io.Writer) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if file == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
