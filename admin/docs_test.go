package admin

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const (
	apiReference     = "../docs/admin-api.md"
	grafanaDashboard = "../docs/grafana-dashboard.json"
)

// TestAPIReferenceListsEveryRoute keeps docs/admin-api.md and the server's
// routes in step: each route has a heading "### METHOD pattern", and each
// such heading is a route.
func TestAPIReferenceListsEveryRoute(t *testing.T) {
	doc, err := os.ReadFile(apiReference)
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`(?m)^### ([A-Z]+) (/\S*)\s*$`)
	var documented []string
	for _, m := range heading.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1]+" "+m[2])
	}
	srv, err := New(Options{Address: "127.0.0.1:0", Broker: idleBroker(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, rt := range srv.routeTable() {
		served = append(served, rt.method+" "+rt.pattern)
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in %s (add a heading \"### %s\")", r, apiReference, r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("%s documents %s, which the server does not serve", apiReference, d)
		}
	}
	if dup := len(documented) - len(slices.Compact(slices.Sorted(slices.Values(documented)))); dup != 0 {
		t.Errorf("%s documents %d routes twice", apiReference, dup)
	}

	// Every metric the collector exposes is in the reference's table.
	c := newCollector(srv)
	for _, m := range c.metrics() {
		name := descName(m.desc.String())
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("metric %s is not in the metrics table of %s", name, apiReference)
		}
	}
}

// descName takes the metric name out of a Desc's String.
func descName(desc string) string {
	m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(desc)
	if m == nil {
		return desc
	}
	return m[1]
}

// TestGrafanaDashboard checks that the dashboard is JSON Grafana can import
// and that every metric its queries name exists in the registry.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				H, W, X, Y int
			} `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", grafanaDashboard, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s lacks a title, a uid or panels", grafanaDashboard)
	}

	fl := &fakeListeners{list: []ListenerInfo{{Name: "tcp", Kind: "tcp", Running: true}}}
	fc := &fakeCluster{st: threeNodes()}
	e := newEnv(t, envOptions{store: true, admin: func(o *Options) { o.Listeners, o.Cluster = fl, fc.status }})
	fams := e.scrape(t).fams
	exists := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) &&
				(f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
				return true
			}
		}
		return false
	}

	metricName := regexp.MustCompile(`\b(?:avocet|go|process)_[a-z0-9_]+\b`)
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if p.Title == "" || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %d %q has no title or size", p.ID, p.Title)
		}
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !exists(n) {
					t.Errorf("panel %q: query %q uses %s, which /metrics does not expose", p.Title, tg.Expr, n)
				}
			}
		}
	}
	// The figures the dashboard is for: connections, message rates, drops
	// by reason, sessions, retained messages, the store, the listeners, and
	// every figure of the cluster.
	for _, n := range append([]string{
		"avocet_connections", "avocet_messages_received_total", "avocet_messages_sent_total",
		"avocet_messages_dropped_total", "avocet_sessions", "avocet_retained_messages",
		"avocet_store_size_bytes", "avocet_store_last_batch_seconds", "avocet_listener_connections",
		"avocet_listener_rejected_total",
	}, clusterFamilies...) {
		if !used[n] {
			t.Errorf("the dashboard has no panel for %s", n)
		}
	}
}
