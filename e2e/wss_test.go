package e2e

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	avtls "github.com/avocet-mqtt/avocet/tls"
)

const avocetWSSConfig = `
[log]
level = "debug"

[store]
dir = %q

[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[[listener]]
kind = "wss"
address = "127.0.0.1:0"
path = "/mqtt"
cert_file = %q
key_file = %q

[admin]
address = ""

[mqtt]
sys_interval = "0s"
`

// startAvocetWSS runs the avocet command with a tcp listener and a wss
// listener whose certificate, for 127.0.0.1 and localhost, is issued for the
// test by a CA made for it. It returns the process and the wss listener's
// host:port, and stops avocet when t ends as startAvocet does.
func startAvocetWSS(t *testing.T) (*avocet, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := avtls.GenerateCA("avocet e2e CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := avtls.GenerateServer(ca, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := srv.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Appendf(nil, avocetWSSConfig, filepath.Join(dir, "data"), certFile, keyFile)
	a, addrs := runAvocet(t, dir, cfg, "tcp", "wss")
	return a, addrs["wss"]
}

func TestE2EBrowserWSS(t *testing.T) {
	requireE2E(t)
	npm := program(t, "npm")
	chromium := program(t, "chromium", "chromium-browser")
	a, wss := startAvocetWSS(t)
	bundle := installMQTTJS(t, npm)

	// avocet's certificate comes from a CA made for this test, which Chromium
	// does not trust, and a throwaway profile cannot be taught to trust it
	// without certutil. --ignore-certificate-errors lets the page connect
	// anyway; the handshake and the encryption are real, only the check of the
	// chain is skipped (TestWSSFromGo in cmd/avocet verifies the chain). The
	// flag goes on the package's list for this test only; the tests of this
	// package do not run in parallel.
	saved := chromiumFlags
	chromiumFlags = append(slices.Clone(saved), "--ignore-certificate-errors")
	t.Cleanup(func() { chromiumFlags = saved })

	const version = 5
	const client = "e2e-browser-wss"
	prefix := "e2e/browser/wss"
	res := runPage(t, chromium, bundle, url.Values{
		"ws":     {"wss://" + wss + "/mqtt"},
		"v":      {strconv.Itoa(version)},
		"prefix": {prefix},
		"client": {client},
	})
	t.Logf("page steps: %s", strings.Join(res.Steps, "; "))
	received := slices.SortedFunc(slices.Values(res.Messages), byTopic)
	var got []string
	for _, m := range received {
		got = append(got, m.String())
	}
	if res.Error != "" {
		t.Fatalf("page stopped: %s\nreceived:\n\t%s", res.Error, strings.Join(got, "\n\t"))
	}
	if !slices.Equal(res.Granted, []int{2}) || !slices.Equal(res.KeptGranted, []int{1}) {
		t.Errorf("granted QoS %v and %v, want [2] and [1]", res.Granted, res.KeptGranted)
	}
	var want []browserMessage
	for qos := range 3 {
		want = append(want, browserMessage{
			Topic:          fmt.Sprintf("%s/live/qos%d", prefix, qos),
			Payload:        fmt.Sprintf("from the browser at QoS %d", qos),
			QoS:            qos,
			UserProperties: map[string]any{"n": strconv.Itoa(qos)},
		})
	}
	want = append(want, browserMessage{Topic: prefix + "/kept", Payload: "kept by the broker", QoS: 1, Retain: true})
	slices.SortFunc(want, byTopic)
	if !reflect.DeepEqual(received, want) {
		var w []string
		for _, m := range want {
			w = append(w, m.String())
		}
		t.Errorf("the page received\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(w, "\n\t"))
	}

	// The page's client came in through the wss listener.
	if !poll(10*time.Second, func() bool {
		for _, l := range a.p.stderr.lines() {
			if strings.Contains(l, "client connected") && strings.Contains(l, "listener=wss://") && strings.Contains(l, "client_id="+client) {
				return true
			}
		}
		return false
	}) {
		t.Errorf("avocet did not log the browser's connection on its wss listener")
	}
}
