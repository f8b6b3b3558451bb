package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// clusterProc is one avocet process of a test cluster.
type clusterProc struct {
	name, file string
	cmd        *exec.Cmd
	mqtt       string // the MQTT listener's address
}

// clusterConfig writes the config of node i (1-based) of a cluster on 127.0.0.i.
func clusterConfig(t *testing.T, i, port int, extra string) string {
	t.Helper()
	ip := "127.0.0." + strconv.Itoa(i)
	seeds := ""
	if i > 1 {
		seeds = fmt.Sprintf("%q", "127.0.0.1:"+strconv.Itoa(port))
	}
	cfg := fmt.Sprintf(`[node]
name = "node%d"

[[listener]]
kind = "tcp"
address = "%s:0"

[[listener]]
kind = "ws"
address = "%s:0"

[admin]
address = ""

[mqtt]
sys_interval = "0s"

[store]
dir = %q

[cluster]
enabled = true
gossip_address = "%s:%d"
link_address = "%s:%d"
seeds = [%s]
dead_node_grace = "60s"
%s
`, i, ip, ip, t.TempDir(), ip, port, ip, port+1, seeds, extra)
	file := filepath.Join(t.TempDir(), "avocet.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func (p *clusterProc) start(t *testing.T) {
	t.Helper()
	cmd, addrs := startAvocetFile(t, p.file)
	p.cmd, p.mqtt = cmd, addrs["tcp"]
}

// freePortPair returns a port p such that p and p+1 are free on 127.0.0.1-3.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := p < 65000
		for i := 1; ok && i <= 3; i++ {
			for _, q := range []int{p, p + 1} {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, q))
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// dialRetry connects a 3.1.1 client, trying again while the node refuses it
// (Server unavailable while the cluster is forming).
func dialRetry(t *testing.T, addr, id string, clean bool) (*mqttClient, *mqtt.Connack) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
		c := &mqttClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: mqtt.Version311}
		c.r.Version = mqtt.Version311
		c.send(&mqtt.Connect{Version: mqtt.Version311, CleanStart: clean, ClientID: id, KeepAlive: 60})
		p, err := c.r.ReadPacket()
		if ack, ok := p.(*mqtt.Connack); err == nil && ok && ack.ReasonCode == mqtt.Success {
			t.Cleanup(func() { nc.Close() })
			return c, ack
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("connect %s to %s: %v %v", id, addr, p, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// publish sends one message and completes its QoS exchange.
func (c *mqttClient) publish(topic string, qos mqtt.QoS, id uint16, payload string) {
	c.t.Helper()
	c.send(&mqtt.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(payload)})
	switch qos {
	case mqtt.AtLeastOnce:
		c.readType(mqtt.PUBACK)
	case mqtt.ExactlyOnce:
		c.readType(mqtt.PUBREC)
		c.send(&mqtt.Pubrel{PacketID: id})
		c.readType(mqtt.PUBCOMP)
	}
}

func (c *mqttClient) readType(want mqtt.PacketType) mqtt.Packet {
	c.t.Helper()
	p := c.read()
	if p.Type() != want {
		c.t.Fatalf("got %v, want %v", p.Type(), want)
	}
	return p
}

// device is a subscribing client across its connections. Like any MQTT
// receiver it keeps the QoS 2 packet identifiers it acknowledged with PUBREC
// until their PUBREL [MQTT-4.3.3-9], and takes a PUBLISH that comes again with
// one of them, as it does when the PUBREC was lost with the connection, for the
// same message: it acknowledges it and does not deliver it twice. A QoS 1
// message may come again (at least once): after a lost PUBACK, or after a crash
// of the node before it wrote the PUBACK down; the device counts it and, as the
// test's payloads are unique, does not take it for a new one.
type device struct {
	*mqttClient
	awaitRel map[uint16]bool
	seen     map[string]bool
	resent   [3]int // by QoS, messages sent again and not delivered twice
}

// connect connects the device to addr, resuming its session.
func (d *device) connect(t *testing.T, addr string) *mqtt.Connack {
	t.Helper()
	c, ack := dialRetry(t, addr, "dev", false)
	d.mqttClient = c
	if d.awaitRel == nil {
		d.awaitRel, d.seen = map[uint16]bool{}, map[string]bool{}
	}
	return ack
}

// drop disconnects the device without reading what the broker still sends:
// closing a socket with unread data resets the connection, and the broker may
// lose the last acknowledgements the device sent.
func (d *device) drop() {
	d.send(&mqtt.Disconnect{})
	d.nc.Close()
}

// leave disconnects the device and waits for the broker to close the
// connection, so that every acknowledgement it sent is handled.
func (d *device) leave() {
	d.send(&mqtt.Disconnect{})
	_ = d.nc.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, d.nc)
	d.nc.Close()
}

// receive reads the next message delivered to the device and acknowledges it.
func (d *device) receive() *mqtt.Publish {
	d.t.Helper()
	for {
		p := d.read()
		if rel, ok := p.(*mqtt.Pubrel); ok {
			delete(d.awaitRel, rel.PacketID)
			d.send(&mqtt.Pubcomp{PacketID: rel.PacketID})
			continue
		}
		pub, ok := p.(*mqtt.Publish)
		if !ok {
			continue
		}
		switch pub.QoS {
		case mqtt.AtLeastOnce:
			d.send(&mqtt.Puback{PacketID: pub.PacketID})
			if d.seen[string(pub.Payload)] {
				d.resent[1]++
				continue
			}
		case mqtt.ExactlyOnce:
			d.send(&mqtt.Pubrec{PacketID: pub.PacketID})
			if d.awaitRel[pub.PacketID] {
				if !pub.Dup {
					d.t.Fatalf("QoS 2 message %q sent again without the DUP flag", pub.Payload)
				}
				d.resent[2]++
				continue
			}
			if d.seen[string(pub.Payload)] {
				d.t.Fatalf("QoS 2 message %q delivered twice", pub.Payload)
			}
			d.awaitRel[pub.PacketID] = true
		}
		d.seen[string(pub.Payload)] = true
		return pub
	}
}

// waitRoute publishes QoS 0 probes from pub until sub receives one: then the
// publisher's node routes the topic to the subscriber's node.
func waitRoute(t *testing.T, pub *mqttClient, sub *device, topic string) {
	t.Helper()
	got := make(chan struct{})
	go func() {
		for {
			p, err := sub.r.ReadPacket()
			if err != nil {
				return
			}
			if pp, ok := p.(*mqtt.Publish); ok && strings.HasPrefix(string(pp.Payload), "probe") {
				close(got)
				return
			}
		}
	}()
	for i := 0; ; i++ {
		pub.publish(topic, 0, 0, "probe"+strconv.Itoa(i))
		select {
		case <-got:
			// Probes sent after the first one received may follow; the caller's
			// messages use other payloads and skip them.
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i > 300 {
			t.Fatal("no route between the nodes after 30 s")
		}
	}
}

// receiveN reads n messages of topic, skipping probes, and checks their payloads
// are prefix0..prefix(n-1), in order, once each.
func receiveN(t *testing.T, c *device, n int, prefix string) {
	t.Helper()
	for i := 0; i < n; {
		p := c.receive()
		if strings.HasPrefix(string(p.Payload), "probe") {
			continue
		}
		if want := prefix + strconv.Itoa(i); string(p.Payload) != want {
			t.Fatalf("message %d: %q, want %q", i, p.Payload, want)
		}
		i++
	}
}

// TestClusterOfProcesses runs three avocet processes on 127.0.0.1-3 as one
// cluster: a subscriber on the first receives, once and in order, what a
// publisher on the third sends at every QoS; a shared subscription with members
// on the first and second gets each message once; the subscriber's persistent
// session moves to the second node with the messages queued while it was
// offline; and after that node is killed with SIGKILL and started again, the
// QoS 1 and 2 messages published meanwhile on the third arrive, none lost and
// none twice, and so does the retained message set meanwhile.
func TestClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	port := freePortPair(t)
	extra := "netsplit_publish = true"
	nodes := make([]*clusterProc, 3)
	for i := range nodes {
		nodes[i] = &clusterProc{name: "node" + strconv.Itoa(i+1), file: clusterConfig(t, i+1, port, extra)}
		nodes[i].start(t)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]

	sub := &device{}
	sub.connect(t, a.mqtt)
	sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "t/#", QoS: 2}}})
	sub.readType(mqtt.SUBACK)
	pub, _ := dialRetry(t, c.mqtt, "pub", true)
	waitRoute(t, pub, sub, "t/probe")
	id := uint16(0)
	next := func() uint16 { id++; return id }
	for _, qos := range []mqtt.QoS{1, 2} {
		prefix := "q" + strconv.Itoa(int(qos)) + "-"
		for i := range 100 {
			pub.publish("t/x", qos, next(), prefix+strconv.Itoa(i))
		}
		receiveN(t, sub, 100, prefix)
	}

	// A shared subscription with a member on A and one on B: each message from
	// C goes to one of them, and both get some. B may have learned of C after
	// A did: C routes to B first.
	probe, _ := dialRetry(t, b.mqtt, "probe-b", true)
	probe.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "b/probe", QoS: 0}}})
	probe.readType(mqtt.SUBACK)
	waitRoute(t, pub, &device{mqttClient: probe}, "b/probe")
	var members []*mqttClient
	for i, n := range []*clusterProc{a, b} {
		m, _ := dialRetry(t, n.mqtt, "member"+strconv.Itoa(i), true)
		m.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "$share/g/s/#", QoS: 1}}})
		m.readType(mqtt.SUBACK)
		members = append(members, m)
	}
	for i := range 20 {
		pub.publish("s/x", 1, next(), "sh-"+strconv.Itoa(i))
	}
	got := map[string]int{}
	for i, m := range members {
		payloads := drainPayloads(m, time.Second)
		if len(payloads) == 0 {
			t.Errorf("shared subscription member on node %d got nothing", i+1)
		}
		for _, p := range payloads {
			got[p]++
		}
	}
	for i := range 20 {
		if n := got["sh-"+strconv.Itoa(i)]; n != 1 {
			t.Fatalf("shared message sh-%d delivered %d times", i, n)
		}
	}

	// The session moves from A to B with what was queued while it was offline.
	// The device leaves without reading the PUBRELs that follow its last PUBRECs:
	// the connection may end with a reset that loses those PUBRECs, and B then
	// sends the messages again with the same packet identifiers.
	sub.drop()
	for i := range 50 {
		pub.publish("t/x", 1, next(), "off-"+strconv.Itoa(i))
	}
	if ack := sub.connect(t, b.mqtt); !ack.SessionPresent {
		t.Fatal("session not present on node B")
	}
	receiveN(t, sub, 50, "off-")

	// B crashes with the session; C keeps its messages for B until B is back.
	sub.leave()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	for i := range 40 {
		pub.publish("t/x", mqtt.QoS(1+i%2), next(), "down-"+strconv.Itoa(i))
	}
	pub.publishRetained("r/x", next(), "set while B was down")
	b.start(t)
	if ack := sub.connect(t, b.mqtt); !ack.SessionPresent {
		t.Fatal("session not present on node B after its restart")
	}
	receiveN(t, sub, 40, "down-")
	_ = sub.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		p, err := sub.r.ReadPacket()
		if err != nil {
			break
		}
		if p, ok := p.(*mqtt.Publish); ok && !strings.HasPrefix(string(p.Payload), "probe") {
			t.Fatalf("extra message %q", p.Payload)
		}
		if p, ok := p.(*mqtt.Pubrel); ok {
			delete(sub.awaitRel, p.PacketID)
			sub.send(&mqtt.Pubcomp{PacketID: p.PacketID})
		}
	}
	t.Logf("sent again after a lost acknowledgement and delivered once: QoS 1 %d, QoS 2 %d", sub.resent[1], sub.resent[2])

	// B, back, has the retained message set while it was down.
	want := map[string]string{"r/x": "set while B was down"}
	if err := waitRetained(b.mqtt, "ret-b", want, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// drainPayloads reads the messages c gets until nothing came for d, with their
// QoS 1 acknowledgements, and returns their payloads.
func drainPayloads(c *mqttClient, d time.Duration) []string {
	var out []string
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
		p, err := c.r.ReadPacket()
		if err != nil {
			return out
		}
		if pub, ok := p.(*mqtt.Publish); ok {
			if pub.QoS == mqtt.AtLeastOnce {
				c.send(&mqtt.Puback{PacketID: pub.PacketID})
			}
			out = append(out, string(pub.Payload))
		}
	}
}
