package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/bridge"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/cluster"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/store"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrNotFound is what a Listeners implementation returns, wrapped, for a
// listener name it does not know; the API answers 404 Not Found.
var ErrNotFound = errors.New("not found")

// ListenerInfo describes one configured listener for the API and the metrics.
type ListenerInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`    // tcp, tls, ws or wss
	Address     string `json:"address"` // the bound address while running, else the configured one
	Running     bool   `json:"running"`
	Connections int64  `json:"connections"` // open now
	Accepted    int64  `json:"accepted"`    // since the process started
	Rejected    int64  `json:"rejected"`    // since the process started
}

// Listeners is the broker's set of listeners as the avocet command manages
// them. Its methods are called from HTTP handlers and metric scrapes,
// concurrently with each other.
type Listeners interface {
	// List returns every configured listener, running or stopped, in a stable
	// order. It must not block: it reads counters. The slice is the caller's.
	List() []ListenerInfo
	// Stop closes listener name so that it accepts no more connections;
	// connections it already accepted stay. Stopping a stopped listener
	// returns nil. An unknown name returns an error wrapping ErrNotFound.
	Stop(name string) error
	// Start binds listener name again and serves it. Starting a running
	// listener returns nil. An unknown name returns an error wrapping
	// ErrNotFound; a failure to bind is returned as it is.
	Start(name string) error
}

// Drainer empties the broker of its clients for a rolling restart, without
// exiting: the avocet command implements it with its listeners and
// (*broker.Broker).Drain.
type Drainer interface {
	// Drain returns once every client is gone. It is called on a goroutine
	// of the admin server's, at most once at a time; ctx is cancelled when
	// the admin server shuts down. The Drainer bounds the wait with its own
	// drain timeout.
	Drain(ctx context.Context) error
}

// StoreStats is the durable store as the admin server reads it; *store.DB
// satisfies it. Both methods may be called at any time, concurrently.
type StoreStats interface {
	Stats() store.Stats
	Path() string
}

// Options configure a Server.
type Options struct {
	// Address is the host:port ListenAndServe binds. It also decides the
	// authentication rules: a host other than loopback requires Token.
	Address string
	// Token is the secret every request but /healthz must carry, as
	// "Authorization: Bearer <token>" or as the password of basic auth (any
	// user name). Empty: no authentication, allowed on loopback only.
	Token string

	Broker *broker.Broker // required
	// Store is the durable store, for its figures; nil when sessions live in
	// memory only.
	Store StoreStats
	// Config returns the configuration in effect, for GET /api/v1/config;
	// nil makes that endpoint answer 501 Not Implemented.
	Config func() *config.Config
	// Listeners is the broker's listeners; nil when there are none to show.
	Listeners Listeners
	// Drainer serves POST /api/v1/drain; nil makes it answer 501.
	Drainer Drainer
	// Bridges returns the status of every running bridge, for the API, the
	// metrics and the status page; nil when there are no bridges. It is
	// called from HTTP handlers and metric scrapes, concurrently, and must
	// not block. The slice is the caller's.
	Bridges func() []bridge.Status
	// Cluster returns this node's view of the cluster, for GET
	// /api/v1/cluster, the status, the metrics and the status page. Nil, or
	// a func returning nil, means the node is not part of a cluster: the
	// cluster endpoints answer 404 and the cluster metrics are absent. It is
	// called from HTTP handlers and metric scrapes, concurrently, and must
	// not block; the Status is the caller's.
	Cluster func() *cluster.Status
	// ClusterJoin serves POST /api/v1/cluster/join: it contacts the seeds
	// (gossip addresses, host:port, already checked) and returns once this
	// node has joined through at least one of them, or the error. Nil makes
	// the endpoint answer 501 on a clustered node.
	ClusterJoin func(seeds []string) error
	// ClusterLeave serves POST /api/v1/cluster/leave. It is called on the
	// request's goroutine and must return promptly: it begins the leave
	// (the avocet command leaves and shuts down gracefully, which also
	// shuts this server down) rather than waiting for it to finish. An
	// error answers 500; nil answers 202. Nil makes the endpoint answer 501
	// on a clustered node.
	ClusterLeave func() error

	Logger   *slog.Logger // nil: slog.Default()
	Version  string       // shown on the status page and in avocet_info; empty: the broker's Options.Version
	NodeName string       // likewise; empty: the broker's Options.NodeName
}

// Server is the admin HTTP server. Create it with New, run it with Serve or
// ListenAndServe, and stop it with Shutdown.
type Server struct {
	// Read-only after New.
	opts    Options
	log     *slog.Logger
	b       *broker.Broker
	open    bool // no token and loopback: requests need no authentication
	handler http.Handler
	reg     *prometheus.Registry
	start   time.Time

	totals sessionTotals // guarded by its own lock

	traceDropped atomic.Int64 // trace events dropped because a stream's buffer was full

	drainMu  sync.Mutex
	draining bool // a drain started here is running; guarded by drainMu

	ctx    context.Context // cancelled by Shutdown: ends trace streams and a running drain
	cancel context.CancelFunc
	wg     sync.WaitGroup // the drain goroutine

	mu   sync.Mutex
	srv  *http.Server // guarded by mu; nil until Serve
	addr net.Addr     // guarded by mu
	shut bool         // Shutdown was called; guarded by mu
}

// New returns a server for opts. It fails when opts.Broker is nil, when
// opts.Address is not a valid host:port, and when the address is not loopback
// and opts.Token is empty: the admin API is never served open to the network.
func New(opts Options) (*Server, error) {
	if opts.Broker == nil {
		return nil, errors.New("admin: no broker")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	loop, err := loopbackAddress(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("admin: address %q: %w", opts.Address, err)
	}
	if !loop && opts.Token == "" {
		return nil, fmt.Errorf("admin: address %q is reachable from the network but [admin] token is empty: "+
			"set a token, or bind a loopback address such as 127.0.0.1:8888", opts.Address)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		b:      opts.Broker,
		open:   opts.Token == "",
		start:  time.Now(),
		ctx:    ctx,
		cancel: cancel,
	}
	s.reg = s.newRegistry()
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler, authentication included, for
// tests and for embedding in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the Prometheus registry /metrics exposes, so that other
// parts of the program (the cluster, bridges) can register their collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// ListenAndServe binds opts.Address and serves on it until Shutdown. It
// returns nil after Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves HTTP on ln until Shutdown, and closes ln. It returns nil after
// Shutdown. It refuses a listener bound beyond loopback when the server has
// no token, whatever opts.Address said. Serve may be called once.
func (s *Server) Serve(ln net.Listener) error {
	if s.open && !isLoopback(ln.Addr()) {
		_ = ln.Close()
		return fmt.Errorf("admin: listener %s is reachable from the network but [admin] token is empty", ln.Addr())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	switch {
	case s.shut:
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	case s.srv != nil:
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("admin: Serve called twice")
	}
	s.srv, s.addr = srv, ln.Addr()
	s.mu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Addr returns the address the server listens on, nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops the server: it ends trace streams, cancels a drain it
// started, stops accepting and waits for the requests in progress and the
// drain goroutine, or until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shut = true
	srv := s.srv
	s.mu.Unlock()
	s.cancel()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// loopbackAddress reports whether the host of address (host:port) is a
// loopback address or "localhost". An empty host means every interface.
func loopbackAddress(address string) (bool, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// isLoopback reports whether a listener's address is a loopback address.
func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	ok, err := loopbackAddress(a.String())
	return err == nil && ok
}
