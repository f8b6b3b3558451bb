package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/cluster"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// ctlConfig runs one tcp listener and the admin API on loopback ports; %s is
// added to the [admin] table.
const ctlConfig = `
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"
%s

[mqtt]
sys_interval = "0s"
`

// ctlListener is the name of ctlConfig's listener.
const ctlListener = "tcp://127.0.0.1:0"

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctlBroker is a running avocet with the admin API.
type ctlBroker struct {
	tcp   string // the listener's address
	admin string // the admin API's URL
}

// startCtlBroker starts the binary with ctlConfig and waits for the addresses
// of its listener and admin API. Its log is shown when the test fails.
func startCtlBroker(t *testing.T, adminExtra string) *ctlBroker {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "avocet.toml")
	cfg := withStore(fmt.Sprintf(ctlConfig, adminExtra), filepath.Join(dir, "data"))
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(avocetBinary(t), "--config", file)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("avocet log:\n%s", logs.String())
		}
	})
	addrs := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for (addrs["tcp"] == "" || addrs["admin"] == "") && sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "listening" {
			addrs[f[1]] = f[2]
		}
	}
	if addrs["tcp"] == "" || addrs["admin"] == "" {
		t.Fatalf("avocet printed listeners %v", addrs)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &ctlBroker{tcp: addrs["tcp"], admin: "http://" + addrs["admin"]}
}

// ctl runs `avocet ctl --admin URL args...` and returns what it printed and
// its exit code.
func (b *ctlBroker) ctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, avocetBinary(t), append([]string{"ctl", "--admin", b.admin}, args...)...)
	cmd.Env = ctlEnv()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("avocet ctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// ctlEnv is the environment of ctl processes: the race detector's pause at
// exit, one second by default, is cut so that each call returns promptly.
func ctlEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=10"))
}

// ok runs ctl and fails the test unless it exits 0.
func (b *ctlBroker) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := b.ctl(t, args...)
	if code != 0 {
		t.Fatalf("avocet ctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// okJSON runs ctl with --json and decodes its output into v.
func (b *ctlBroker) okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := b.ok(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("avocet ctl --json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs ctl and fails the test unless it exits with code and says want
// on stderr.
func (b *ctlBroker) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	out, errOut, got := b.ctl(t, args...)
	if got != code || !strings.Contains(errOut, want) {
		t.Fatalf("avocet ctl %s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), got, code, want, out, errOut)
	}
}

// dialCtlClient connects a client with a user name and password, and with a
// session expiry interval for 5.0 when expiry is not 0.
func dialCtlClient(t *testing.T, addr string, v mqtt.Version, id, user, pass string, expiry uint32) *mqttClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &mqttClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: v}
	c.r.Version = v
	conn := &mqtt.Connect{Version: v, CleanStart: expiry == 0, ClientID: id, KeepAlive: 30}
	if user != "" {
		conn.UsernameFlag, conn.Username = true, user
	}
	if pass != "" {
		conn.PasswordFlag, conn.Password = true, []byte(pass)
	}
	if expiry != 0 {
		conn.Properties.SessionExpiry = expiry
		conn.Properties.Set(mqtt.PropSessionExpiry)
	}
	c.send(conn)
	if ack, ok := c.read().(*mqtt.Connack); !ok || ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNACK: %#v", ack)
	}
	return c
}

// expectDisconnect reads until the client gets DISCONNECT with code.
func expectDisconnect(t *testing.T, c *mqttClient, code mqtt.ReasonCode) {
	t.Helper()
	for {
		p, err := c.r.ReadPacket()
		if err != nil {
			t.Fatalf("connection closed without DISCONNECT %v: %v", code, err)
		}
		if d, ok := p.(*mqtt.Disconnect); ok {
			if d.ReasonCode != code {
				t.Fatalf("DISCONNECT %v, want %v", d.ReasonCode, code)
			}
			return
		}
	}
}

// rowOf returns the line of a table that begins with key and a space.
func rowOf(out, key string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, key+" ") {
			return line
		}
	}
	return ""
}

func TestCtlSessionsSubscriptionsAndRetained(t *testing.T) {
	b := startCtlBroker(t, "")
	plant := dialCtlClient(t, b.tcp, mqtt.Version5, "plant/line-1", "alice", "", 0)
	plant.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "cmd/#", QoS: 1}}})
	if ack, ok := plant.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK: %#v", ack)
	}
	plant.send(&mqtt.Publish{QoS: 1, PacketID: 2, Retain: true, Topic: "sensors/t", Payload: []byte("21.5")})
	if ack, ok := plant.read().(*mqtt.Puback); !ok || ack.PacketID != 2 {
		t.Fatalf("PUBACK: %#v", ack)
	}
	old := dialCtlClient(t, b.tcp, mqtt.Version311, "b2", "", "", 0)

	// status
	if out := b.ok(t, "status"); !regexp.MustCompile(`(?m)^connections +2 open, 2 clients`).MatchString(out) ||
		!strings.Contains(out, ctlListener) {
		t.Fatalf("status:\n%s", out)
	}
	var st admin.Status
	b.okJSON(t, &st, "status")
	if st.Connections.Current != 2 || st.Sessions.Online != 2 || st.Retained.Messages != 1 {
		t.Fatalf("status --json: %+v", st)
	}

	// session list and show
	out := b.ok(t, "session", "list")
	if row := rowOf(out, "plant/line-1"); !strings.Contains(row, "alice") || !strings.Contains(row, "5.0") ||
		!strings.Contains(row, "yes") {
		t.Fatalf("session list:\n%s", out)
	}
	if row := rowOf(out, "b2"); !strings.Contains(row, "3.1.1") {
		t.Fatalf("session list:\n%s", out)
	}
	if out := b.ok(t, "session", "list", "client-id=plant/*"); rowOf(out, "plant/line-1") == "" || rowOf(out, "b2") != "" {
		t.Fatalf("session list client-id=plant/*:\n%s", out)
	}
	if out := b.ok(t, "session", "list", "username=alice"); rowOf(out, "plant/line-1") == "" || rowOf(out, "b2") != "" {
		t.Fatalf("session list username=alice:\n%s", out)
	}
	if out := b.ok(t, "session", "list", "limit=1"); rowOf(out, "b2") == "" || !strings.Contains(out, "next: offset=1") {
		t.Fatalf("session list limit=1:\n%s", out)
	}
	var sessions admin.Page[broker.SessionInfo]
	b.okJSON(t, &sessions, "session", "list", "--online", "true")
	if sessions.Total != 2 || len(sessions.Items) != 2 || sessions.Items[1].ClientID != "plant/line-1" {
		t.Fatalf("session list --online true --json: %+v", sessions)
	}
	out = b.ok(t, "session", "show", "client-id=plant/line-1")
	if !strings.Contains(out, "alice") || rowOf(out, "cmd/#") == "" {
		t.Fatalf("session show:\n%s", out)
	}
	var detail admin.SessionDetail
	out = b.ok(t, "session", "show", "--client_id", "plant/line-1", "--json") // flags after the command
	if err := json.Unmarshal([]byte(out), &detail); err != nil {
		t.Fatalf("session show --json: %v\n%s", err, out)
	}
	if detail.ClientID != "plant/line-1" || len(detail.Subscriptions) != 1 || detail.Subscriptions[0].Filter != "cmd/#" {
		t.Fatalf("session show --json: %+v", detail)
	}
	b.fails(t, 3, `no session of client "nobody"`, "session", "show", "client-id=nobody")

	// subscription list
	if out := b.ok(t, "subscription", "list"); !strings.Contains(rowOf(out, "plant/line-1"), "cmd/#") {
		t.Fatalf("subscription list:\n%s", out)
	}
	if out := b.ok(t, "subscription", "list", "topic=cmd/restart"); rowOf(out, "plant/line-1") == "" {
		t.Fatalf("subscription list topic=cmd/restart:\n%s", out)
	}
	var subs admin.Page[admin.SubscriptionInfo]
	b.okJSON(t, &subs, "subscription", "list", "topic=other/x")
	if subs.Total != 0 || subs.Items == nil {
		t.Fatalf("subscription list topic=other/x: %+v", subs)
	}
	b.fails(t, 1, "topic", "subscription", "list", "topic=bad/#")

	// retained list and delete
	if out := b.ok(t, "retained", "list", "filter=sensors/#"); !strings.Contains(rowOf(out, "sensors/t"), `"21.5"`) {
		t.Fatalf("retained list:\n%s", out)
	}
	var retained admin.Page[admin.RetainedMessage]
	b.okJSON(t, &retained, "retained", "list")
	if retained.Total != 1 || retained.Items[0].Payload != "21.5" {
		t.Fatalf("retained list --json: %+v", retained)
	}
	b.ok(t, "retained", "delete", "topic=sensors/t")
	if out := b.ok(t, "retained", "list"); rowOf(out, "sensors/t") != "" {
		t.Fatalf("retained list after delete:\n%s", out)
	}
	b.fails(t, 3, "no retained message", "retained", "delete", "topic=sensors/t")

	// disconnect and delete
	if out := b.ok(t, "session", "disconnect", "client-id=plant/line-1"); !strings.Contains(out, "disconnected") {
		t.Fatalf("session disconnect: %s", out)
	}
	expectDisconnect(t, plant, mqtt.AdministrativeAction)
	waitFor(t, "the session of plant/line-1 to end", func() bool {
		_, _, code := b.ctl(t, "session", "show", "client-id=plant/line-1")
		return code == 3
	})
	b.ok(t, "session", "delete", "client-id=b2")
	if _, err := old.r.ReadPacket(); err == nil {
		t.Fatal("b2 is still connected after session delete")
	}
	b.fails(t, 3, "no session", "session", "show", "client-id=b2")
	b.fails(t, 3, "no session", "session", "delete", "client-id=b2")

	// an offline session cannot be disconnected
	keeper := dialCtlClient(t, b.tcp, mqtt.Version5, "keeper", "", "", 3600)
	keeper.send(&mqtt.Disconnect{})
	waitFor(t, "keeper to go offline", func() bool {
		var pg admin.Page[broker.SessionInfo]
		b.okJSON(t, &pg, "session", "list", "online=false")
		return pg.Total == 1 && pg.Items[0].ClientID == "keeper"
	})
	b.fails(t, 1, "not connected", "session", "disconnect", "client-id=keeper")
}

func TestCtlListenersConfigAndDrain(t *testing.T) {
	const token = "tok-93f1c0-do-not-print"
	b := startCtlBroker(t, `token = "`+token+`"`)
	b.fails(t, 1, "token", "status")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// listener list, stop, start
	out := b.ok(t, "--token-file", tokenFile, "listener", "list")
	if row := rowOf(out, ctlListener); !strings.Contains(row, b.tcp) || !strings.Contains(row, "yes") {
		t.Fatalf("listener list:\n%s", out)
	}
	b.ok(t, "--token", token, "listener", "stop", "name="+ctlListener)
	if nc, err := net.Dial("tcp", b.tcp); err == nil {
		nc.Close()
		t.Fatal("a stopped listener accepted a connection")
	}
	var ls []admin.ListenerInfo
	b.okJSON(t, &ls, "--token", token, "listener", "list")
	if len(ls) != 1 || ls[0].Running {
		t.Fatalf("listener list after stop: %+v", ls)
	}
	b.ok(t, "--token", token, "listener", "start", "name="+ctlListener)
	b.okJSON(t, &ls, "--token", token, "listener", "list")
	if len(ls) != 1 || !ls[0].Running {
		t.Fatalf("listener list after start: %+v", ls)
	}
	c := dialCtlClient(t, ls[0].Address, mqtt.Version5, "after-restart", "", "", 0)
	b.fails(t, 3, "no listener", "--token", token, "listener", "stop", "name=tcp://nowhere:1")

	// config show masks the token
	out = b.ok(t, "--token", token, "config", "show")
	if strings.Contains(out, token) || !strings.Contains(out, "[admin]") || !strings.Contains(out, `token = "********"`) ||
		!strings.Contains(out, "[[listener]]") {
		t.Fatalf("config show:\n%s", out)
	}
	var cfg struct {
		Admin struct {
			Token string `json:"token"`
		} `json:"admin"`
	}
	out = b.ok(t, "--token", token, "--json", "config", "show")
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || strings.Contains(out, token) || cfg.Admin.Token != "********" {
		t.Fatalf("config show --json (%v):\n%s", err, out)
	}

	// drain
	if out := b.ok(t, "--token", token, "drain"); !strings.Contains(out, "draining") {
		t.Fatalf("drain: %s", out)
	}
	expectDisconnect(t, c, mqtt.ServerShuttingDown)
	waitFor(t, "the drain to stop the listener", func() bool {
		var st admin.Status
		b.okJSON(t, &st, "--token", token, "status")
		return st.Health == "draining" && len(st.Listeners) == 1 && !st.Listeners[0].Running
	})
	if nc, err := net.Dial("tcp", ls[0].Address); err == nil {
		nc.Close()
		t.Fatal("a drained broker accepted a connection")
	}
	if out := b.ok(t, "--token", token, "status"); !regexp.MustCompile(`(?m)^health +draining`).MatchString(out) {
		t.Fatalf("status after drain:\n%s", out)
	}
}

// traceProc is a running `avocet ctl trace`.
type traceProc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan error
}

// startTrace starts `avocet ctl trace client-id=id` and waits until it
// follows the stream.
func startTrace(t *testing.T, b *ctlBroker, id string, args ...string) *traceProc {
	t.Helper()
	args = append([]string{"ctl", "--admin", b.admin}, args...)
	args = append(args, "trace", "client-id="+id)
	p := &traceProc{cmd: exec.Command(avocetBinary(t), args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{},
		done: make(chan error, 1)}
	p.cmd.Env = ctlEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	waitFor(t, "the trace to start", func() bool { return strings.Contains(p.stderr.String(), "tracing client") })
	return p
}

// interrupt stops the trace with SIGINT and waits for it to exit 0.
func (p *traceProc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("trace exited with %v after SIGINT\nstderr: %s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("trace did not stop within 15s of SIGINT")
	}
}

func TestCtlTrace(t *testing.T) {
	b := startCtlBroker(t, "")
	const password = "pw-5ecret-7f3a"
	human := startTrace(t, b, "sensor/7")
	raw := startTrace(t, b, "sensor/7", "--json")

	c := dialCtlClient(t, b.tcp, mqtt.Version5, "sensor/7", "tracer", password, 0)
	payload := "hello trace " + strings.Repeat("x", 300)
	c.send(&mqtt.Publish{QoS: 1, PacketID: 9, Topic: "plant/temp", Payload: []byte(payload)})
	if ack, ok := c.read().(*mqtt.Puback); !ok || ack.PacketID != 9 {
		t.Fatalf("PUBACK: %#v", ack)
	}
	waitFor(t, "the traces to show the PUBACK", func() bool {
		return strings.Contains(human.stdout.String(), "PUBACK") && strings.Contains(raw.stdout.String(), `"PUBACK"`)
	})
	human.interrupt(t)
	raw.interrupt(t)

	out := human.stdout.String()
	var connect, publish string
	for line := range strings.Lines(out) {
		switch {
		case strings.Contains(line, " -> CONNECT "):
			connect = line
		case strings.Contains(line, " -> PUBLISH "):
			publish = line
		}
	}
	if !strings.Contains(connect, "username=tracer") || !strings.Contains(connect, "protocol=5.0") {
		t.Fatalf("no CONNECT line in the trace:\n%s", out)
	}
	if !strings.Contains(publish, "sensor/7") || !strings.Contains(publish, "id=9") || !strings.Contains(publish, "topic=plant/temp") ||
		!strings.Contains(publish, "qos=1") || !strings.Contains(publish, "size=312") ||
		!strings.Contains(publish, `payload="hello trace xxx`) || !strings.HasSuffix(strings.TrimSpace(publish), `"...`) {
		t.Fatalf("PUBLISH line: %q\n%s", publish, out)
	}
	if !strings.Contains(out, " <- PUBACK id=9") || !strings.Contains(out, " <- CONNACK") {
		t.Fatalf("no PUBACK or CONNACK line in the trace:\n%s", out)
	}

	lines := raw.stdout.String()
	var sawPublish bool
	for line := range strings.Lines(lines) {
		var ev admin.TraceEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("trace --json line %q: %v", line, err)
		}
		if ev.Type == "PUBLISH" && ev.Topic == "plant/temp" && ev.Truncated && *ev.PayloadSize == len(payload) {
			sawPublish = true
		}
	}
	if !sawPublish {
		t.Fatalf("no PUBLISH in trace --json:\n%s", lines)
	}
	for _, s := range []string{out, lines, human.stderr.String(), raw.stderr.String()} {
		if strings.Contains(s, password) || strings.Contains(s, payload) {
			t.Fatalf("the trace shows the password or the whole payload:\n%s", s)
		}
	}
}

func TestCtlUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"session"},
		{"session", "show"},
		{"session", "list", "color=red"},
		{"session", "list", "limit=1", "limit=2"},
		{"status", "extra=1"},
		{"trace"},
		{"--timeout", "soon", "status"},
		{"--no-such-flag", "status"},
		{"--token", "a", "--token-file", "b", "status"},
		{"--admin", "ftp://host", "status"},
		{"listener", "stop", "--name"},
		{"cluster"},
		{"cluster", "join"},
		{"cluster", "join", "seeds="},
		{"cluster", "join", "seeds=,"},
		{"cluster", "join", "127.0.0.2:7946", "seeds=127.0.0.3:7946"},
		{"cluster", "show", "extra"},
		{"cluster", "leave", "now"},
		{"cluster", "leave", "seeds=127.0.0.2:7946"},
	} {
		var stdout, stderr strings.Builder
		code := run(append([]string{"ctl"}, args...), &stdout, &stderr)
		if code != ctlExitUsage {
			t.Errorf("ctl %q: exit %d, want %d\n%s", args, code, ctlExitUsage, stderr.String())
			continue
		}
		for _, c := range ctlCommands {
			if !strings.Contains(stderr.String(), c.name) {
				t.Errorf("ctl %q: the usage does not list %q:\n%s", args, c.name, stderr.String())
			}
		}
	}
	var stdout strings.Builder
	if code := run([]string{"ctl", "help"}, &stdout, io.Discard); code != 0 || !strings.Contains(stdout.String(), "retained delete topic=T") {
		t.Fatalf("ctl help: exit %d\n%s", code, stdout.String())
	}
	var stderr strings.Builder
	if code := run([]string{"ctl", "--admin", "127.0.0.1:1", "status"}, io.Discard, &stderr); code != ctlExitFailed {
		t.Fatalf("ctl status with no API: exit %d, %s", code, stderr.String())
	}
}

func TestCtlTraceText(t *testing.T) {
	qos, size, rc := byte(1), 300, byte(0x10)
	at := time.Date(2026, 11, 29, 20, 22, 52, 290_000_000, time.UTC)
	for _, tc := range []struct {
		ev   admin.TraceEvent
		want string
	}{
		{admin.TraceEvent{ClientID: "c\x1b[2J", Direction: "in", Type: "PUBLISH", PacketID: 3, Topic: "a/b", QoS: &qos,
			Retain: true, PayloadSize: &size, Payload: "caf\u00e9\n", Truncated: true},
			` c\x1b[2J -> PUBLISH id=3 topic=a/b qos=1 retain size=300 payload="café\n"...`},
		{admin.TraceEvent{ClientID: "c", Direction: "out", Type: "PUBACK", PacketID: 3, ReasonCode: &rc, Reason: "no matching subscribers"},
			` c <- PUBACK id=3 reason=0x10 (no matching subscribers)`},
		{admin.TraceEvent{ClientID: "c", Direction: "out", Type: "SUBACK", PacketID: 4, ReasonCodes: []int{1, 0x80}},
			` c <- SUBACK id=4 reasons=0x01,0x80`},
		{admin.TraceEvent{ClientID: "c", Direction: "out", Type: "PUBLISH", QoS: new(byte), PayloadSize: &size,
			PayloadBase64: "//4BAg==", Truncated: true},
			` c <- PUBLISH qos=0 size=300 payload_base64=//4BAg==...`},
		{admin.TraceEvent{ClientID: "c", Dropped: 118}, ` c !! 118 packets not shown: the trace fell behind`},
	} {
		tc.ev.Time = at
		want := at.Local().Format("15:04:05.000") + tc.want
		if got := traceText(tc.ev); got != want {
			t.Errorf("traceText:\n got %q\nwant %q", got, want)
		}
	}
}

// ctlFakeCluster is the cluster an admin server reports in the ctl tests of
// the cluster commands: a fixed status, and the joins and leaves asked for.
type ctlFakeCluster struct {
	mu        sync.Mutex
	clustered bool       // guarded by mu
	joins     [][]string // guarded by mu
	leaves    int        // guarded by mu
}

func (f *ctlFakeCluster) status() *cluster.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.clustered {
		return nil
	}
	return &cluster.Status{
		Node:     "avocet@n1",
		Netsplit: true,
		Members: []cluster.Member{
			{Name: "avocet@n2", GossipAddr: "127.0.0.2:7946", LinkAddr: "127.0.0.2:7947", State: cluster.StateDead},
			{Name: "avocet@n1", GossipAddr: "127.0.0.1:7946", LinkAddr: "127.0.0.1:7947", State: cluster.StateAlive},
		},
		Links: []cluster.LinkStats{
			{Node: "avocet@n2", Addr: "127.0.0.2:7947", Queued: 12, Unacked: 3, Sent: 900, Acked: 897, Dropped: 5, Reconnects: 2},
		},
		Filters: 4, Forwarded: 900, ForwardDrops: 5, Received: 41, RetainApplied: 2, SessionsMoved: 1,
	}
}

func (f *ctlFakeCluster) join(seeds []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(seeds, "127.0.0.9:7946") {
		return errors.New("no seed answered")
	}
	f.joins = append(f.joins, seeds)
	return nil
}

func (f *ctlFakeCluster) leave() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaves++
	return nil
}

// startCtlCluster serves an admin API in process, over a broker that serves
// no clients, with fc as its cluster; it returns the API's URL.
func startCtlCluster(t *testing.T, fc *ctlFakeCluster) string {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.SysInterval = 0
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(admin.Options{Address: "127.0.0.1:0", Broker: b, Logger: opts.Logger,
		Cluster: fc.status, ClusterJoin: fc.join, ClusterLeave: fc.leave})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("broker Close: %v", err)
		}
	})
	return hs.URL
}

// runCtlIn runs `avocet ctl --admin url args...` in this process.
func runCtlIn(url string, args ...string) (stdout, stderr string, code int) {
	var out, errOut strings.Builder
	code = run(append([]string{"ctl", "--admin", url}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestCtlCluster(t *testing.T) {
	fc := &ctlFakeCluster{clustered: true}
	url := startCtlCluster(t, fc)
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCtlIn(url, args...)
		if code != ctlExitOK {
			t.Fatalf("ctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	out := ok("cluster", "show")
	for _, want := range []string{
		"node      avocet@n1\n",
		"netsplit  yes\n",
		"messages  900 forwarded, 5 not forwarded, 41 received\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster show lacks %q:\n%s", want, out)
		}
	}
	rows := regexp.MustCompile(`(?m)^(MEMBER|PEER|avocet@n\d)\s.*$`).FindAllString(out, -1)
	want := []string{
		"MEMBER     STATE  GOSSIP ADDRESS  LINK ADDRESS",
		"avocet@n1  alive  127.0.0.1:7946  127.0.0.1:7947",
		"avocet@n2  dead   127.0.0.2:7946  127.0.0.2:7947",
		"PEER       UP  QUEUED  UNACKED  SENT  ACKED  DROPPED",
		"avocet@n2  no  12      3        900   897    5",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("cluster show tables:\n%s\nwant\n%s\nall:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"), out)
	}

	var st admin.ClusterStatus
	if err := json.Unmarshal([]byte(ok("cluster", "show", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "avocet@n1" || !st.Netsplit || len(st.Members) != 2 || st.Members[1].State != "dead" ||
		len(st.Links) != 1 || st.Links[0].Dropped != 5 || st.SessionsMoved != 1 {
		t.Errorf("cluster show --json = %+v", st)
	}

	if out := ok("status"); !strings.Contains(out, "cluster          2 members, 1 alive, netsplit, 0 of 1 links up\n") {
		t.Errorf("status lacks the cluster row:\n%s", out)
	}

	if out := ok("cluster", "join", "127.0.0.2:7946", "n3.example:7946"); !strings.Contains(out, "joined the cluster through 127.0.0.2:7946, n3.example:7946") {
		t.Errorf("cluster join printed %q", out)
	}
	ok("cluster", "join", "seeds=127.0.0.4:7946, 127.0.0.5:7946")
	var a admin.ClusterAction
	if err := json.Unmarshal([]byte(ok("--json", "cluster", "join", "--seeds", "127.0.0.6:7946")), &a); err != nil || a.Status != "joined" {
		t.Errorf("cluster join --json: %+v %v", a, err)
	}
	fc.mu.Lock()
	joins := fc.joins
	fc.mu.Unlock()
	wantJoins := [][]string{{"127.0.0.2:7946", "n3.example:7946"}, {"127.0.0.4:7946", "127.0.0.5:7946"}, {"127.0.0.6:7946"}}
	if !reflect.DeepEqual(joins, wantJoins) {
		t.Errorf("joins = %q, want %q", joins, wantJoins)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "join", "nohost"}, `seed "nohost" is not host:port`},
		{[]string{"cluster", "join", "127.0.0.9:7946"}, "join 127.0.0.9:7946: no seed answered"},
	} {
		if _, errOut, code := runCtlIn(url, tc.args...); code != ctlExitFailed || !strings.Contains(errOut, tc.want) {
			t.Errorf("ctl %s: exit %d %q, want %d with %q", strings.Join(tc.args, " "), code, errOut, ctlExitFailed, tc.want)
		}
	}

	if out := ok("cluster", "leave"); !strings.Contains(out, "leaving the cluster") {
		t.Errorf("cluster leave printed %q", out)
	}
	fc.mu.Lock()
	leaves := fc.leaves
	fc.mu.Unlock()
	if leaves != 1 {
		t.Errorf("ClusterLeave called %d times, want 1", leaves)
	}

	// A single node: the cluster commands find nothing (exit 3), and the
	// status has no cluster row.
	fc.mu.Lock()
	fc.clustered = false
	fc.mu.Unlock()
	for _, args := range [][]string{{"cluster", "show"}, {"cluster", "join", "127.0.0.2:7946"}, {"cluster", "leave"}} {
		if _, errOut, code := runCtlIn(url, args...); code != ctlExitNotFound || !strings.Contains(errOut, "not part of a cluster") {
			t.Errorf("ctl %s on a single node: exit %d %q", strings.Join(args, " "), code, errOut)
		}
	}
	if out := ok("status"); strings.Contains(out, "cluster") {
		t.Errorf("a single node's status shows a cluster:\n%s", out)
	}
}
