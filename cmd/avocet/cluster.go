package main

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/cluster"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/store"
)

// startCluster makes b a node of the cluster [cluster] describes, or returns
// nil when clustering is off.
func startCluster(cfg *config.Config, b *broker.Broker, db *store.DB, certs *listenerCerts, log *slog.Logger) (*cluster.Cluster, error) {
	cc := cfg.Cluster
	if !cc.Enabled {
		return nil, nil
	}
	secret, err := cc.SecretKey()
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	ccfg := cluster.Config{
		Node: cluster.Options{
			Name: cfg.Node.Name, GossipAddress: cc.GossipAddress, AdvertiseAddress: cc.AdvertiseAddress,
			LinkAddress: cc.LinkAddress, Seeds: cc.Seeds, SecretKey: secret,
			DeadNodeGrace: cc.DeadNodeGrace.Std(), Logger: log,
		},
		LinkQueue:                   cc.LinkQueue,
		Store:                       db,
		AllowRegisterDuringNetsplit: cc.NetsplitRegister,
		AllowPublishDuringNetsplit:  cc.NetsplitPublish,
		RegisterTimeout:             cc.RegisterTimeout.Std(),
		TombstoneTTL:                cc.TombstoneTTL.Std(),
	}
	if cc.LinkTLSCert != "" {
		server, err := certs.serverTLS(config.Listener{
			Name: "cluster-link", Kind: config.KindTLS, CertFile: cc.LinkTLSCert, KeyFile: cc.LinkTLSKey,
			CAFile: cc.LinkTLSCA, RequireClientCert: true,
		})
		if err != nil {
			return nil, fmt.Errorf("cluster link TLS: %w", err)
		}
		server.NextProtos = nil
		client, err := linkClientTLS(cc)
		if err != nil {
			return nil, err
		}
		ccfg.LinkTLS, ccfg.LinkClientTLS = server, client
	}
	c, err := cluster.Start(b, ccfg)
	if err != nil {
		return nil, err
	}
	log.Info("cluster node started", "node", cfg.Node.Name, "gossip", c.Node().GossipAddr(),
		"link", cc.LinkAddress, "seeds", cc.Seeds, "link_tls", ccfg.LinkTLS != nil)
	return c, nil
}

// linkClientTLS is the TLS configuration a node dials its peers' links with: its
// own certificate, and the cluster CA that signed every node's.
func linkClientTLS(cc config.Cluster) (*cryptotls.Config, error) {
	pair, err := cryptotls.LoadX509KeyPair(cc.LinkTLSCert, cc.LinkTLSKey)
	if err != nil {
		return nil, fmt.Errorf("cluster link TLS: %w", err)
	}
	pem, err := os.ReadFile(cc.LinkTLSCA)
	if err != nil {
		return nil, fmt.Errorf("cluster link TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster link TLS: %s: no PEM certificate", cc.LinkTLSCA)
	}
	return &cryptotls.Config{Certificates: []cryptotls.Certificate{pair}, RootCAs: pool, MinVersion: cryptotls.VersionTLS12}, nil
}

// clusterControl is what the admin API may do to the node's cluster: leaving
// hands the node's offline sessions over, tells the cluster, and shuts the node
// down; a node stopped any other way (SIGTERM) does not leave, so that its peers
// keep its routes and queue its messages until it is back.
type clusterControl struct {
	c        *cluster.Cluster
	shutdown func()
	log      *slog.Logger
	once     sync.Once
	leave    atomic.Bool
}

func newClusterControl(c *cluster.Cluster, shutdown func(), log *slog.Logger) *clusterControl {
	return &clusterControl{c: c, shutdown: shutdown, log: log}
}

// status is the cluster view for the admin API; nil when not clustered.
func (n *clusterControl) status() *cluster.Status {
	if n.c == nil {
		return nil
	}
	st := n.c.Status()
	return &st
}

// join merges the node with the cluster the seeds belong to.
func (n *clusterControl) join(seeds []string) error {
	if n.c == nil {
		return errors.New("clustering is not enabled: set [cluster] enabled = true")
	}
	return n.c.Join(seeds)
}

// leaveCluster makes the node leave the cluster and shut down.
func (n *clusterControl) leaveCluster() error {
	if n.c == nil {
		return errors.New("clustering is not enabled")
	}
	n.leave.Store(true)
	n.shutdown()
	return nil
}

// close stops the node's part in the cluster, once; it leaves when leave was
// asked for.
func (n *clusterControl) close() {
	if n.c == nil {
		return
	}
	n.once.Do(func() {
		leave := n.leave.Load()
		if err := n.c.Close(leave, 10*time.Second); err != nil {
			n.log.Warn("cluster close", "leave", leave, "err", err)
		}
	})
}
