package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// avocetBinary builds the command once per test run.
func avocetBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "avocet-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "avocet")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

const testConfig = `
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[[listener]]
kind = "ws"
address = "127.0.0.1:0"

[admin]
address = ""

[mqtt]
sys_interval = "0s"
`

// withStore gives a test config its own data directory.
func withStore(cfg, dir string) string {
	return cfg + "\n[store]\ndir = \"" + dir + "\"\n"
}

// startAvocet starts the command with a config file on loopback ports and returns
// the process with the address of each listener kind it printed.
func startAvocet(t *testing.T, cfg string) (*exec.Cmd, map[string]string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "avocet.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAvocetFile(t, file)
}

// startAvocetFile starts the command with the config file at path.
func startAvocetFile(t *testing.T, file string) (*exec.Cmd, map[string]string) {
	t.Helper()
	cmd := exec.Command(avocetBinary(t), "--config", file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrs := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(addrs) < 2 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "listening" {
			addrs[f[1]] = f[2]
		}
	}
	if len(addrs) < 2 {
		t.Fatalf("avocet printed listeners %v", addrs)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, addrs
}

// mqttClient is a minimal client on the project's codec over any byte stream.
type mqttClient struct {
	t  *testing.T
	nc net.Conn
	r  *mqtt.Reader
	v  mqtt.Version
}

func newClient(t *testing.T, nc net.Conn, v mqtt.Version, id string) *mqttClient {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &mqttClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: v}
	c.r.Version = v
	c.send(&mqtt.Connect{Version: v, CleanStart: true, ClientID: id, KeepAlive: 30})
	ack, ok := c.read().(*mqtt.Connack)
	if !ok || ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNACK: %#v", ack)
	}
	return c
}

func (c *mqttClient) send(p mqtt.Packet) {
	c.t.Helper()
	b, err := p.Encode(nil, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mqttClient) read() mqtt.Packet {
	c.t.Helper()
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func TestBrokerOverTCPAndWebSocketAndSIGTERM(t *testing.T) {
	cmd, addrs := startAvocet(t, withStore(testConfig, t.TempDir()))

	tcp, err := net.Dial("tcp", addrs["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sub := newClient(t, tcp, mqtt.Version311, "tcp-sub")
	sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "ws/#", QoS: 1}}})
	if ack, ok := sub.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK: %#v", ack)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+addrs["ws"]+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	wsConn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	defer wsConn.Close()
	pub := newClient(t, wsConn, mqtt.Version5, "ws-pub")
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 7, Topic: "ws/hello", Payload: []byte("from the browser side")})
	if ack, ok := pub.read().(*mqtt.Puback); !ok || ack.PacketID != 7 || ack.ReasonCode.IsError() {
		t.Fatalf("PUBACK: %#v", ack)
	}
	got, ok := sub.read().(*mqtt.Publish)
	if !ok || got.Topic != "ws/hello" || string(got.Payload) != "from the browser side" || got.QoS != 1 {
		t.Fatalf("delivered: %#v", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("avocet exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("avocet did not stop within 20s of SIGTERM")
	}
}

func TestBadConfigStopsStartUp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(file, []byte("[mqtt]\nmax_inflight = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run([]string{"--config", file}, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, "bad.toml:2") || !strings.Contains(msg, "max_inflight") {
		t.Fatalf("error does not name the file, line and key: %q", msg)
	}
}

func TestPrintConfig(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"--print-config"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	cfg, err := config.Parse([]byte(out.String()), "printed")
	if err != nil {
		t.Fatalf("printed config does not parse: %v\n%s", err, out.String())
	}
	if cfg.MQTT.MaxInflight != config.Default().MQTT.MaxInflight || len(cfg.Listeners) != 2 {
		t.Fatalf("printed config differs from the defaults:\n%s", out.String())
	}
}

func TestVersionFlag(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"--version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.HasPrefix(out.String(), "avocet ") {
		t.Fatalf("printed %q", out.String())
	}
}

func TestBadFlag(t *testing.T) {
	if code := run([]string{"--no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("AVOCET_MQTT_MAX_INFLIGHT", "7")
	var out strings.Builder
	if code := run([]string{"--print-config"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(out.String(), "max_inflight = 7") {
		t.Fatalf("override not applied:\n%s", out.String())
	}
	t.Setenv("AVOCET_MQTT_MAX_INFLIGT", "7")
	var stderr strings.Builder
	if code := run([]string{"--print-config"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "AVOCET_MQTT_MAX_INFLIGT") {
		t.Fatalf("unknown variable: exit %d, %q", code, stderr.String())
	}
}
