package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/avocet-mqtt/avocet/cluster"
	dto "github.com/prometheus/client_model/go"
)

// fakeCluster stands for the cluster package: a Status the test changes, and
// the joins and leaves the server asked for.
type fakeCluster struct {
	mu       sync.Mutex
	st       *cluster.Status // nil: not clustered; guarded by mu
	joins    [][]string      // guarded by mu
	leaves   int             // guarded by mu
	joinErr  error           // guarded by mu
	leaveErr error           // guarded by mu
}

// threeNodes is the status of node n1 in a cluster of three, n3 suspect.
func threeNodes() *cluster.Status {
	return &cluster.Status{
		Node:     "n1",
		Netsplit: true,
		Members: []cluster.Member{
			{Name: "n3", GossipAddr: "127.0.0.3:7946", LinkAddr: "127.0.0.3:7947", State: cluster.StateSuspect},
			{Name: "n1", GossipAddr: "127.0.0.1:7946", LinkAddr: "127.0.0.1:7947", State: cluster.StateAlive},
			{Name: "n2", GossipAddr: "127.0.0.2:7946", LinkAddr: "127.0.0.2:7947", State: cluster.StateAlive},
		},
		Links: []cluster.LinkStats{
			{Node: "n3", Addr: "127.0.0.3:7947", Queued: 40, Unacked: 0, Sent: 100, Acked: 100, Dropped: 2, Connected: false, Reconnects: 1},
			{Node: "n2", Addr: "127.0.0.2:7947", Queued: 0, Unacked: 3, Sent: 500, Acked: 497, Connected: true},
		},
		Filters:   7,
		Forwarded: 600, ForwardDrops: 2, Received: 300, RetainApplied: 4, SessionsMoved: 1,
	}
}

// status returns a copy of the status, as cluster.Cluster.Status does.
func (f *fakeCluster) status() *cluster.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		return nil
	}
	st := *f.st
	st.Members = slices.Clone(st.Members)
	st.Links = slices.Clone(st.Links)
	return &st
}

func (f *fakeCluster) update(change func(st *cluster.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.st)
}

func (f *fakeCluster) join(seeds []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joins = append(f.joins, slices.Clone(seeds))
	return f.joinErr
}

func (f *fakeCluster) leave() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaves++
	return f.leaveErr
}

// clusterEnv starts an env whose admin server reports fc.
func clusterEnv(t *testing.T, fc *fakeCluster) *env {
	return newEnv(t, envOptions{admin: func(o *Options) {
		o.Cluster, o.ClusterJoin, o.ClusterLeave = fc.status, fc.join, fc.leave
	}})
}

// post sends a POST with body to the admin server and returns the status
// and the answer.
func (e *env) post(t testing.TB, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", path, err)
	}
	return res.StatusCode, b
}

// wantPostError checks the error answer to a POST with body.
func (e *env) wantPostError(t testing.TB, path, body string, want int, part string) {
	t.Helper()
	code, b := e.post(t, path, body)
	var ae apiError
	if code != want || json.Unmarshal(b, &ae) != nil || !strings.Contains(ae.Error, part) {
		t.Errorf("POST %s %s: %d %s, want %d and an error containing %q", path, body, code, b, want, part)
	}
}

func TestClusterNotClustered(t *testing.T) {
	for name, o := range map[string]func(*Options){
		"no func":        nil,
		"func gives nil": func(o *Options) { o.Cluster = func() *cluster.Status { return nil } },
		"with join/leave": func(o *Options) {
			o.ClusterJoin = func([]string) error { return nil }
			o.ClusterLeave = func() error { return nil }
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{admin: o})
			e.wantError(t, "GET", "/api/v1/cluster", http.StatusNotFound, "not part of a cluster")
			e.wantPostError(t, "/api/v1/cluster/join", `{"seeds":["127.0.0.2:7946"]}`, http.StatusNotFound, "not part of a cluster")
			e.wantPostError(t, "/api/v1/cluster/leave", "", http.StatusNotFound, "not part of a cluster")
			e.wantError(t, "PUT", "/api/v1/cluster", http.StatusMethodNotAllowed, "no such endpoint")

			if _, body := e.do(t, "GET", "/api/v1/status"); bytes.Contains(body, []byte(`"cluster"`)) {
				t.Errorf("the status of a single node shows a cluster:\n%s", body)
			}
			if st := e.status(t); st.Cluster != nil {
				t.Errorf("status cluster = %+v, want none", st.Cluster)
			}
			for name := range e.scrape(t).fams {
				if strings.HasPrefix(name, "avocet_cluster_") {
					t.Errorf("a single node exposes %s", name)
				}
			}
		})
	}
}

func TestClusterShow(t *testing.T) {
	fc := &fakeCluster{st: threeNodes()}
	e := clusterEnv(t, fc)

	var got ClusterStatus
	e.call(t, "GET", "/api/v1/cluster", http.StatusOK, &got)
	want := ClusterStatus{
		Node:     "n1",
		Netsplit: true,
		Members: []ClusterMember{
			{Name: "n1", State: "alive", GossipAddr: "127.0.0.1:7946", LinkAddr: "127.0.0.1:7947"},
			{Name: "n2", State: "alive", GossipAddr: "127.0.0.2:7946", LinkAddr: "127.0.0.2:7947"},
			{Name: "n3", State: "suspect", GossipAddr: "127.0.0.3:7946", LinkAddr: "127.0.0.3:7947"},
		},
		Links: []ClusterLink{
			{Node: "n2", Addr: "127.0.0.2:7947", Connected: true, Unacked: 3, Sent: 500, Acked: 497},
			{Node: "n3", Addr: "127.0.0.3:7947", Queued: 40, Sent: 100, Acked: 100, Dropped: 2, Reconnects: 1},
		},
		Filters:   7,
		Forwarded: 600, ForwardDrops: 2, Received: 300, RetainApplied: 4, SessionsMoved: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /api/v1/cluster =\n%+v\nwant\n%+v", got, want)
	}

	// The JSON names are snake case, and lists are never null.
	_, body := e.do(t, "GET", "/api/v1/cluster")
	for _, key := range []string{`"gossip_addr"`, `"link_addr"`, `"forward_drops"`, `"retain_applied"`, `"sessions_moved"`, `"state": "suspect"`} {
		if !bytes.Contains(body, []byte(key)) {
			t.Errorf("the answer lacks %s:\n%s", key, body)
		}
	}
	fc.update(func(st *cluster.Status) { st.Members, st.Links = nil, nil })
	_, body = e.do(t, "GET", "/api/v1/cluster")
	if !bytes.Contains(body, []byte(`"members": []`)) || !bytes.Contains(body, []byte(`"links": []`)) {
		t.Errorf("empty lists are not []:\n%s", body)
	}

	fc.update(func(st *cluster.Status) { *st = *threeNodes() })
	sum := e.status(t).Cluster
	if sum == nil || *sum != (ClusterSummary{Members: 3, Alive: 2, Netsplit: true, Links: 2, LinksUp: 1}) {
		t.Errorf("status cluster = %+v", sum)
	}
}

func TestClusterJoin(t *testing.T) {
	fc := &fakeCluster{st: threeNodes()}
	e := clusterEnv(t, fc)

	code, body := e.post(t, "/api/v1/cluster/join", `{"seeds": ["127.0.0.4:7946", "node5.example:7946", "[::1]:7946"]}`)
	var a ClusterAction
	if code != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Status != "joined" || len(a.Seeds) != 3 {
		t.Fatalf("join: %d %s", code, body)
	}
	if want := [][]string{{"127.0.0.4:7946", "node5.example:7946", "[::1]:7946"}}; !reflect.DeepEqual(fc.joins, want) {
		t.Errorf("ClusterJoin got %q, want %q", fc.joins, want)
	}

	for _, tc := range []struct{ body, part string }{
		{``, "got nothing"},
		{`{"seeds": ["127.0.0.4:7946"]`, "must be JSON"},
		{`seeds=127.0.0.4:7946`, "must be JSON"},
		{`{"seeds": "127.0.0.4:7946"}`, "must be JSON"},
		{`{"seed": ["127.0.0.4:7946"]}`, "unknown field"},
		{`{}`, "at least one"},
		{`{"seeds": []}`, "at least one"},
		{`{"seeds": null}`, "at least one"},
		{`{"seeds": ["127.0.0.4"]}`, `seed "127.0.0.4" is not host:port`},
		{`{"seeds": [":7946"]}`, "is not host:port"},
		{`{"seeds": ["h:0"]}`, "port must be a number from 1 to 65535"},
		{`{"seeds": ["h:gossip"]}`, "port must be a number"},
		{`{"seeds": ["h:1"]} {"seeds": ["h:2"]}`, "one JSON object"},
		{`{"seeds": ["` + strings.Repeat("h", maxJoinBody) + `:1"]}`, "must be JSON"},
	} {
		e.wantPostError(t, "/api/v1/cluster/join", tc.body, http.StatusBadRequest, tc.part)
	}
	if len(fc.joins) != 1 {
		t.Errorf("ClusterJoin was called for a bad request: %q", fc.joins)
	}

	fc.mu.Lock()
	fc.joinErr = errors.New("no seed answered: dial tcp 127.0.0.9:7946: connection refused")
	fc.mu.Unlock()
	e.wantPostError(t, "/api/v1/cluster/join", `{"seeds": ["127.0.0.9:7946"]}`, http.StatusInternalServerError,
		"join 127.0.0.9:7946: no seed answered")
	e.wantError(t, "GET", "/api/v1/cluster/join", http.StatusMethodNotAllowed, "no such endpoint")

	// A clustered node whose server cannot join answers 501.
	e2 := newEnv(t, envOptions{admin: func(o *Options) { o.Cluster = fc.status }})
	e2.wantPostError(t, "/api/v1/cluster/join", `{"seeds": ["127.0.0.4:7946"]}`, http.StatusNotImplemented, "not available")
}

func TestClusterLeave(t *testing.T) {
	fc := &fakeCluster{st: threeNodes()}
	e := clusterEnv(t, fc)

	code, body := e.post(t, "/api/v1/cluster/leave", "")
	var a ClusterAction
	if code != http.StatusAccepted || json.Unmarshal(body, &a) != nil || a.Status != "leaving" {
		t.Fatalf("leave: %d %s", code, body)
	}
	if fc.leaves != 1 {
		t.Errorf("ClusterLeave called %d times, want 1", fc.leaves)
	}
	fc.mu.Lock()
	fc.leaveErr = errors.New("already leaving")
	fc.mu.Unlock()
	e.wantPostError(t, "/api/v1/cluster/leave", "", http.StatusInternalServerError, "leave the cluster: already leaving")
	e.wantError(t, "GET", "/api/v1/cluster/leave", http.StatusMethodNotAllowed, "no such endpoint")

	e2 := newEnv(t, envOptions{admin: func(o *Options) { o.Cluster = fc.status }})
	e2.wantPostError(t, "/api/v1/cluster/leave", "", http.StatusNotImplemented, "not available")
}

// clusterFamilies are the families a clustered node exposes besides the
// broker's.
var clusterFamilies = []string{
	"avocet_cluster_members", "avocet_cluster_netsplit",
	"avocet_cluster_link_up", "avocet_cluster_link_queued", "avocet_cluster_link_unacked",
	"avocet_cluster_link_sent_total", "avocet_cluster_link_acked_total", "avocet_cluster_link_dropped_total",
	"avocet_cluster_link_reconnects_total",
	"avocet_cluster_forwarded_total", "avocet_cluster_forward_drops_total", "avocet_cluster_received_total",
	"avocet_cluster_retain_applied_total", "avocet_cluster_sessions_moved_total",
}

func TestClusterMetrics(t *testing.T) {
	fc := &fakeCluster{st: threeNodes()}
	e := clusterEnv(t, fc)
	s := e.scrape(t)

	for _, name := range clusterFamilies {
		f, ok := s.fams[name]
		if !ok {
			t.Errorf("no family %s", name)
			continue
		}
		if strings.HasSuffix(name, "_total") != (f.GetType() == dto.MetricType_COUNTER) || f.GetHelp() == "" {
			t.Errorf("%s is a %v with help %q", name, f.GetType(), f.GetHelp())
		}
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"avocet_cluster_members", []string{"state", "alive"}, 2},
		{"avocet_cluster_members", []string{"state", "suspect"}, 1},
		{"avocet_cluster_members", []string{"state", "dead"}, 0},
		{"avocet_cluster_members", []string{"state", "left"}, 0},
		{"avocet_cluster_netsplit", nil, 1},
		{"avocet_cluster_link_up", []string{"peer", "n2"}, 1},
		{"avocet_cluster_link_up", []string{"peer", "n3"}, 0},
		{"avocet_cluster_link_queued", []string{"peer", "n3"}, 40},
		{"avocet_cluster_link_unacked", []string{"peer", "n2"}, 3},
		{"avocet_cluster_link_sent_total", []string{"peer", "n2"}, 500},
		{"avocet_cluster_link_acked_total", []string{"peer", "n2"}, 497},
		{"avocet_cluster_link_dropped_total", []string{"peer", "n3"}, 2},
		{"avocet_cluster_link_reconnects_total", []string{"peer", "n3"}, 1},
		{"avocet_cluster_forwarded_total", nil, 600},
		{"avocet_cluster_forward_drops_total", nil, 2},
		{"avocet_cluster_received_total", nil, 300},
		{"avocet_cluster_retain_applied_total", nil, 4},
		{"avocet_cluster_sessions_moved_total", nil, 1},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	// The figures move with the cluster: n3 comes back, n2's link goes,
	// messages flow; a peer without a link has no series.
	fc.update(func(st *cluster.Status) {
		st.Netsplit = false
		st.Members[0].State = cluster.StateAlive
		st.Members[2].State = cluster.StateLeft
		st.Links = []cluster.LinkStats{{Node: "n3", Addr: "127.0.0.3:7947", Sent: 150, Acked: 150, Dropped: 2, Connected: true, Reconnects: 1}}
		st.Forwarded += 50
		st.Received += 7
		st.SessionsMoved++
	})
	s = e.scrape(t)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"avocet_cluster_members", []string{"state", "alive"}, 2},
		{"avocet_cluster_members", []string{"state", "left"}, 1},
		{"avocet_cluster_members", []string{"state", "suspect"}, 0},
		{"avocet_cluster_netsplit", nil, 0},
		{"avocet_cluster_link_up", []string{"peer", "n3"}, 1},
		{"avocet_cluster_link_sent_total", []string{"peer", "n3"}, 150},
		{"avocet_cluster_forwarded_total", nil, 650},
		{"avocet_cluster_received_total", nil, 307},
		{"avocet_cluster_sessions_moved_total", nil, 2},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("after the change: %s%q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, m := range s.fams["avocet_cluster_link_up"].GetMetric() {
		if hasLabels(m, []string{"peer", "n2"}) {
			t.Error("n2's link series stayed after its link went")
		}
	}

	// The node leaves the cluster, as far as the server knows: the
	// families go.
	fc.mu.Lock()
	fc.st = nil
	fc.mu.Unlock()
	for name := range e.scrape(t).fams {
		if strings.HasPrefix(name, "avocet_cluster_") {
			t.Errorf("%s stays once the node is not clustered", name)
		}
	}
}
