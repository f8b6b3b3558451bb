package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/avocet-mqtt/avocet/cluster"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newRegistry returns the private registry /metrics exposes: the broker's
// figures, read at scrape time from its own counters, and the Go runtime and
// process collectors.
func (s *Server) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

func (s *Server) metrics() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:          promErrorLog{s},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          s.reg,
		EnableOpenMetrics: true,
	})
}

// promErrorLog passes promhttp's errors to the server's logger.
type promErrorLog struct{ s *Server }

func (l promErrorLog) Println(v ...any) {
	l.s.log.Warn("metrics scrape failed", "err", fmt.Sprint(v...))
}

// metric is one family the collector exposes.
type metric struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
}

func newMetric(name, help string, kind prometheus.ValueType, labels ...string) metric {
	return metric{desc: prometheus.NewDesc(name, help, labels, nil), kind: kind}
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// collector reads the broker's counters when Prometheus scrapes. It keeps
// no state of its own: the values are those $SYS and the status report.
type collector struct {
	s *Server

	info, draining                                                            metric
	connections, connectionsTotal, refused, clients                           metric
	packetsReceived, packetsSent, bytesReceived, bytesSent                    metric
	messagesReceived, messagesSent, messagesDropped, messagesExpired          metric
	publishersPaced, paceStalls                                               metric
	protocolErrors                                                            metric
	sessions, subscriptions, retainedMessages, retainedBytes                  metric
	outboundBytes, queued, inflight                                           metric
	storeSize, storeBatches, storeLastBatch, storeFailures                    metric
	storeWritten, storePending                                                metric
	listenerUp, listenerConnections, listenerAccepted, listenerRejected       metric
	traceDropped                                                              metric
	bridgeConnected, bridgeQueued, bridgeMessages                             metric
	bridgeDropped, bridgeReconnects                                           metric
	clusterMembers, clusterNetsplit                                           metric
	linkUp, linkQueued, linkUnacked, linkSent, linkAcked                      metric
	linkDropped, linkReconnects                                               metric
	clusterForwarded, clusterForwardDrops, clusterReceived                    metric
	clusterRetainApplied, clusterSessionsMoved, clusterRelayed, clusterRelays metric
}

func newCollector(s *Server) *collector {
	return &collector{
		s:        s,
		info:     newMetric("avocet_info", "Always 1; the labels name the node and its version.", gauge, "node", "version"),
		draining: newMetric("avocet_draining", "1 while the broker drains and takes no new clients, else 0.", gauge),

		connections:      newMetric("avocet_connections", "Open network connections.", gauge),
		connectionsTotal: newMetric("avocet_connections_total", "Network connections accepted.", counter),
		refused:          newMetric("avocet_connections_refused_total", "CONNECTs refused, by CONNACK reason.", counter, "reason"),
		clients:          newMetric("avocet_clients_connected", "Connections past a successful CONNACK.", gauge),

		packetsReceived: newMetric("avocet_packets_received_total", "MQTT packets received, by type.", counter, "type"),
		packetsSent:     newMetric("avocet_packets_sent_total", "MQTT packets sent, by type.", counter, "type"),
		bytesReceived:   newMetric("avocet_bytes_received_total", "Bytes received on client connections.", counter),
		bytesSent:       newMetric("avocet_bytes_sent_total", "Bytes sent on client connections.", counter),

		messagesReceived: newMetric("avocet_messages_received_total", "PUBLISH packets received from clients.", counter),
		messagesSent:     newMetric("avocet_messages_sent_total", "PUBLISH packets sent to clients.", counter),
		messagesDropped:  newMetric("avocet_messages_dropped_total", "Messages not delivered, by reason.", counter, "reason"),
		messagesExpired:  newMetric("avocet_messages_expired_total", "Messages whose expiry passed while queued.", counter),
		publishersPaced:  newMetric("avocet_publishers_paced_total", "Times a publisher waited for a subscriber queue at least half full.", counter),
		paceStalls:       newMetric("avocet_pace_stalls_total", "Waits for a crowded subscriber queue that timed out; the queue then drops by its policy.", counter),
		protocolErrors:   newMetric("avocet_protocol_errors_total", "Connections closed for a malformed packet or a protocol error.", counter),

		sessions:         newMetric("avocet_sessions", "Sessions, by state: online (connected) or offline.", gauge, "state"),
		subscriptions:    newMetric("avocet_subscriptions", "Subscriptions held, a shared group membership counting as one.", gauge),
		retainedMessages: newMetric("avocet_retained_messages", "Retained messages held.", gauge),
		retainedBytes:    newMetric("avocet_retained_bytes", "Bytes of topic names and payloads of the retained messages.", gauge),
		outboundBytes:    newMetric("avocet_outbound_bytes", "Payload bytes held in session queues and inflight windows.", gauge),
		queued:           newMetric("avocet_queued_messages", "Messages queued for sessions, online or offline (computed at most every 2s).", gauge),
		inflight:         newMetric("avocet_inflight_messages", "QoS 1 and 2 messages sent and not yet acknowledged (computed at most every 2s).", gauge),

		storeSize:      newMetric("avocet_store_size_bytes", "Size of the store's data file.", gauge),
		storeBatches:   newMetric("avocet_store_batches_total", "Group commits the store ran.", counter),
		storeLastBatch: newMetric("avocet_store_last_batch_seconds", "How long the store's last group commit took to write and sync.", gauge),
		storeFailures:  newMetric("avocet_store_failures_total", "Group commits that failed to be written or synced.", counter),
		storeWritten:   newMetric("avocet_store_written_bytes_total", "Bytes of keys and values the store wrote.", counter),
		storePending:   newMetric("avocet_store_pending", "Changes waiting for the store's writer.", gauge),

		listenerUp:          newMetric("avocet_listener_up", "1 while the listener accepts connections, else 0.", gauge, "listener", "kind"),
		listenerConnections: newMetric("avocet_listener_connections", "Connections open on the listener.", gauge, "listener"),
		listenerAccepted:    newMetric("avocet_listener_accepted_total", "Connections the listener accepted.", counter, "listener"),
		listenerRejected:    newMetric("avocet_listener_rejected_total", "Connections the listener turned away.", counter, "listener"),

		traceDropped: newMetric("avocet_trace_events_dropped_total", "Trace events the admin API dropped because a trace client read too slowly.", counter),

		bridgeConnected:  newMetric("avocet_bridge_connected", "1 while the bridge is connected to its remote broker, else 0.", gauge, "bridge"),
		bridgeQueued:     newMetric("avocet_bridge_queued_messages", "Outbound messages the bridge holds until the remote acknowledges them.", gauge, "bridge"),
		bridgeMessages:   newMetric("avocet_bridge_messages_total", "Messages the bridge forwarded, by direction: in from the remote, out to it.", counter, "bridge", "direction"),
		bridgeDropped:    newMetric("avocet_bridge_dropped_total", "Outbound messages the bridge dropped because its queue was full.", counter, "bridge"),
		bridgeReconnects: newMetric("avocet_bridge_reconnects_total", "Connections the bridge made to its remote after the first.", counter, "bridge"),

		clusterMembers:  newMetric("avocet_cluster_members", "Members of the cluster as this node sees them, itself included, by state: alive, suspect, dead or left.", gauge, "state"),
		clusterNetsplit: newMetric("avocet_cluster_netsplit", "1 while some member of the cluster is unreachable from this node, else 0.", gauge),
		linkUp:          newMetric("avocet_cluster_link_up", "1 while the link to the peer node is connected, else 0.", gauge, "peer"),
		linkQueued:      newMetric("avocet_cluster_link_queued", "Items waiting to be written on the link to the peer node.", gauge, "peer"),
		linkUnacked:     newMetric("avocet_cluster_link_unacked", "Items written on the link to the peer node and not yet acknowledged.", gauge, "peer"),
		linkSent:        newMetric("avocet_cluster_link_sent_total", "Items written on the link to the peer node, again when written again after a reconnect.", counter, "peer"),
		linkAcked:       newMetric("avocet_cluster_link_acked_total", "Items the peer node acknowledged.", counter, "peer"),
		linkDropped:     newMetric("avocet_cluster_link_dropped_total", "Items the link to the peer node refused because its queue was full.", counter, "peer"),
		linkReconnects:  newMetric("avocet_cluster_link_reconnects_total", "Connections to the peer node lost after the handshake.", counter, "peer"),

		clusterForwarded:     newMetric("avocet_cluster_forwarded_total", "Messages queued for other nodes of the cluster.", counter),
		clusterForwardDrops:  newMetric("avocet_cluster_forward_drops_total", "Messages for other nodes not queued: no link, or a full queue.", counter),
		clusterReceived:      newMetric("avocet_cluster_received_total", "Messages received from other nodes of the cluster.", counter),
		clusterRetainApplied: newMetric("avocet_cluster_retain_applied_total", "Retained message changes from other nodes applied here.", counter),
		clusterSessionsMoved: newMetric("avocet_cluster_sessions_moved_total", "Sessions that came to this node from other nodes.", counter),
		clusterRelayed:       newMetric("avocet_cluster_relayed_total", "Messages relayed to sessions that moved to another node.", counter),
		clusterRelays:        newMetric("avocet_cluster_relays", "Sessions that moved to another node and are relayed to now.", gauge),
	}
}

func (c *collector) metrics() []metric {
	return []metric{
		c.info, c.draining,
		c.connections, c.connectionsTotal, c.refused, c.clients,
		c.packetsReceived, c.packetsSent, c.bytesReceived, c.bytesSent,
		c.messagesReceived, c.messagesSent, c.messagesDropped, c.messagesExpired, c.protocolErrors,
		c.publishersPaced, c.paceStalls,
		c.sessions, c.subscriptions, c.retainedMessages, c.retainedBytes,
		c.outboundBytes, c.queued, c.inflight,
		c.storeSize, c.storeBatches, c.storeLastBatch, c.storeFailures, c.storeWritten, c.storePending,
		c.listenerUp, c.listenerConnections, c.listenerAccepted, c.listenerRejected,
		c.traceDropped,
		c.bridgeConnected, c.bridgeQueued, c.bridgeMessages, c.bridgeDropped, c.bridgeReconnects,
		c.clusterMembers, c.clusterNetsplit,
		c.linkUp, c.linkQueued, c.linkUnacked, c.linkSent, c.linkAcked, c.linkDropped, c.linkReconnects,
		c.clusterForwarded, c.clusterForwardDrops, c.clusterReceived, c.clusterRetainApplied, c.clusterSessionsMoved,
		c.clusterRelayed, c.clusterRelays,
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics() {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector. Prometheus may call it
// concurrently; it only reads.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	b := s.b
	st := b.Stats()
	emit := func(m metric, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, v, labels...)
	}
	i := func(m metric, v int64, labels ...string) { emit(m, float64(v), labels...) }

	emit(c.info, 1, s.nodeName(), s.version())
	draining := 0.0
	if b.Draining() {
		draining = 1
	}
	emit(c.draining, draining)

	i(c.connections, st.ConnectionsCurrent.Load())
	i(c.connectionsTotal, st.ConnectionsTotal.Load())
	i(c.clients, st.ClientsConnected.Load())
	for code := range st.RefusedBy {
		n := st.RefusedBy[code].Load()
		if n > 0 || connackRefusal[code] {
			i(c.refused, n, reasonLabels[code])
		}
	}

	for t := mqtt.CONNECT; t <= mqtt.AUTH; t++ {
		i(c.packetsReceived, st.PacketsReceived[t].Load(), t.String())
		i(c.packetsSent, st.PacketsSent[t].Load(), t.String())
	}
	i(c.bytesReceived, st.BytesReceived.Load())
	i(c.bytesSent, st.BytesSent.Load())

	i(c.messagesReceived, st.MessagesReceived.Load())
	i(c.messagesSent, st.MessagesSent.Load())
	for reason, n := range dropped(st) {
		i(c.messagesDropped, n, reason)
	}
	i(c.messagesExpired, st.MessagesExpired.Load())
	i(c.publishersPaced, st.PublishersPaced.Load())
	i(c.paceStalls, st.PaceStalls.Load())
	i(c.protocolErrors, st.ProtocolErrors.Load())

	sys := s.sysFigures()
	i(c.sessions, sys.online, "online")
	i(c.sessions, sys.offline, "offline")
	i(c.subscriptions, int64(b.Tree().SubscriptionCount()))
	i(c.retainedMessages, int64(b.Retained().Len()))
	i(c.retainedBytes, b.Retained().Bytes())
	i(c.outboundBytes, b.OutboundBytes())
	queued, inflight := s.queueTotals()
	i(c.queued, queued)
	i(c.inflight, inflight)

	if s.opts.Store != nil {
		ss := s.opts.Store.Stats()
		i(c.storeSize, ss.FileSize)
		i(c.storeBatches, ss.Batches)
		emit(c.storeLastBatch, ss.LastBatch.Seconds())
		i(c.storeFailures, ss.Failures)
		i(c.storeWritten, ss.BytesWritten)
		i(c.storePending, int64(ss.Pending))
	}

	for _, l := range s.listenerList() {
		up := 0.0
		if l.Running {
			up = 1
		}
		emit(c.listenerUp, up, l.Name, l.Kind)
		i(c.listenerConnections, l.Connections, l.Name)
		i(c.listenerAccepted, l.Accepted, l.Name)
		i(c.listenerRejected, l.Rejected, l.Name)
	}

	i(c.traceDropped, s.traceDropped.Load())

	// The bridges are read anew at every scrape: a reload adds and removes
	// them, and their series come and go with them.
	for _, br := range s.bridgeList() {
		connected := 0.0
		if br.Connected {
			connected = 1
		}
		emit(c.bridgeConnected, connected, br.Name)
		i(c.bridgeQueued, int64(br.Queued), br.Name)
		i(c.bridgeMessages, br.ForwardedIn, br.Name, "in")
		i(c.bridgeMessages, br.ForwardedOut, br.Name, "out")
		i(c.bridgeDropped, br.Dropped, br.Name)
		i(c.bridgeReconnects, br.Reconnects, br.Name)
	}

	c.collectCluster(emit, i)
}

// memberStates are the label values of avocet_cluster_members: each is
// exposed, at zero when no member is in it, so that alerts see the change.
var memberStates = []cluster.MemberState{cluster.StateAlive, cluster.StateSuspect, cluster.StateDead, cluster.StateLeft}

// collectCluster emits the cluster's figures, read anew at every scrape;
// nothing on a single node. A peer's series come and go with its link.
func (c *collector) collectCluster(emit func(metric, float64, ...string), i func(metric, int64, ...string)) {
	st := c.s.clusterStatus()
	if st == nil {
		return
	}
	byState := map[cluster.MemberState]int64{}
	for _, m := range st.Members {
		byState[m.State]++
	}
	for _, state := range memberStates {
		i(c.clusterMembers, byState[state], state.String())
	}
	netsplit := 0.0
	if st.Netsplit {
		netsplit = 1
	}
	emit(c.clusterNetsplit, netsplit)

	seen := map[string]bool{}
	for _, l := range st.Links {
		if seen[l.Node] {
			continue // a second series of one peer would fail the scrape: keep the first
		}
		seen[l.Node] = true
		up := 0.0
		if l.Connected {
			up = 1
		}
		emit(c.linkUp, up, l.Node)
		i(c.linkQueued, int64(l.Queued), l.Node)
		i(c.linkUnacked, int64(l.Unacked), l.Node)
		i(c.linkSent, l.Sent, l.Node)
		i(c.linkAcked, l.Acked, l.Node)
		i(c.linkDropped, l.Dropped, l.Node)
		i(c.linkReconnects, l.Reconnects, l.Node)
	}

	i(c.clusterForwarded, st.Forwarded)
	i(c.clusterForwardDrops, st.ForwardDrops)
	i(c.clusterReceived, st.Received)
	i(c.clusterRetainApplied, st.RetainApplied)
	i(c.clusterSessionsMoved, st.SessionsMoved)
	i(c.clusterRelayed, st.Relayed)
	i(c.clusterRelays, int64(st.Relays))
}

// connackRefusal marks the reason codes a CONNACK refuses with (MQTT 5.0
// section 3.2.2.2): their series are exposed from the start, at zero, so
// that rate() sees the first refusal. Other codes appear once counted.
var connackRefusal = func() (m [256]bool) {
	for _, c := range []mqtt.ReasonCode{
		mqtt.UnspecifiedError, mqtt.MalformedPacket, mqtt.ProtocolError, mqtt.ImplementationSpecificError,
		mqtt.UnsupportedProtocolVersion, mqtt.ClientIdentifierNotValid, mqtt.BadUserNameOrPassword,
		mqtt.NotAuthorized, mqtt.ServerUnavailable, mqtt.ServerBusy, mqtt.Banned, mqtt.BadAuthenticationMethod,
		mqtt.TopicNameInvalid, mqtt.PacketTooLarge, mqtt.QuotaExceeded, mqtt.PayloadFormatInvalid,
		mqtt.RetainNotSupported, mqtt.QoSNotSupported, mqtt.UseAnotherServer, mqtt.ServerMoved,
		mqtt.ConnectionRateExceeded,
	} {
		m[c] = true
	}
	return m
}()

// reasonLabels holds the label of every reason code: its name in snake case,
// as "bad_user_name_or_password".
var reasonLabels = func() (l [256]string) {
	for c := range l {
		l[c] = snake(mqtt.ReasonCode(c).String())
	}
	return l
}()

// snake lower-cases s and joins its words with underscores.
func snake(s string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
			sep = false
			continue
		}
		sep = true
	}
	return b.String()
}
