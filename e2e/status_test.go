package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// statusConfig runs avocet with one MQTT listener and the admin server on
// loopback ports.
const statusConfig = `
[log]
level = "debug"

[store]
dir = %q

[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"

[mqtt]
sys_interval = "0s"
`

// startAvocetAdmin runs avocet with statusConfig and returns the host:port of
// its MQTT listener and of its admin server, which it prints as
// "listening tcp <addr>" and "listening admin <addr>".
func startAvocetAdmin(t *testing.T) (mqttAddr, adminAddr string) {
	t.Helper()
	dir := t.TempDir()
	_, addrs := runAvocet(t, dir, fmt.Appendf(nil, statusConfig, filepath.Join(dir, "data")), "tcp", "admin")
	return addrs["tcp"], addrs["admin"]
}

// mqttSubscriber connects an MQTT 5.0 client that subscribes to filter and
// stays connected until t ends.
func mqttSubscriber(t *testing.T, addr, clientID, filter string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := mqtt.NewReader(bufio.NewReader(nc))
	r.Version = mqtt.Version5
	write := func(p mqtt.Packet) {
		b, err := p.Encode(nil, mqtt.Version5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(&mqtt.Connect{ProtocolName: "MQTT", Version: mqtt.Version5, ClientID: clientID, CleanStart: true, KeepAlive: 60})
	p, err := r.ReadPacket()
	if ack, ok := p.(*mqtt.Connack); err != nil || !ok || ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNECT %s: %v %v", clientID, p, err)
	}
	write(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: filter, QoS: 1}}})
	p, err = r.ReadPacket()
	if ack, ok := p.(*mqtt.Suback); err != nil || !ok || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0].IsError() {
		t.Fatalf("SUBSCRIBE %s: %v %v", filter, p, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc
}

// adminStatus GETs the admin API's status.
func adminStatus(t *testing.T, adminAddr string) (admin.Status, error) {
	t.Helper()
	res, err := http.Get("http://" + adminAddr + "/api/v1/status")
	if err != nil {
		return admin.Status{}, err
	}
	defer res.Body.Close()
	var st admin.Status
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", res.StatusCode)
	}
	return st, json.NewDecoder(res.Body).Decode(&st)
}

// pageText returns the text of the element with id in a dumped DOM, and
// whether there is one.
func pageText(dom, id string) (string, bool) {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		return "", false
	}
	return strings.TrimSpace(m[1]), true
}

// runChromium loads url in headless Chromium with extra flags, lets the page
// run for five seconds of virtual time, and returns what Chromium printed.
func runChromium(t *testing.T, chromium, url string, extra ...string) string {
	t.Helper()
	args := append(slices.Clone(chromiumFlags), "--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000")
	args = append(append(args, extra...), url)
	p := startProcess(t, "", chromium, args...)
	if !p.wait(60 * time.Second) {
		t.Fatalf("chromium did not finish within 60s\n%s", p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("chromium: %v\n%s", p.err, p.stderr.String())
	}
	return p.stdout.String()
}

func TestE2EStatusPage(t *testing.T) {
	requireE2E(t)
	chromium := program(t, "chromium", "chromium-browser")
	mqttAddr, adminAddr := startAvocetAdmin(t)
	mqttSubscriber(t, mqttAddr, "e2e-status-watcher", "plant/#")

	// The page shows what the API says; wait until the API shows the client.
	var st admin.Status
	if !poll(10*time.Second, func() bool {
		var err error
		st, err = adminStatus(t, adminAddr)
		return err == nil && st.Connections.Current == 1 && st.Subscriptions == 1
	}) {
		t.Fatalf("the admin API does not show the connected client: %+v", st)
	}

	dom := runChromium(t, chromium, "http://"+adminAddr+"/", "--dump-dom")
	if !strings.Contains(dom, `data-state="ready"`) {
		t.Fatalf("the page did not load its status (body data-state is not ready):\n%s", dom)
	}
	for id, want := range map[string]string{
		"connections":       "1",
		"clients":           "1",
		"sessions-online":   "1",
		"sessions-offline":  "0",
		"subscriptions":     "1",
		"health":            "ok",
		"node":              st.Node,
		"retained-messages": "0",
	} {
		if got, ok := pageText(dom, id); !ok || got != want {
			t.Errorf("#%s shows %q (found %t), want %q", id, got, ok, want)
		}
	}
	m := regexp.MustCompile(`id="msg-rate"[^>]*data-points="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Errorf("the message rate chart has no data points:\n%s", dom)
	} else if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Errorf("the message rate chart has %d data points, want some after five seconds", n)
	}
	if !strings.Contains(dom, `<td>`+mqttAddr+`</td>`) || !strings.Contains(dom, `running`) {
		t.Errorf("the listeners table does not show the running tcp listener on %s", mqttAddr)
	}

	png := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, chromium, "http://"+adminAddr+"/", "--window-size=1280,1100", "--screenshot="+png)
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Errorf("the screenshot is not a PNG of a drawn page (%d bytes)", len(b))
	}
}
