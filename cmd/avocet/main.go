// Command avocet runs the Avocet MQTT broker.
//
//	avocet [--config FILE] [--print-config] [--version]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/listener"
	"github.com/avocet-mqtt/avocet/retain"
	"github.com/avocet-mqtt/avocet/session"
	"github.com/avocet-mqtt/avocet/store"
)

// drainTimeout is how long a stopping broker gives its clients to finish their
// inflight QoS 1 and 2 messages before it disconnects them.
const drainTimeout = 10 * time.Second

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, starts the broker and its listeners and blocks until SIGINT or
// SIGTERM. It returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cert" {
		return runCert(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("avocet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: avocet [--config FILE] [--print-config] [--version]\n")
		fmt.Fprintf(stderr, "       avocet passwd add|delete|list FILE [USER]\n")
		fmt.Fprintf(stderr, "       avocet cert [--dir DIR] [--days N] [--host h1,h2] [--client NAME ...]\n")
		fmt.Fprintf(stderr, "       avocet ctl [--admin URL] [--json] COMMAND [key=value ...]   (avocet ctl help)\n\n")
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "TOML configuration `file`; without it every setting takes its default")
	printConfig := fs.Bool("print-config", false, "print the effective configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "avocet %s\n", version)
		return 0
	}
	load := func() (*config.Config, error) {
		if *configFile != "" {
			return config.LoadEnv(*configFile, os.Environ())
		}
		return config.FromEnv(os.Environ())
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "avocet: %v\n", err)
		return 1
	}
	if *printConfig {
		if err := cfg.Write(stdout); err != nil {
			fmt.Fprintf(stderr, "avocet: %v\n", err)
			return 1
		}
		return 0
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Log.Level.Slog())
	log := newLogger(cfg.Log, level, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reload := func(b *broker.Broker) *config.Config {
		nc, err := load()
		if err != nil {
			log.Error("configuration not reloaded; the running one stays", "err", err)
			return nil
		}
		level.Set(nc.Log.Level.Slog())
		b.SetLimits(limitsFrom(nc))
		log.Info("configuration reloaded", "log_level", string(nc.Log.Level))
		return nc
	}
	if err := serve(ctx, cfg, log, stdout, reload); err != nil {
		log.Error("avocet stopped", "err", err)
		return 1
	}
	return 0
}

// newLogger makes the logger of the [log] table, at a level that reload changes.
func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the broker until ctx is done.
// serve runs the broker until ctx is done; on SIGHUP it calls reload, which
// applies what can change without a restart and returns the new configuration
// (nil when it was refused).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer, reload func(*broker.Broker) *config.Config) error {
	fsync, err := store.ParseFsync(string(cfg.Store.Fsync))
	if err != nil {
		return err
	}
	started := time.Now()
	db, err := store.Open(store.Options{Dir: cfg.Store.Dir, Fsync: fsync, ShrinkPercentage: cfg.Store.ShrinkPercentage,
		ShrinkMinSize: int64(cfg.Store.ShrinkMinSize), Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("store close failed", "path", db.Path(), "err", err)
		}
	}()
	ret, err := retain.New(db.Retained(), retain.Options{MaxMessages: cfg.MQTT.MaxRetainedMessages, MaxBytes: int64(cfg.MQTT.MaxRetainedBytes)})
	if err != nil {
		return fmt.Errorf("retained messages in %s: %w", db.Path(), err)
	}
	authn, acl, reloadAuth, err := loadAuth(ctx, cfg, log)
	if err != nil {
		return err
	}
	hooks, err := loadWebhooks(cfg, log)
	if err != nil {
		return err
	}
	defer hooks.close()
	opts := brokerOptions(cfg, log)
	opts.Retained = ret
	opts.SessionStore = db
	opts.Authenticator = hooks.authenticator(authn)
	opts.Hooks = hooks.brokerHooks()
	if acl != nil {
		opts.Authorizer = acl
	}
	b, err := broker.New(opts)
	if err != nil {
		return fmt.Errorf("%s: %w", db.Path(), err)
	}
	log.Info("store opened", "path", db.Path(), "fsync", fsync.String(), "retained", ret.Len(),
		"took", time.Since(started).Round(time.Millisecond))
	certs := newListenerCerts(ctx, log)
	defer certs.close()
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	cl, err := startCluster(cfg, b, db, certs, log)
	if err != nil {
		_ = b.Close(context.Background())
		return err
	}
	node := newClusterControl(cl, shutdown, log)
	defer node.close()
	ls := newListenerSet(b, cfg, certs, log, stdout)
	fmt.Fprintf(stdout, "avocet %s\n", version)
	if err := ls.startAll(); err != nil {
		_ = b.Close(context.Background())
		return err
	}
	bridges, err := startBridges(cfg.Bridges, b, db, log)
	if err != nil {
		ls.closeAll()
		_ = b.Close(context.Background())
		return err
	}
	if cfg.Admin.Address != "" {
		srv, err := admin.New(admin.Options{Address: cfg.Admin.Address, Token: cfg.Admin.Token, Broker: b, Store: db,
			Config: func() *config.Config { return cfg }, Listeners: ls, Drainer: drainer{ls: ls, b: b},
			Logger: log, Version: version, NodeName: cfg.Node.Name, Bridges: bridges.statuses,
			Cluster: node.status, ClusterJoin: node.join, ClusterLeave: node.leaveCluster})
		if err != nil {
			bridges.stopAll()
			ls.closeAll()
			_ = b.Close(context.Background())
			return err
		}
		aln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			bridges.stopAll()
			ls.closeAll()
			_ = b.Close(context.Background())
			return fmt.Errorf("admin %s: %w", cfg.Admin.Address, err)
		}
		fmt.Fprintf(stdout, "listening admin %s\n", aln.Addr())
		log.Info("admin API, metrics and status page", "address", aln.Addr().String())
		go func() {
			if err := srv.Serve(aln); err != nil {
				log.Error("admin server failed", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-hup:
			reloadAuth()
			if nc := reload(b); nc != nil {
				hooks.reload(nc)
				bridges.reload(nc.Bridges)
			}
			certs.reload()
		case <-ctx.Done():
			done = true
		}
	}
	log.Info("shutting down: draining clients", "timeout", drainTimeout)
	ls.closeAll()
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := b.Drain(dctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	bridges.stopAll()
	node.close()
	sctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := b.Close(sctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// limitsFrom takes the limits a reload may change from the configuration.
func limitsFrom(cfg *config.Config) broker.Limits {
	m := cfg.MQTT
	return broker.Limits{MaxKeepAlive: uint16(m.MaxKeepalive), ServerKeepAlive: uint16(m.ServerKeepalive),
		MaxConnections: m.MaxConnections, MaxTopicLevels: m.MaxTopicLevels, MaxSubscriptions: m.MaxSubscriptions,
		MaxPublishRate: m.MaxPublishRate, MaxPublishBytesRate: int64(m.MaxPublishBytesRate)}
}

// brokerOptions maps the configuration onto the broker's options.
func brokerOptions(cfg *config.Config, log *slog.Logger) broker.Options {
	m := cfg.MQTT
	o := broker.DefaultOptions()
	o.Logger = log
	o.Version = version
	o.NodeName = cfg.Node.Name
	o.MaxKeepAlive = uint16(m.MaxKeepalive)
	o.ServerKeepAlive = uint16(m.ServerKeepalive)
	o.MaxPacketSize = m.MaxPacketSize
	o.MaxInflight = m.MaxInflight
	o.ReceiveMaximum = m.ReceiveMaximum
	o.MaxQueued = m.MaxQueuedMessages
	o.QueueDrop = session.DropOldest
	if m.QueueDrop == config.DropNewest {
		o.QueueDrop = session.DropNewest
	}
	o.MaxConnections = m.MaxConnections
	o.MaxTopicLevels = m.MaxTopicLevels
	o.MaxSubscriptions = m.MaxSubscriptions
	o.MaxClientIDLength = m.MaxClientIDLength
	o.ConnectTimeout = m.ConnectTimeout.Std()
	o.MaxSessionExpiry = uint32(m.MaxSessionExpiry.Std() / time.Second)
	o.TopicAliasMaximum = uint16(m.TopicAliasMaximum)
	o.RetainAvailable = m.RetainAvailable
	o.WildcardSubs = m.WildcardSubscriptions
	o.SharedSubs = m.SharedSubscriptions
	o.SubscriptionIDs = m.SubscriptionIdentifiers
	switch m.SharedSubscriptionStrategy {
	case config.ShareRandom:
		o.SharedStrategy = broker.Random
	case config.ShareSticky:
		o.SharedStrategy = broker.Sticky
	default:
		o.SharedStrategy = broker.RoundRobin
	}
	o.SharedPreferLocal = m.SharedPreferLocal
	o.SysInterval = m.SysInterval.Std()
	o.AllowEmptyClientID = m.AllowEmptyClientID
	o.AllowAnonymous = cfg.Auth.AllowAnonymous
	o.MaxPublishRate = m.MaxPublishRate
	o.MaxPublishBytesRate = int64(m.MaxPublishBytesRate)
	o.MaxOutboundBytes = int64(m.MaxOutboundBytes)
	o.TLSState = listener.TLSState
	return o
}
