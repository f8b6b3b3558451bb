package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// bridgeConfig is an avocet with one tcp listener and a bridge to a broker at
// %s with three rules: up/# out to edge/up/#, down/# in to cloud/down/#, and
// both/# both ways.
const bridgeConfig = `
[log]
level = "debug"

[store]
dir = %q

[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[admin]
address = ""

[mqtt]
sys_interval = "0s"

[[bridge]]
name = "mosquitto"
address = "tcp://%s"
client_id = "avocet-e2e-bridge"
reconnect_min = "50ms"
reconnect_max = "500ms"

[[bridge.topic]]
pattern = "up/#"
direction = "out"
qos = 1
remote_prefix = "edge/"

[[bridge.topic]]
pattern = "down/#"
direction = "in"
qos = 1
local_prefix = "cloud/"

[[bridge.topic]]
pattern = "both/#"
direction = "both"
qos = 1
`

// mosquittoBroker is a Mosquitto broker process on a fixed loopback port,
// with persistence, written on SIGUSR1 and read at start.
type mosquittoBroker struct {
	bin, conf, dir, addr string
	p                    *process
}

func newMosquittoBroker(t *testing.T) *mosquittoBroker {
	t.Helper()
	m := &mosquittoBroker{bin: program(t, "mosquitto")}
	// Started as root, Mosquitto runs as the user mosquitto, which must be
	// able to write its persistence file here.
	dir, err := os.MkdirTemp("", "avocet-e2e-mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	m.dir = dir
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(m.addr)
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n",
		port, m.dir)
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start(t)
	return m
}

// start runs mosquitto and waits until it accepts connections.
func (m *mosquittoBroker) start(t *testing.T) {
	t.Helper()
	m.p = startProcess(t, m.dir, m.bin, "-c", m.conf)
	up := func() bool {
		c, err := net.Dial("tcp", m.addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil || m.p.exited()
	}
	if !poll(20*time.Second, up) || m.p.exited() {
		t.Fatalf("mosquitto did not listen on %s\n%s%s", m.addr, m.p.stdout.String(), m.p.stderr.String())
	}
}

// collector records the messages a paho client receives, in order.
type collector struct {
	mu   sync.Mutex
	msgs []string // "topic payload", guarded by mu
}

func (c *collector) handle(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m.Topic()+" "+string(m.Payload()))
	c.mu.Unlock()
}

func (c *collector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *collector) count(msg string) int {
	n := 0
	for _, m := range c.all() {
		if m == msg {
			n++
		}
	}
	return n
}

// waitFor polls until c has received msg.
func (c *collector) waitFor(t *testing.T, msg string) {
	t.Helper()
	if !poll(20*time.Second, func() bool { return c.count(msg) > 0 }) {
		t.Fatalf("no %q within 20s; got %v", msg, c.all())
	}
}

// pahoClient connects a 3.1.1 client to addr whose messages go to c.
func pahoClient(t *testing.T, addr, id string, clean bool, c *collector) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetOrderMatters(true)
	if c != nil {
		o.SetDefaultPublishHandler(c.handle)
	}
	cl := paho.NewClient(o)
	pahoWait(t, "connect "+id, cl.Connect())
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

func pahoWait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// startBridgedAvocet runs avocet with bridgeConfig to remote and waits until
// its bridge is connected.
func startBridgedAvocet(t *testing.T, remote string) *avocet {
	t.Helper()
	dir := t.TempDir()
	a, _ := runAvocet(t, dir, fmt.Appendf(nil, bridgeConfig, filepath.Join(dir, "data"), remote), "tcp")
	a.waitBridgeConnected(t, 1)
	return a
}

// waitBridgeConnected waits until avocet has logged its n-th bridge connection.
func (a *avocet) waitBridgeConnected(t *testing.T, n int) {
	t.Helper()
	if !poll(30*time.Second, func() bool { return strings.Count(a.p.stderr.String(), "bridge connected") >= n }) {
		t.Fatalf("avocet's bridge did not connect (%d times) within 30s\n%s", n, a.p.stderr.String())
	}
}

func TestE2EBridgeMosquitto(t *testing.T) {
	requireE2E(t)
	m := newMosquittoBroker(t)
	a := startBridgedAvocet(t, m.addr)

	onMosq, onAvocet := &collector{}, &collector{}
	ms := pahoClient(t, m.addr, "e2e-mosq-sub", true, onMosq)
	pahoWait(t, "subscribe on mosquitto", ms.SubscribeMultiple(map[string]byte{"edge/#": 1, "both/#": 1}, nil))
	as := pahoClient(t, a.tcp, "e2e-avocet-sub", true, onAvocet)
	pahoWait(t, "subscribe on avocet", as.SubscribeMultiple(map[string]byte{"cloud/#": 1, "both/#": 1}, nil))
	mp := pahoClient(t, m.addr, "e2e-mosq-pub", true, nil)
	ap := pahoClient(t, a.tcp, "e2e-avocet-pub", true, nil)

	t.Run("out", func(t *testing.T) {
		pahoWait(t, "publish", ap.Publish("up/sensor/1", 1, false, "21.5"))
		onMosq.waitFor(t, "edge/up/sensor/1 21.5")
	})
	t.Run("in", func(t *testing.T) {
		pahoWait(t, "publish", mp.Publish("down/cmd", 1, false, "reboot"))
		onAvocet.waitFor(t, "cloud/down/cmd reboot")
	})
	t.Run("both_without_loops", func(t *testing.T) {
		pahoWait(t, "publish", ap.Publish("both/from-avocet", 1, false, "a"))
		onMosq.waitFor(t, "both/from-avocet a")
		// Mosquitto sends from-avocet back to the bridge's subscription ahead
		// of from-mosquitto: the bridge must drop it.
		pahoWait(t, "publish", mp.Publish("both/from-mosquitto", 1, false, "m"))
		onAvocet.waitFor(t, "both/from-mosquitto m")
		pahoWait(t, "publish", ap.Publish("both/marker", 1, false, "end"))
		onMosq.waitFor(t, "both/marker end")
		for _, c := range []struct {
			c     *collector
			where string
			msg   string
		}{
			{onAvocet, "avocet", "both/from-avocet a"}, {onAvocet, "avocet", "both/from-mosquitto m"},
			{onMosq, "mosquitto", "both/from-avocet a"}, {onMosq, "mosquitto", "both/from-mosquitto m"},
		} {
			if n := c.c.count(c.msg); n != 1 {
				t.Errorf("%s got %q %d times, want once: %v", c.where, c.msg, n, c.c.all())
			}
		}
	})
}

func TestE2EBridgeMosquittoOutage(t *testing.T) {
	requireE2E(t)
	m := newMosquittoBroker(t)
	a := startBridgedAvocet(t, m.addr)

	// A persistent session at Mosquitto, saved to its file before the kill
	// (SIGUSR1 makes Mosquitto write it), keeps the subscription across the
	// outage.
	got := &collector{}
	sub := pahoClient(t, m.addr, "e2e-outage-sub", false, got)
	pahoWait(t, "subscribe", sub.Subscribe("edge/#", 1, nil))
	subscribed := time.Now()
	if err := m.p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(m.dir, "mosquitto.db")
	saved := func() bool {
		fi, err := os.Stat(db)
		return err == nil && fi.ModTime().After(subscribed)
	}
	if !poll(20*time.Second, saved) {
		t.Fatalf("mosquitto did not save %s", db)
	}
	m.p.kill()
	sub.Disconnect(0)

	pub := pahoClient(t, a.tcp, "e2e-outage-pub", true, nil)
	const n = 200
	var want []string
	for i := range n {
		pahoWait(t, "publish", pub.Publish("up/seq", 1, false, fmt.Sprint(i)))
		want = append(want, fmt.Sprintf("edge/up/seq %d", i))
	}

	m.start(t)
	a.waitBridgeConnected(t, 2)
	pahoClient(t, m.addr, "e2e-outage-sub", false, got)
	if !poll(30*time.Second, func() bool { return len(got.all()) >= n }) {
		t.Fatalf("got %d of %d messages after the outage", len(got.all()), n)
	}
	if msgs := got.all(); !slices.Equal(msgs, want) {
		t.Errorf("after the outage mosquitto's subscriber got %d messages\n%v\nwant 0 to %d in order", len(msgs), msgs, n-1)
	}
}
