package cluster

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/session"
)

// Defaults of Config's zero fields.
const (
	DefaultRegisterTimeout = 3 * time.Second
	DefaultTombstoneTTL    = 24 * time.Hour
	// DefaultRejoinInterval is how often a node tries to reach again the
	// members it took for dead, and its seeds when it has no other member
	// left: memberlist never contacts a member it declared dead, so without
	// this the two sides of a healed netsplit would stay apart.
	DefaultRejoinInterval = 5 * time.Second
	// rejoinFor bounds how long a member taken for dead is tried.
	rejoinFor = 24 * time.Hour
)

// Config configures a Cluster.
type Config struct {
	// Node configures membership. Its OnRoute and OnMembers are the Cluster's.
	Node Options
	// LinkTLS, when not nil, makes the node accept links over TLS; LinkClientTLS
	// is then what it dials peers with.
	LinkTLS, LinkClientTLS *tls.Config
	// LinkQueue bounds the messages queued for one peer (DefaultLinkQueue when 0).
	LinkQueue int
	// Store is where the node keeps what must survive a restart: messages for
	// peers not yet acknowledged, what it received from each peer, and the
	// stamps of retained messages. nil keeps them in memory.
	Store session.Store
	// AllowRegisterDuringNetsplit lets clients connect while some member is
	// unreachable; their session on an unreachable node is then not ended there.
	AllowRegisterDuringNetsplit bool
	// AllowPublishDuringNetsplit lets clients publish while some member is
	// unreachable; messages for it wait in its link's queue.
	AllowPublishDuringNetsplit bool
	// RegisterTimeout bounds how long a CONNECT waits for the other nodes to end
	// the client's session there (DefaultRegisterTimeout when 0).
	RegisterTimeout time.Duration
	// TombstoneTTL is how long a cleared retained message is remembered, so that
	// a node that was away does not bring it back (DefaultTombstoneTTL when 0).
	TombstoneTTL time.Duration
	// RelayTimeout bounds how long messages for a session that moved away are
	// relayed to its new node while some node has not confirmed that it routes
	// them there (DefaultRelayTimeout when 0).
	RelayTimeout time.Duration
	// RejoinInterval is how often the members taken for dead are tried again
	// (DefaultRejoinInterval when 0).
	RejoinInterval time.Duration
}

// Cluster makes a broker one node of an Avocet cluster: it implements
// broker.Cluster. Other nodes subscribe in the broker's tree as receivers (see
// broker.NodePrefix) to the filters their clients hold, so a message published
// here is forwarded once to each node with a match, over a link; messages from
// links are routed to local subscribers only. Client identifiers are registered
// cluster-wide when clients connect, and sessions move between nodes. Retained
// messages are replicated to every node, the last writer winning.
type Cluster struct {
	b      *broker.Broker
	cfg    Config
	node   *Node
	links  *Links
	server *LinkServer
	log    *slog.Logger
	store  session.Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Route changes from the Node, applied to the broker in order by applyLoop.
	routeMu   sync.Mutex
	routeCond *sync.Cond
	routeQ    []routeChange // guarded by routeMu
	membersCh chan struct{}

	recvMu    sync.Mutex
	receivers map[string]*nodeReceiver // attached peers by name; guarded by recvMu

	retMu  sync.Mutex
	stamps map[string]stampEntry // by topic, retained messages and tombstones; guarded by retMu

	reqMu   sync.Mutex
	reqID   uint64                     // guarded by reqMu
	pending map[uint64]pendingRegister // guarded by reqMu

	// Sessions that move between nodes; see move.go.
	relayMu  sync.Mutex
	relays   map[string]*relayState // sessions that moved away, by client id; guarded by relayMu
	fences   []fenceReq             // waiting for route changes; guarded by relayMu
	syncs    []*syncWait            // Sync calls waiting for fenced; guarded by relayMu
	movedIn  sync.Map               // client id to *movedIn: sessions moving here, or relayed to
	movedInN atomic.Int32           // entries of movedIn

	split   atomic.Bool                        // some member is unreachable; see refreshNetsplit
	applied atomic.Pointer[map[string]version] // per other node, the version of its routes in the broker's tree

	forwarded, received, retainApplied, forwardDrops, sessionsMoved, relayed atomic.Int64
}

// routeChange is a change of the routing table for applyLoop, or a fence to
// answer once the changes before it are applied.
type routeChange struct {
	node, filter string
	added        bool
	fence        *fenceReq
	v            version // the node's routes with the change
}

type stampEntry struct {
	stamp   stamp
	cleared bool
	at      time.Time // when a tombstone was made, for TombstoneTTL
}

// Store keys of a Cluster.
//
//	c/r/{topic}  the stamp of a retained topic: time (8 bytes), flags (1: cleared), node
const prefixStamp = "c/r/"

// Start makes b a node of the cluster cfg describes: it listens for links, starts
// membership and joins the seeds. Call it before b serves connections.
func Start(b *broker.Broker, cfg Config) (*Cluster, error) {
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = DefaultRegisterTimeout
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.RelayTimeout <= 0 {
		cfg.RelayTimeout = DefaultRelayTimeout
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	logger := cfg.Node.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Cluster{
		b: b, cfg: cfg, log: logger.With("component", "cluster"), store: cfg.Store,
		membersCh: make(chan struct{}, 1),
		receivers: make(map[string]*nodeReceiver),
		stamps:    make(map[string]stampEntry),
		pending:   make(map[uint64]pendingRegister),
		relays:    make(map[string]*relayState),
	}
	c.routeCond = sync.NewCond(&c.routeMu)
	c.applied.Store(&map[string]version{})
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.loadStamps(); err != nil {
		return nil, err
	}
	c.links = NewLinks(LinkConfig{
		Name: cfg.Node.Name, Secret: cfg.Node.SecretKey, TLS: cfg.LinkClientTLS, Queue: cfg.LinkQueue,
		Store: cfg.Store, Logger: logger, OnUp: c.linkUp,
	})
	server, err := ListenLinks(cfg.Node.LinkAddress, cfg.LinkTLS, cfg.Node.SecretKey, cfg.Store, c.handle, logger)
	if err != nil {
		c.links.Close()
		return nil, err
	}
	c.server = server
	opts := cfg.Node
	if opts.LinkAddress == "" || strings.HasSuffix(opts.LinkAddress, ":0") {
		opts.LinkAddress = server.Addr()
	}
	opts.OnRoute = c.onRoute
	opts.OnUpdate = c.onUpdate
	opts.OnMembers = c.onMembers
	seeds := opts.Seeds
	opts.Seeds = nil
	c.wg.Add(2)
	go c.applyLoop()
	go c.sweepLoop()
	node, err := New(opts)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.node = node
	// The broker's subscriptions, loaded sessions' among them, are announced
	// before the node joins, so that the cluster learns them with its state.
	b.SetCluster(c)
	c.wg.Add(3)
	go c.membersLoop()
	go c.rejoinLoop(seeds)
	go c.tickLoop()
	if len(seeds) > 0 {
		c.wg.Add(1)
		go c.joinLoop(seeds)
	}
	return c, nil
}

// rejoinLoop tries, every RejoinInterval, to join the members this node took
// for dead (for up to a day, until they come back or leave), and the seeds
// when no other member is alive, so that a netsplit heals by itself.
func (c *Cluster) rejoinLoop(seeds []string) {
	defer c.wg.Done()
	type lostMember struct {
		addr  string
		since time.Time
	}
	lost := make(map[string]lostMember)
	c.every(c.cfg.RejoinInterval, func(now time.Time) {
		alive := 0
		for _, m := range c.node.Members() {
			if m.Name == c.node.Name() {
				continue
			}
			switch m.State {
			case StateAlive, StateSuspect:
				alive++
				delete(lost, m.Name)
			case StateLeft:
				delete(lost, m.Name)
			case StateDead:
				if _, ok := lost[m.Name]; !ok && m.GossipAddr != "" {
					lost[m.Name] = lostMember{addr: m.GossipAddr, since: now}
				}
			}
		}
		var addrs []string
		for name, lm := range lost {
			if now.Sub(lm.since) > rejoinFor {
				delete(lost, name)
				continue
			}
			addrs = append(addrs, lm.addr)
		}
		if alive == 0 {
			addrs = append(addrs, seeds...)
		}
		if len(addrs) == 0 {
			return
		}
		if err := c.node.Join(addrs); err == nil {
			c.log.Debug("cluster: rejoined members taken for dead", "addresses", addrs)
		} else {
			c.log.Debug("cluster: rejoin failed", "addresses", addrs, "err", err)
		}
	})
}

// every calls fn every d until the cluster stops, with the tick's time.
func (c *Cluster) every(d time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// joinLoop joins the seeds, trying again every few seconds while none answers:
// nodes of a cluster may start in any order.
func (c *Cluster) joinLoop(seeds []string) {
	defer c.wg.Done()
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := c.node.Join(seeds)
		if err == nil {
			return
		}
		c.log.Warn("cluster: join failed; trying again", "seeds", seeds, "err", err, "in", delay)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// stop ends the goroutines, links and listener of a Cluster.
func (c *Cluster) stop() {
	c.cancel()
	c.routeMu.Lock()
	c.routeCond.Broadcast()
	c.routeMu.Unlock()
	c.wg.Wait()
	c.links.Close()
	if err := c.server.Close(); err != nil {
		c.log.Debug("cluster: link listener close", "err", err)
	}
}

// Node returns the membership and routing table of this node.
func (c *Cluster) Node() *Node { return c.node }

// Links returns the outgoing links to the other nodes.
func (c *Cluster) Links() *Links { return c.links }

// Join contacts the given gossip addresses and merges with their cluster.
func (c *Cluster) Join(seeds []string) error { return c.node.Join(seeds) }

// Close stops the node. With leave, it first hands its offline sessions over to
// other nodes and tells the cluster it leaves, waiting up to timeout; without,
// peers detect it as failed.
func (c *Cluster) Close(leave bool, timeout time.Duration) error {
	var err error
	if leave {
		deadline := time.Now().Add(timeout)
		c.handover(timeout)
		// The peers learn that this node leaves rather than fails before it
		// goes: memberlist does not tell them.
		c.links.SendAll(Item{Kind: itemLeaving})
		for time.Now().Before(deadline) && c.unacked() > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		err = c.node.Leave(max(time.Until(deadline), time.Second))
	} else {
		err = c.node.Close()
	}
	c.stop()
	return err
}

// FilterAdded tells the cluster that this node has one more subscription to
// filter. It implements broker.Cluster.
func (c *Cluster) FilterAdded(filter string) {
	if err := c.node.AddFilter(filter); err != nil {
		c.log.Warn("cluster: filter not announced", "filter", filter, "err", err)
	}
}

// FilterRemoved implements broker.Cluster.
func (c *Cluster) FilterRemoved(filter string) { c.node.RemoveFilter(filter) }
