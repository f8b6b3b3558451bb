package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/avocet-mqtt/avocet/cluster"
)

// ClusterStatus is the body of GET /api/v1/cluster: this node's view of the
// cluster, as cluster.Status gives it, with the members and links sorted by
// name and every field named in snake case.
type ClusterStatus struct {
	Node     string          `json:"node"`
	Netsplit bool            `json:"netsplit"` // some member is unreachable from this node
	Members  []ClusterMember `json:"members"`  // this node included; never null
	Links    []ClusterLink   `json:"links"`    // one per peer node; never null
	Filters  int             `json:"filters"`  // this node's topic filters in the routing table

	Forwarded     int64 `json:"forwarded"`      // messages queued for other nodes
	ForwardDrops  int64 `json:"forward_drops"`  // messages not queued: no link, or a full queue
	Received      int64 `json:"received"`       // messages from other nodes
	RetainApplied int64 `json:"retain_applied"` // retained changes from other nodes applied here
	SessionsMoved int64 `json:"sessions_moved"` // sessions that came here from other nodes
	Relayed       int64 `json:"relayed"`        // messages relayed to sessions that moved away
	Relays        int   `json:"relays"`         // sessions that moved away and are relayed to now
}

// ClusterMember is one node of the cluster as this node sees it.
type ClusterMember struct {
	Name       string `json:"name"`
	State      string `json:"state"`       // alive, suspect, dead or left
	GossipAddr string `json:"gossip_addr"` // host:port
	LinkAddr   string `json:"link_addr"`   // host:port; empty when the member announced none
}

// ClusterLink is this node's outgoing link to one peer node.
type ClusterLink struct {
	Node       string `json:"node"`
	Addr       string `json:"addr"`
	Connected  bool   `json:"connected"`
	Queued     int    `json:"queued"`     // items waiting to be written
	Unacked    int    `json:"unacked"`    // items written, not yet acknowledged
	Sent       int64  `json:"sent"`       // items written, again when written again after a reconnect
	Acked      int64  `json:"acked"`      // items the peer acknowledged
	Dropped    int64  `json:"dropped"`    // items a full queue refused
	Reconnects int64  `json:"reconnects"` // connections lost after the handshake
}

// ClusterSummary is the cluster part of GET /api/v1/status, present only
// on a node of a cluster.
type ClusterSummary struct {
	Members  int  `json:"members"` // known members, this node included, in any state
	Alive    int  `json:"alive"`   // of them, those alive
	Netsplit bool `json:"netsplit"`
	Links    int  `json:"links"`    // links to peer nodes
	LinksUp  int  `json:"links_up"` // of them, those connected
}

// ClusterJoinRequest is the body of POST /api/v1/cluster/join.
type ClusterJoinRequest struct {
	Seeds []string `json:"seeds"` // gossip addresses, host:port, of members to contact
}

// ClusterAction is the answer to a join or a leave.
type ClusterAction struct {
	Status string   `json:"status"`          // "joined" or "leaving"
	Seeds  []string `json:"seeds,omitempty"` // the seeds a join contacted
}

// maxJoinBody caps the body of a join request.
const maxJoinBody = 64 << 10

// errNotClustered is the answer of the cluster endpoints on a single node.
const errNotClustered = "this node is not part of a cluster ([cluster] enabled is false)"

// clusterStatus returns the node's cluster status; nil when the node is not
// part of a cluster.
func (s *Server) clusterStatus() *cluster.Status {
	if s.opts.Cluster == nil {
		return nil
	}
	return s.opts.Cluster()
}

// clusterView turns a cluster.Status into the API's form.
func clusterView(st *cluster.Status) ClusterStatus {
	out := ClusterStatus{
		Node:          st.Node,
		Netsplit:      st.Netsplit,
		Members:       make([]ClusterMember, 0, len(st.Members)),
		Links:         make([]ClusterLink, 0, len(st.Links)),
		Filters:       st.Filters,
		Forwarded:     st.Forwarded,
		ForwardDrops:  st.ForwardDrops,
		Received:      st.Received,
		RetainApplied: st.RetainApplied,
		SessionsMoved: st.SessionsMoved,
		Relayed:       st.Relayed,
		Relays:        st.Relays,
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, ClusterMember{
			Name: m.Name, State: m.State.String(), GossipAddr: m.GossipAddr, LinkAddr: m.LinkAddr,
		})
	}
	for _, l := range st.Links {
		out.Links = append(out.Links, ClusterLink{
			Node: l.Node, Addr: l.Addr, Connected: l.Connected, Queued: l.Queued, Unacked: l.Unacked,
			Sent: l.Sent, Acked: l.Acked, Dropped: l.Dropped, Reconnects: l.Reconnects,
		})
	}
	slices.SortFunc(out.Members, func(a, b ClusterMember) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Links, func(a, b ClusterLink) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// clusterSummary counts what the status shows of the cluster; nil on a
// single node.
func (s *Server) clusterSummary() *ClusterSummary {
	st := s.clusterStatus()
	if st == nil {
		return nil
	}
	sum := &ClusterSummary{Members: len(st.Members), Netsplit: st.Netsplit, Links: len(st.Links)}
	for _, m := range st.Members {
		if m.State == cluster.StateAlive {
			sum.Alive++
		}
	}
	for _, l := range st.Links {
		if l.Connected {
			sum.LinksUp++
		}
	}
	return sum
}

func (s *Server) showCluster(w http.ResponseWriter, r *http.Request) {
	st := s.clusterStatus()
	if st == nil {
		writeError(w, http.StatusNotFound, errNotClustered)
		return
	}
	writeJSON(w, http.StatusOK, clusterView(st))
}

// joinCluster contacts the seeds of the request's body, so that this node
// and the cluster they belong to merge.
func (s *Server) joinCluster(w http.ResponseWriter, r *http.Request) {
	if s.clusterStatus() == nil {
		writeError(w, http.StatusNotFound, errNotClustered)
		return
	}
	if s.opts.ClusterJoin == nil {
		writeError(w, http.StatusNotImplemented, "joining is not available from this server")
		return
	}
	seeds, err := readJoinRequest(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.opts.ClusterJoin(seeds); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("join %s: %v", strings.Join(seeds, ", "), err))
		return
	}
	s.log.Info("cluster join requested by the admin API", "seeds", seeds, "remote_addr", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ClusterAction{Status: "joined", Seeds: seeds})
}

// readJoinRequest reads and checks the body of a join: JSON with one or more
// seeds, each a host:port with a host and a numeric port.
func readJoinRequest(w http.ResponseWriter, r *http.Request) ([]string, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBody))
	dec.DisallowUnknownFields()
	var req ClusterJoinRequest
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`the body must be JSON such as {"seeds": ["10.0.0.2:7946"]}, got nothing`)
		}
		return nil, fmt.Errorf(`the body must be JSON such as {"seeds": ["10.0.0.2:7946"]}: %w`, err)
	}
	if dec.More() {
		return nil, errors.New("the body must hold one JSON object")
	}
	if len(req.Seeds) == 0 {
		return nil, errors.New("seeds must list at least one gossip address (host:port) of a member")
	}
	for _, seed := range req.Seeds {
		host, port, err := net.SplitHostPort(seed)
		if err != nil || host == "" {
			return nil, fmt.Errorf("seed %q is not host:port", seed)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("seed %q: the port must be a number from 1 to 65535", seed)
		}
	}
	return req.Seeds, nil
}

// leaveCluster makes the node leave the cluster; what follows (in the avocet
// command, a graceful shutdown) is up to Options.ClusterLeave.
func (s *Server) leaveCluster(w http.ResponseWriter, r *http.Request) {
	if s.clusterStatus() == nil {
		writeError(w, http.StatusNotFound, errNotClustered)
		return
	}
	if s.opts.ClusterLeave == nil {
		writeError(w, http.StatusNotImplemented, "leaving is not available from this server")
		return
	}
	s.log.Info("cluster leave requested by the admin API", "remote_addr", r.RemoteAddr)
	if err := s.opts.ClusterLeave(); err != nil {
		writeError(w, http.StatusInternalServerError, "leave the cluster: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, ClusterAction{Status: "leaving"})
}
