package config

import (
	"log/slog"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Config is the whole configuration file. Each field is one TOML table or
// array of tables, named by its toml tag. The fields of features this
// version lacks (those unavailable.go lists) must keep their defaults; see
// the package documentation.
type Config struct {
	Node      Node       `toml:"node"`
	Log       Log        `toml:"log"`
	Store     Store      `toml:"store"`
	Listeners []Listener `toml:"listener"`
	Auth      Auth       `toml:"auth"`
	Admin     Admin      `toml:"admin"`
	MQTT      MQTT       `toml:"mqtt"`
	Bridges   []Bridge   `toml:"bridge"`
	Webhooks  []Webhook  `toml:"webhook"`
	Cluster   Cluster    `toml:"cluster"`
}

// Node is the [node] table.
type Node struct {
	// Name identifies this node in the cluster, in $SYS topics and in logs.
	// The default is the literal "avocet@127.0.0.1", not derived from the
	// host name, so that the defaults are the same on every machine; a
	// clustered node must set a name of its own.
	Name string `toml:"name"`
}

// Log is the [log] table.
type Log struct {
	Level  LogLevel  `toml:"level"`
	Format LogFormat `toml:"format"`
}

// Store is the [store] table: where and how BuntDB keeps sessions and retained messages.
type Store struct {
	Dir   string `toml:"dir"`
	Fsync Fsync  `toml:"fsync"`
	// ShrinkPercentage is BuntDB's AutoShrinkPercentage: the append-only file
	// is rewritten once it has grown by this percentage since the last rewrite.
	ShrinkPercentage int `toml:"shrink_percentage"`
	// ShrinkMinSize is BuntDB's AutoShrinkMinSize: no rewrite below this size.
	ShrinkMinSize ByteSize `toml:"shrink_min_size"`
}

// Listener is one [[listener]] entry.
type Listener struct {
	// Name appears in logs and metrics. Load fills an empty name with
	// kind://address, for example "tcp://0.0.0.0:1883".
	Name    string       `toml:"name"`
	Kind    ListenerKind `toml:"kind"`    // "tcp" when left out
	Address string       `toml:"address"` // host:port; port 0 picks a free port
	// Path is the HTTP path of a ws or wss listener; Load fills an empty
	// path of those kinds with "/mqtt". Other kinds must leave it empty.
	Path string `toml:"path"`

	// The TLS keys apply to tls and wss listeners only. The files are PEM;
	// the tls package loads them, so Load does not check that they exist.
	CertFile              string `toml:"cert_file"`
	KeyFile               string `toml:"key_file"`
	CAFile                string `toml:"ca_file"` // client certificates are verified against it
	RequireClientCert     bool   `toml:"require_client_cert"`
	UseIdentityAsUsername bool   `toml:"use_identity_as_username"`

	// MinTLSVersion is the oldest TLS version a tls or wss listener accepts: "1.2"
	// or "1.3"; empty means "1.2".
	MinTLSVersion string `toml:"min_tls_version"`
	// CipherSuites restricts the TLS 1.2 cipher suites, by their Go names
	// (crypto/tls.CipherSuites); empty keeps Go's secure defaults. TLS 1.3
	// suites are not configurable.
	CipherSuites []string `toml:"cipher_suites"`

	MaxConnections int  `toml:"max_connections"` // 0 = unlimited
	ConnectionRate int  `toml:"connection_rate"` // new connections per second; 0 = unlimited
	ProxyProtocol  bool `toml:"proxy_protocol"`  // expect a PROXY protocol v1/v2 header first
}

// Auth is the [auth] table.
type Auth struct {
	AllowAnonymous bool   `toml:"allow_anonymous"`
	PasswordFile   string `toml:"password_file"` // managed with `avocet passwd`; empty: none
	ACLFile        string `toml:"acl_file"`      // Mosquitto-style; empty: everything allowed
}

// Admin is the [admin] table: the HTTP API, /metrics and the status page.
type Admin struct {
	Address string `toml:"address"` // host:port; empty disables the admin server
	Token   string `toml:"token"`   // bearer token the API requires; empty: none. Secret.
}

// MQTT is the [mqtt] table: protocol limits and features. Counts are per
// broker unless the comment says otherwise.
type MQTT struct {
	MaxKeepalive    int `toml:"max_keepalive"`    // seconds; a client's keep alive is capped to it
	ServerKeepalive int `toml:"server_keepalive"` // seconds; 0 accepts the client's, else overrides it
	// MaxPacketSize is the largest packet accepted and, to 5.0 clients,
	// announced, fixed header included (as MQTT 5 Maximum Packet Size counts).
	MaxPacketSize int `toml:"max_packet_size"`
	// MaxInflight is the outbound window of unacknowledged QoS 1 and 2
	// messages per client: the window itself for 3.x clients, an upper bound
	// on the client's Receive Maximum for 5.0 clients.
	MaxInflight int `toml:"max_inflight"`
	// ReceiveMaximum is announced to 5.0 clients: how many inbound QoS 1 and
	// 2 PUBLISH packets may be unacknowledged at once.
	ReceiveMaximum    int       `toml:"receive_maximum"`
	MaxQueuedMessages int       `toml:"max_queued_messages"` // per offline or slow session; 0 = unlimited
	QueueDrop         QueueDrop `toml:"queue_drop"`          // which message a full queue drops
	MaxConnections    int       `toml:"max_connections"`     // all listeners together; 0 = unlimited
	MaxTopicLevels    int       `toml:"max_topic_levels"`    // 0 = unlimited
	MaxSubscriptions  int       `toml:"max_subscriptions"`   // per client; 0 = unlimited
	MaxClientIDLength int       `toml:"max_client_id_length"`
	ConnectTimeout    Duration  `toml:"connect_timeout"` // from accept to CONNECT
	MaxSessionExpiry  Duration  `toml:"max_session_expiry"`
	// TopicAliasMaximum is announced to 5.0 clients; 0 disables inbound topic aliases.
	TopicAliasMaximum          int           `toml:"topic_alias_maximum"`
	RetainAvailable            bool          `toml:"retain_available"`
	WildcardSubscriptions      bool          `toml:"wildcard_subscriptions"`
	SharedSubscriptions        bool          `toml:"shared_subscriptions"`
	SubscriptionIdentifiers    bool          `toml:"subscription_identifiers"`
	SharedSubscriptionStrategy ShareStrategy `toml:"shared_subscription_strategy"`
	MaxRetainedMessages        int           `toml:"max_retained_messages"` // 0 = unlimited
	MaxRetainedBytes           ByteSize      `toml:"max_retained_bytes"`    // payload bytes; 0 = unlimited
	SysInterval                Duration      `toml:"sys_interval"`          // 0 disables $SYS
	AllowEmptyClientID         bool          `toml:"allow_empty_client_id"`
	// MaxPublishRate and MaxPublishBytesRate limit what one client may publish per
	// second; a client over the limit is slowed (its reads pause), then
	// disconnected (5.0: reason 0x96). 0 = unlimited.
	MaxPublishRate      int      `toml:"max_publish_rate"`
	MaxPublishBytesRate ByteSize `toml:"max_publish_bytes_rate"`
	// MaxOutboundBytes caps the payload bytes held in all outbound queues
	// together; beyond it, queue_drop applies as if the queue were full. 0 = unlimited.
	MaxOutboundBytes ByteSize `toml:"max_outbound_bytes"`
	// SharedPreferLocal gives a shared subscription's messages to the group's
	// members on this node before those on other nodes of the cluster; false
	// spreads them over every node's members. A single node has only local
	// members, so it matters only in a cluster.
	SharedPreferLocal bool `toml:"shared_prefer_local"`
}

// Webhook is one [[webhook]] entry: an HTTP(S) endpoint called on a hook.
type Webhook struct {
	// Hook is one of auth_on_register, auth_on_subscribe, auth_on_publish,
	// on_register, on_subscribe, on_unsubscribe, on_deliver, on_client_offline,
	// on_client_gone, on_session_expired.
	Hook    string   `toml:"hook"`
	URL     string   `toml:"url"`     // http:// or https://
	Timeout Duration `toml:"timeout"` // per call
	// OnError is what an auth_* hook decides when the endpoint fails or times
	// out: "deny" or "allow". Other hooks only log failures.
	OnError string `toml:"on_error"`
}

// Bridge is one [[bridge]] entry: a connection to another broker.
type Bridge struct {
	Name string `toml:"name"` // required, unique
	// Addresses are URLs tried in turn (failover): tcp://, ssl://, tls://,
	// ws:// or wss://. The file may give one string or an array of strings.
	Addresses StringList `toml:"address"`
	// ClientID is the bridge's client identifier at the remote broker. Load
	// fills an empty one with "<node name>:<bridge name>", so that the nodes
	// of a cluster sharing one file do not take over each other's session.
	ClientID        string   `toml:"client_id"`
	CleanSession    bool     `toml:"clean_session"`
	Keepalive       Duration `toml:"keepalive"` // whole seconds; 0 disables
	Username        string   `toml:"username"`
	Password        string   `toml:"password"` // secret
	ProtocolVersion int      `toml:"protocol_version"`

	// TLS for ssl://, tls:// and wss:// addresses; empty files mean the
	// system roots and no client certificate.
	CAFile             string `toml:"ca_file"`
	CertFile           string `toml:"cert_file"`
	KeyFile            string `toml:"key_file"`
	ServerName         string `toml:"server_name"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`

	QueueSize     int      `toml:"queue_size"` // messages held while the remote is unreachable
	QueueOverflow Overflow `toml:"queue_overflow"`
	ReconnectMin  Duration `toml:"reconnect_min"` // first retry delay, doubled up to ReconnectMax
	ReconnectMax  Duration `toml:"reconnect_max"`

	Topics []BridgeTopic `toml:"topic"` // at least one
}

// BridgeTopic is one [[bridge.topic]] entry: which messages cross the bridge.
// A message published locally to LocalPrefix+t, with t matching Pattern, is
// published remotely to RemotePrefix+t (direction out), and the other way
// round for direction in.
type BridgeTopic struct {
	Pattern      string    `toml:"pattern"`   // a topic filter; required
	Direction    Direction `toml:"direction"` // "out" when left out
	QoS          int       `toml:"qos"`       // 0, 1 or 2; 0 when left out
	LocalPrefix  string    `toml:"local_prefix"`
	RemotePrefix string    `toml:"remote_prefix"`
	Retain       bool      `toml:"retain"` // keep the retain flag across the bridge
}

// Cluster is the [cluster] table: membership by gossip (hashicorp/memberlist)
// and the node-to-node links that carry messages, routes and sessions.
type Cluster struct {
	Enabled          bool     `toml:"enabled"`
	GossipAddress    string   `toml:"gossip_address"`    // memberlist, TCP and UDP
	LinkAddress      string   `toml:"link_address"`      // node-to-node message links, TCP
	AdvertiseAddress string   `toml:"advertise_address"` // host:port others reach gossip at; empty: gossip_address
	Seeds            []string `toml:"seeds"`             // gossip addresses of nodes to join
	// Secret encrypts and authenticates gossip. See SecretKey for its forms.
	Secret string `toml:"secret"`
	// NetsplitPublish and NetsplitRegister are VerneMQ's
	// allow_publish_during_netsplit and allow_register_during_netsplit: while
	// a member is unreachable, client publishes and CONNECTs are refused
	// unless they are set.
	NetsplitPublish  bool     `toml:"netsplit_publish"`
	NetsplitRegister bool     `toml:"netsplit_register"`
	DeadNodeGrace    Duration `toml:"dead_node_grace"` // before a dead node's routes are removed

	// LinkTLSCert and LinkTLSKey, PEM files, make the node-to-node links
	// TLS: each node presents this certificate, as server and as client, and
	// requires the peer's to be signed by LinkTLSCA (mutual authentication).
	// Both or neither; empty: plain TCP. The files are loaded by cmd/avocet,
	// so Load does not check that they exist.
	LinkTLSCert string `toml:"link_tls_cert"`
	LinkTLSKey  string `toml:"link_tls_key"`
	LinkTLSCA   string `toml:"link_tls_ca"` // PEM roots that peers' certificates are verified against
	// RegisterTimeout bounds how long a CONNECT waits for the other nodes to
	// end the client's connection and session there (takeover).
	RegisterTimeout Duration `toml:"register_timeout"`
	LinkQueue       int      `toml:"link_queue"` // messages queued per peer link before the oldest are dropped
	// TombstoneTTL is how long a cleared retained message is remembered, so
	// that a node that was away does not bring it back.
	TombstoneTTL Duration `toml:"tombstone_ttl"`
}

// LogLevel is [log] level.
type LogLevel string

// The log levels.
const (
	LevelDebug LogLevel = "debug"
	LevelInfo  LogLevel = "info"
	LevelWarn  LogLevel = "warn"
	LevelError LogLevel = "error"
)

// Slog returns the slog level; an unknown level is taken as info.
func (l LogLevel) Slog() slog.Level {
	switch l {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// LogFormat is [log] format.
type LogFormat string

// The log formats.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Fsync is [store] fsync: when BuntDB syncs its file to disk.
type Fsync string

// The fsync policies.
const (
	FsyncAlways   Fsync = "always"   // every commit; nothing acknowledged is lost
	FsyncEverySec Fsync = "everysec" // once a second; at most a second is at risk
	FsyncNever    Fsync = "never"    // when the operating system decides
)

// ListenerKind is [[listener]] kind.
type ListenerKind string

// The listener kinds.
const (
	KindTCP ListenerKind = "tcp"
	KindTLS ListenerKind = "tls"
	KindWS  ListenerKind = "ws"
	KindWSS ListenerKind = "wss"
)

// Secure reports whether the kind runs over TLS.
func (k ListenerKind) Secure() bool { return k == KindTLS || k == KindWSS }

// WebSocket reports whether the kind carries MQTT in WebSocket frames.
func (k ListenerKind) WebSocket() bool { return k == KindWS || k == KindWSS }

// QueueDrop is [mqtt] queue_drop: which message a full session queue drops.
type QueueDrop string

// The queue drop policies.
const (
	DropOldest QueueDrop = "oldest"
	DropNewest QueueDrop = "newest"
)

// ShareStrategy is [mqtt] shared_subscription_strategy.
type ShareStrategy string

// The shared subscription strategies.
const (
	ShareRoundRobin ShareStrategy = "round_robin"
	ShareRandom     ShareStrategy = "random"
	ShareSticky     ShareStrategy = "sticky"
)

// Overflow is [[bridge]] queue_overflow: which message a full bridge queue drops.
type Overflow string

// The bridge queue overflow policies.
const (
	OverflowDropOldest Overflow = "drop_oldest"
	OverflowDropNewest Overflow = "drop_newest"
)

// Direction is [[bridge.topic]] direction.
type Direction string

// The bridge directions.
const (
	DirectionIn   Direction = "in"   // remote to local
	DirectionOut  Direction = "out"  // local to remote
	DirectionBoth Direction = "both" // both ways
)

// Default returns a Config holding every default. Each call returns a new
// value that the caller may change.
func Default() *Config {
	c := defaults()
	c.fill()
	return c
}

// defaults is Default before the derived defaults are filled in: Parse and
// FromEnv start from it and fill them once the file and the environment
// have had their say, so that a listener's name follows an address the
// environment gives.
func defaults() *Config {
	return &Config{
		Node: Node{Name: "avocet@127.0.0.1"},
		Log:  Log{Level: LevelInfo, Format: FormatText},
		Store: Store{
			Dir:              "./data",
			Fsync:            FsyncEverySec,
			ShrinkPercentage: 100,
			ShrinkMinSize:    32 * MiB,
		},
		Listeners: []Listener{
			{Kind: KindTCP, Address: "0.0.0.0:1883"},
			{Kind: KindWS, Address: "0.0.0.0:8080", Path: "/mqtt"},
		},
		Auth:  Auth{AllowAnonymous: true},
		Admin: Admin{Address: "127.0.0.1:8888"},
		MQTT: MQTT{
			MaxKeepalive:               65535,
			MaxPacketSize:              mqtt.MaxRemainingLength,
			MaxInflight:                100,
			ReceiveMaximum:             100,
			MaxQueuedMessages:          1000,
			QueueDrop:                  DropOldest,
			MaxConnections:             100000,
			MaxTopicLevels:             128,
			MaxClientIDLength:          256,
			ConnectTimeout:             Duration(10 * time.Second),
			TopicAliasMaximum:          64,
			RetainAvailable:            true,
			WildcardSubscriptions:      true,
			SharedSubscriptions:        true,
			SubscriptionIdentifiers:    true,
			SharedSubscriptionStrategy: ShareRoundRobin,
			SysInterval:                Duration(10 * time.Second),
			AllowEmptyClientID:         true,
			MaxOutboundBytes:           GiB,
			SharedPreferLocal:          true,
		},
		Cluster: Cluster{
			GossipAddress:   "127.0.0.1:7946",
			LinkAddress:     "127.0.0.1:7947",
			Seeds:           []string{},
			DeadNodeGrace:   Duration(30 * time.Second),
			RegisterTimeout: Duration(3 * time.Second),
			LinkQueue:       10000,
			TombstoneTTL:    Duration(24 * time.Hour),
		},
	}
}

// defaultBridge is the start of every [[bridge]] entry.
func defaultBridge() Bridge {
	return Bridge{
		CleanSession:    true,
		Keepalive:       Duration(60 * time.Second),
		ProtocolVersion: 4,
		QueueSize:       10000,
		QueueOverflow:   OverflowDropOldest,
		ReconnectMin:    Duration(time.Second),
		ReconnectMax:    Duration(60 * time.Second),
	}
}

// defaultBridgeTopic is the start of every [[bridge.topic]] entry.
func defaultBridgeTopic() BridgeTopic {
	return BridgeTopic{Direction: DirectionOut, Retain: true}
}

// defaultWebhook is the start of every [[webhook]] entry.
func defaultWebhook() Webhook {
	return Webhook{Timeout: Duration(5 * time.Second), OnError: "deny"}
}

// defaultListener is the start of every [[listener]] entry. A listener
// without a kind is a tcp listener.
func defaultListener() Listener {
	return Listener{Kind: KindTCP}
}

// fill sets the defaults derived from other values: listener names, ws and
// wss paths, bridge client identifiers.
func (c *Config) fill() {
	for i := range c.Listeners {
		l := &c.Listeners[i]
		l.Name = l.effectiveName()
		l.Path = l.effectivePath()
	}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		b.ClientID = b.effectiveClientID(c.Node.Name)
	}
}

func (l *Listener) effectiveName() string {
	if l.Name != "" {
		return l.Name
	}
	return string(l.Kind) + "://" + l.Address
}

func (l *Listener) effectivePath() string {
	if l.Path == "" && l.Kind.WebSocket() {
		return "/mqtt"
	}
	return l.Path
}

func (b *Bridge) effectiveClientID(node string) string {
	if b.ClientID != "" {
		return b.ClientID
	}
	return node + ":" + b.Name
}
