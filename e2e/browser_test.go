package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mqttjsPage is the page Chromium loads; its script drives MQTT.js.
//
//go:embed testdata/mqttjs.html
var mqttjsPage []byte

// mqttjsPackage is the MQTT.js release line installed from the npm registry.
// Its browser bundle is mqttjsBundle within the package.
const (
	mqttjsPackage = "mqtt@5"
	mqttjsBundle  = "dist/mqtt.min.js"
)

// chromiumFlags run Chromium headless as root, with nothing but the page:
// no sandbox (root has none), no GPU, no QUIC, no first-run or background
// traffic. The test adds a fresh --user-data-dir.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// browserMessage is a message the page received, as MQTT.js reported it.
type browserMessage struct {
	Topic          string         `json:"topic"`
	Payload        string         `json:"payload"`
	QoS            int            `json:"qos"`
	Retain         bool           `json:"retain"`
	Dup            bool           `json:"dup"`
	UserProperties map[string]any `json:"userProperties"` // 5.0 only; a repeated key has an array
}

func (m browserMessage) String() string {
	return fmt.Sprintf("%s qos=%d retain=%t dup=%t user=%v %q", m.Topic, m.QoS, m.Retain, m.Dup, m.UserProperties, m.Payload)
}

func byTopic(x, y browserMessage) int { return strings.Compare(x.Topic, y.Topic) }

// browserResult is what the page POSTs to /result.
type browserResult struct {
	ProtocolVersion int              `json:"protocolVersion"`
	Error           string           `json:"error"` // what stopped the script; empty if it finished
	Steps           []string         `json:"steps"` // what it did, in order
	Granted         []int            `json:"granted"`
	KeptGranted     []int            `json:"keptGranted"`
	Messages        []browserMessage `json:"messages"`
}

// installMQTTJS installs mqttjsPackage with npm into a directory of t and
// returns its browser bundle.
func installMQTTJS(t *testing.T, npm string) []byte {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, mqttjsPackage)
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, "npm-cache"), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", mqttjsPackage, err, out)
	}
	pkg := filepath.Join(dir, "node_modules", "mqtt")
	bundle, err := os.ReadFile(filepath.Join(pkg, mqttjsBundle))
	if err != nil {
		t.Fatalf("npm installed %s without its browser bundle: %v", mqttjsPackage, err)
	}
	var meta struct{ Version string }
	if b, err := os.ReadFile(filepath.Join(pkg, "package.json")); err == nil && json.Unmarshal(b, &meta) == nil {
		t.Logf("MQTT.js %s", meta.Version)
	}
	return bundle
}

// runPage serves the page and the bundle, opens the page in headless
// Chromium with query and returns what the page reported. Page errors fail t.
func runPage(t *testing.T, chromium string, bundle []byte, query url.Values) browserResult {
	t.Helper()
	results := make(chan browserResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(mqttjsPage)
	})
	mux.HandleFunc("GET /mqtt.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(bundle)
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		t.Errorf("page error: %s", b)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var res browserResult
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&res); err != nil {
			t.Errorf("page result: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case results <- res:
		default:
			t.Errorf("page posted a second result: %+v", res)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	args := append(slices.Clone(chromiumFlags), "--user-data-dir="+t.TempDir(), srv.URL+"/?"+query.Encode())
	browser := startProcess(t, "", chromium, args...)
	select {
	case res := <-results:
		return res
	case <-browser.done:
		t.Fatalf("chromium exited with %v before the page reported\n%s", browser.err, browser.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the page reported nothing within 60s\nchromium's output:\n%s", browser.stderr.String())
	}
	return browserResult{}
}

func TestE2EBrowserMQTTJS(t *testing.T) {
	requireE2E(t)
	npm := program(t, "npm")
	chromium := program(t, "chromium", "chromium-browser")
	a := startAvocet(t)
	bundle := installMQTTJS(t, npm)

	for _, tc := range []struct {
		name    string
		version int // MQTT.js protocolVersion
	}{
		{"mqttv311", 4},
		{"mqttv5", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "e2e/browser/" + tc.name
			res := runPage(t, chromium, bundle, url.Values{
				"ws":     {"ws://" + a.ws + "/mqtt"},
				"v":      {strconv.Itoa(tc.version)},
				"prefix": {prefix},
				"client": {"e2e-browser-" + tc.name},
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
			if res.ProtocolVersion != tc.version {
				t.Errorf("page ran with protocol version %d, want %d", res.ProtocolVersion, tc.version)
			}
			if !slices.Equal(res.Granted, []int{2}) || !slices.Equal(res.KeptGranted, []int{1}) {
				t.Errorf("granted QoS %v and %v, want [2] and [1]", res.Granted, res.KeptGranted)
			}

			// Each message arrives once, at the QoS it was published with
			// (the subscription allows 2), without the retain flag as it
			// was not retained; a 5.0 subscriber gets its user property.
			// The retained message arrives on the later subscription with
			// the retain flag.
			var want []browserMessage
			for qos := range 3 {
				m := browserMessage{
					Topic:   fmt.Sprintf("%s/live/qos%d", prefix, qos),
					Payload: fmt.Sprintf("from the browser at QoS %d", qos),
					QoS:     qos,
				}
				if tc.version == 5 {
					m.UserProperties = map[string]any{"n": strconv.Itoa(qos)}
				}
				want = append(want, m)
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
		})
	}
}
