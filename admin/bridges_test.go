package admin

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/avocet-mqtt/avocet/bridge"
)

// fakeBridges is an Options.Bridges whose list a test changes.
type fakeBridges struct {
	mu   sync.Mutex
	list []bridge.Status
}

func (f *fakeBridges) statuses() []bridge.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bridge.Status(nil), f.list...)
}

func (f *fakeBridges) set(l ...bridge.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = l
}

func TestBridges(t *testing.T) {
	fb := &fakeBridges{}
	fb.set(
		bridge.Status{Name: "upstream", Queued: 5, Dropped: 2, Reconnects: 3},
		bridge.Status{Name: "cloud", Connected: true, Address: "mqtt.example.net:8883", Queued: 1,
			ForwardedIn: 12, ForwardedOut: 340, Denied: 1, Reconnects: 1},
	)
	e := newEnv(t, envOptions{admin: func(o *Options) { o.Bridges = fb.statuses }})

	var pg Page[bridge.Status]
	e.call(t, "GET", "/api/v1/bridges", http.StatusOK, &pg)
	if pg.Total != 2 || pg.Offset != 0 || pg.Limit != defaultLimit || len(pg.Items) != 2 {
		t.Fatalf("bridges: %+v", pg)
	}
	if pg.Items[0].Name != "cloud" || pg.Items[1].Name != "upstream" {
		t.Fatalf("bridges are not sorted by name: %+v", pg.Items)
	}
	if got, want := pg.Items[0], fb.statuses()[1]; got != want {
		t.Errorf("bridge = %+v, want %+v", got, want)
	}
	e.call(t, "GET", "/api/v1/bridges?limit=1&offset=1", http.StatusOK, &pg)
	if pg.Total != 2 || len(pg.Items) != 1 || pg.Items[0].Name != "upstream" {
		t.Fatalf("bridges limit=1 offset=1: %+v", pg)
	}
	e.wantError(t, "GET", "/api/v1/bridges?limit=0", http.StatusBadRequest, "limit")

	if st := e.status(t); st.Bridges != (BridgeSummary{Count: 2, Connected: 1}) {
		t.Errorf("status bridges = %+v", st.Bridges)
	}

	s := e.scrape(t)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"avocet_bridge_connected", []string{"bridge", "cloud"}, 1},
		{"avocet_bridge_connected", []string{"bridge", "upstream"}, 0},
		{"avocet_bridge_queued_messages", []string{"bridge", "upstream"}, 5},
		{"avocet_bridge_messages_total", []string{"bridge", "cloud", "direction", "in"}, 12},
		{"avocet_bridge_messages_total", []string{"bridge", "cloud", "direction", "out"}, 340},
		{"avocet_bridge_dropped_total", []string{"bridge", "upstream"}, 2},
		{"avocet_bridge_reconnects_total", []string{"bridge", "upstream"}, 3},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	_, body := e.do(t, "GET", "/metrics")
	if !strings.Contains(string(body), `avocet_bridge_messages_total{bridge="cloud",direction="out"} 340`) {
		t.Errorf("the exposition lacks the cloud bridge's outbound series:\n%s", body)
	}

	// A reload removes a bridge: its series go with it.
	fb.set(bridge.Status{Name: "cloud", Connected: true})
	s = e.scrape(t)
	if n := len(s.fams["avocet_bridge_connected"].GetMetric()); n != 1 {
		t.Errorf("avocet_bridge_connected has %d series after a bridge went, want 1", n)
	}
	e.call(t, "GET", "/api/v1/bridges", http.StatusOK, &pg)
	if pg.Total != 1 || pg.Items[0].Name != "cloud" {
		t.Errorf("bridges after a reload: %+v", pg)
	}
}

func TestBridgesNone(t *testing.T) {
	e := newEnv(t, envOptions{})
	var pg Page[bridge.Status]
	e.call(t, "GET", "/api/v1/bridges", http.StatusOK, &pg)
	if pg.Total != 0 || pg.Items == nil || len(pg.Items) != 0 {
		t.Fatalf("bridges without Bridges: %+v", pg)
	}
	if st := e.status(t); st.Bridges != (BridgeSummary{}) {
		t.Errorf("status bridges = %+v", st.Bridges)
	}
	for name := range e.scrape(t).fams {
		if strings.HasPrefix(name, "avocet_bridge_") {
			t.Errorf("%s is exposed with no bridges", name)
		}
	}
}
