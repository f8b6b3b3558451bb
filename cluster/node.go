package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultDeadNodeGrace is how long a dead node's routes are kept when
// Options.DeadNodeGrace is zero.
const DefaultDeadNodeGrace = 30 * time.Second

// Options configure a Node.
type Options struct {
	// Name identifies the node in the cluster; it must be unique and non-empty.
	Name string
	// GossipAddress is the host:port memberlist binds, TCP and UDP. Port 0 picks
	// a free port (for tests).
	GossipAddress string
	// AdvertiseAddress is the host:port peers reach gossip at; empty means the
	// bound address.
	AdvertiseAddress string
	// LinkAddress is where this node will accept node-to-node links. It is
	// carried in the node's metadata so that peers learn it; nothing listens on
	// it yet.
	LinkAddress string
	// Seeds are gossip addresses that New joins; empty starts a cluster of one.
	Seeds []string
	// SecretKey, 16, 24 or 32 bytes, encrypts and authenticates gossip; nil
	// leaves gossip in the clear. Nodes with different keys cannot talk.
	SecretKey []byte
	// DeadNodeGrace is how long the routes of a node detected dead are kept in
	// case it returns; zero means DefaultDeadNodeGrace. A node that leaves
	// gracefully loses its routes at once.
	DeadNodeGrace time.Duration
	// Logger receives memberlist's log lines at debug level and the node's own
	// warnings; nil means slog.Default().
	Logger *slog.Logger
	// OnRoute, when not nil, hears of every change of the routing table: the
	// named other node gained (added) or lost a topic filter, its routes now at
	// incarnation inc and sequence number seq. It is called with the node's
	// lock held, in the order of the changes, and must not block or call the
	// Node.
	OnRoute func(node, filter string, added bool, inc, seq uint64)
	// OnUpdate, when not nil, is given every change of this node's own filters
	// as gossip carries it, under the same rules as OnRoute, so that it can go
	// to the peers by a faster way too (ApplyUpdate takes it there). b is not
	// changed afterwards.
	OnUpdate func(b []byte)
	// OnMembers, when not nil, is called after a member joined, changed, left
	// or was forgotten, under the same rules as OnRoute; Members then tells the
	// new view.
	OnMembers func()
	// Config, when not nil, may adjust the memberlist configuration after Node
	// has filled it in and before memberlist starts (tests shorten intervals).
	Config func(*memberlist.Config)
}

// MemberState is a member's state as this node sees it.
type MemberState int

// Member states. A Node reports alive, dead and left, as memberlist's events
// tell them; Cluster.Status reports suspect for an alive member its link from
// this node does not reach.
const (
	StateAlive MemberState = iota + 1
	StateSuspect
	StateDead
	StateLeft
)

func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "MemberState(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node of the cluster, this one included.
type Member struct {
	Name       string
	GossipAddr string // host:port
	LinkAddr   string // from the node's metadata; empty if it carried none
	State      MemberState
}

// peer is what the event delegate learnt about one node. Guarded by Node.mu.
type peer struct {
	gossipAddr string
	linkAddr   string
	state      MemberState
	gen        uint64      // bumped on every state change; a grace timer checks it
	timer      *time.Timer // the dead-node grace timer, while one runs
	leaving    bool        // it said it leaves (MarkLeaving): its departure is a leave
}

// remote is the replicated set of topic filters of another node. Guarded by
// Node.mu.
type remote struct {
	incarnation uint64
	seq         uint64 // the last update applied
	synced      bool   // filters are the origin's whole set at seq
	filters     map[string]struct{}
	pending     map[uint64]update // updates after seq, waiting for the ones before
}

// maxPending bounds the out-of-order updates kept per origin; beyond it they are
// dropped and the origin's next full state fills the gap.
const maxPending = 1024

// Node is one member of an Avocet cluster: its memberlist membership and its
// copy of the cluster-wide routing table, which says which other nodes have
// subscribers for a topic.
//
// Every method may be called from any goroutine. AddFilter and RemoveFilter
// do not block on the network: changes leave on memberlist's gossip.
type Node struct {
	name   string
	grace  time.Duration
	logger *slog.Logger
	meta   []byte

	ml    atomic.Pointer[memberlist.Memberlist]
	queue *memberlist.TransmitLimitedQueue

	onRoute   func(node, filter string, added bool, inc, seq uint64)
	onUpdate  func(b []byte)
	onMembers func()

	mu          sync.Mutex
	incarnation uint64             // this node's; fixed at New; guarded by mu
	seq         uint64             // of this node's last update; guarded by mu
	local       map[string]int     // this node's filters with their reference counts; guarded by mu
	remotes     map[string]*remote // by node name; guarded by mu
	peers       map[string]*peer   // by node name, this one included; guarded by mu
	closed      bool               // guarded by mu

	closeOnce sync.Once
	closeErr  error
}

// New starts memberlist on opts.GossipAddress and, when opts.Seeds is not empty,
// joins the cluster through them. A failed join is returned after the node has
// been closed.
func New(opts Options) (*Node, error) {
	if opts.Name == "" {
		return nil, errors.New("cluster: node name is empty")
	}
	if len(opts.Name) > maxNameLen {
		return nil, fmt.Errorf("cluster: node name longer than %d bytes", maxNameLen)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	grace := opts.DeadNodeGrace
	if grace <= 0 {
		grace = DefaultDeadNodeGrace
	}
	meta := encodeMeta(opts.LinkAddress)
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: link address %q too long", opts.LinkAddress)
	}
	n := &Node{
		name:        opts.Name,
		grace:       grace,
		logger:      logger.With("node", opts.Name),
		meta:        meta,
		incarnation: uint64(time.Now().UnixNano()),
		local:       make(map[string]int),
		remotes:     make(map[string]*remote),
		peers:       make(map[string]*peer),
		onRoute:     opts.OnRoute,
		onUpdate:    opts.OnUpdate,
		onMembers:   opts.OnMembers,
	}
	n.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := n.ml.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: 4,
	}

	conf := memberlist.DefaultLANConfig()
	conf.Name = opts.Name
	if opts.GossipAddress != "" {
		host, port, err := splitHostPort(opts.GossipAddress)
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip address: %w", err)
		}
		conf.BindAddr, conf.BindPort = host, port
		conf.AdvertisePort = port
	}
	if opts.AdvertiseAddress != "" {
		host, port, err := splitHostPort(opts.AdvertiseAddress)
		if err != nil {
			return nil, fmt.Errorf("cluster: advertise address: %w", err)
		}
		conf.AdvertiseAddr, conf.AdvertisePort = host, port
	}
	if opts.SecretKey != nil {
		conf.SecretKey = slices.Clone(opts.SecretKey)
	}
	conf.Delegate = (*delegate)(n)
	conf.Events = (*events)(n)
	conf.LogOutput = nil
	conf.Logger = log.New(&logWriter{logger: n.logger}, "", 0)
	if opts.Config != nil {
		opts.Config(conf)
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("cluster: node %q: start memberlist: %w", opts.Name, err)
	}
	n.ml.Store(ml)
	if len(opts.Seeds) > 0 {
		if err := n.Join(opts.Seeds); err != nil {
			if cerr := n.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return nil, err
		}
	}
	return n, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	return host, port, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// GossipAddr returns the host:port peers reach this node's gossip at, with the
// port memberlist bound when the configured one was 0.
func (n *Node) GossipAddr() string {
	ln := n.ml.Load().LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// Join contacts the given gossip addresses and merges with their cluster. It
// fails only when none of them could be reached.
func (n *Node) Join(seeds []string) error {
	joined, err := n.ml.Load().Join(seeds)
	if joined == 0 && err != nil {
		return fmt.Errorf("cluster: node %q: join %v: %w", n.name, seeds, err)
	}
	return nil
}

// Leave tells the cluster that this node is leaving, waits up to timeout for the
// message to spread, and then closes the node. Peers remove its routes at once.
func (n *Node) Leave(timeout time.Duration) error {
	err := n.ml.Load().Leave(timeout)
	if cerr := n.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("cluster: node %q: leave: %w", n.name, err)
	}
	return nil
}

// Close stops the node without telling the cluster: peers detect it as failed
// and drop its routes after their dead-node grace. Close may be called more than
// once; later calls return the first result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		for _, p := range n.peers {
			if p.timer != nil {
				p.timer.Stop()
				p.timer = nil
			}
		}
		n.mu.Unlock()
		n.closeErr = n.ml.Load().Shutdown()
	})
	return n.closeErr
}

// Members returns the nodes this node knows of, itself included, sorted by name:
// alive and suspect ones, and dead or left ones until the dead-node grace after
// their departure has passed.
func (n *Node) Members() []Member {
	n.mu.Lock()
	out := make([]Member, 0, len(n.peers))
	for name, p := range n.peers {
		out = append(out, Member{Name: name, GossipAddr: p.gossipAddr, LinkAddr: p.linkAddr, State: p.state})
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// logWriter turns memberlist's log lines into slog records at debug level.
type logWriter struct {
	logger *slog.Logger
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	w.logger.Debug(line, "component", "memberlist")
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
