package broker

import (
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/retain"
	"github.com/avocet-mqtt/avocet/session"
)

// SharedStrategy says how a shared subscription group picks the member that gets a message.
type SharedStrategy int

// The strategies.
const (
	RoundRobin SharedStrategy = iota + 1 // members in turn
	Random                               // a member at random
	Sticky                               // the same member while it stays connected
)

// String returns the strategy's name as the config file writes it.
func (s SharedStrategy) String() string {
	switch s {
	case RoundRobin:
		return "round_robin"
	case Random:
		return "random"
	case Sticky:
		return "sticky"
	}
	return "SharedStrategy(?)"
}

// ConnectInfo is what an Authenticator learns of a connecting client.
type ConnectInfo struct {
	ClientID   string
	Username   string
	Password   []byte // nil when the CONNECT carried none; never log it
	HasUser    bool
	Version    mqtt.Version
	Listener   string
	RemoteAddr net.Addr
	TLS        *tls.ConnectionState // nil on plain listeners
}

// Authenticator decides whether a client may connect. It is called from the
// connection's reader goroutine, concurrently for different clients, and may
// block (a webhook, say) within the CONNECT timeout. It returns mqtt.Success or
// the CONNACK reason code of the refusal (BadUserNameOrPassword, NotAuthorized,
// Banned, ...); for 3.x clients the code is sent as the nearest return code.
// It may also return the username to use from now on (a certificate's identity,
// say); an empty string keeps the CONNECT's.
type Authenticator interface {
	Authenticate(info *ConnectInfo) (code mqtt.ReasonCode, username string)
}

// Authorizer decides what a connected client may do with a topic. It is called on
// the hot path of every PUBLISH and SUBSCRIBE, concurrently, and must be fast.
type Authorizer interface {
	// CanPublish reports whether the client may publish to topic.
	CanPublish(clientID, username, topic string) bool
	// CanSubscribe reports whether the client may subscribe to filter (for a
	// shared subscription, the filter without $share/{ShareName}/).
	CanSubscribe(clientID, username, filter string) bool
	// CanReceive reports whether the client may receive a message published to
	// topic through a subscription it was allowed (retained messages included).
	CanReceive(clientID, username, topic string) bool
}

// Options configure a Broker. Start from DefaultOptions and change what differs.
type Options struct {
	Logger   *slog.Logger
	Version  string // reported in $SYS/broker/version
	NodeName string

	MaxKeepAlive      uint16 // a client's keep alive is capped to this (5.0: Server Keep Alive)
	ServerKeepAlive   uint16 // when non-zero, replaces every client's keep alive
	MaxPacketSize     int    // inbound and announced Maximum Packet Size
	MaxInflight       int    // outbound QoS 1 and 2 window
	ReceiveMaximum    int    // inbound QoS 2 window announced to 5.0 clients
	MaxQueued         int    // per session; 0 = unlimited
	QueueDrop         session.DropPolicy
	MaxConnections    int // 0 = unlimited
	MaxTopicLevels    int // 0 = unlimited
	MaxSubscriptions  int // per client; 0 = unlimited
	MaxClientIDLength int
	ConnectTimeout    time.Duration
	MaxSessionExpiry  uint32 // seconds; 0 = no cap
	TopicAliasMaximum uint16 // inbound aliases a 5.0 client may use; 0 disables
	RetainAvailable   bool
	WildcardSubs      bool
	SharedSubs        bool
	SubscriptionIDs   bool
	SharedStrategy    SharedStrategy
	// SharedPreferLocal gives a shared subscription's messages to members on
	// this node before members on other nodes of a cluster.
	SharedPreferLocal  bool
	SysInterval        time.Duration // 0 disables $SYS
	AllowEmptyClientID bool
	AllowAnonymous     bool

	// MaxPublishRate and MaxPublishBytesRate limit what one client publishes per
	// second (0 = unlimited). A client over the limit is slowed: its reads pause
	// until it is back within the limit. One that stays over it for ThrottleLimit
	// (DefaultThrottleLimit when zero) is disconnected (5.0: reason 0x96, message
	// rate too high).
	MaxPublishRate      int
	MaxPublishBytesRate int64
	ThrottleLimit       time.Duration
	// MaxOutboundBytes caps the payload bytes all sessions hold in their queues
	// and inflight windows together (0 = unlimited); beyond it QueueDrop applies.
	MaxOutboundBytes int64

	// TLSState returns the TLS state of a connection handed to the broker, for
	// the Authenticator; nil: connections are taken as plain.
	TLSState func(net.Conn) (tls.ConnectionState, bool)

	Authenticator Authenticator // nil: AllowAnonymous decides
	Hooks         Hooks         // nil: none
	Authorizer    Authorizer    // nil: everything is allowed but publishing to $SYS
	Retained      *retain.Tree  // nil: an in-memory tree without limits
	// SessionStore keeps persistent sessions across restarts; nil: in memory only.
	// With a store, every acknowledgement of a QoS 1 or 2 message waits until what
	// the message changed is durable, as the store's fsync policy promises.
	SessionStore session.Store
}

// DefaultOptions returns the defaults of every option, as the config file documents them.
func DefaultOptions() Options {
	return Options{
		Version:            "dev",
		NodeName:           "avocet@127.0.0.1",
		MaxKeepAlive:       65535,
		MaxPacketSize:      mqtt.MaxPacketSize,
		MaxInflight:        100,
		ReceiveMaximum:     100,
		MaxQueued:          1000,
		QueueDrop:          session.DropOldest,
		MaxConnections:     100000,
		MaxTopicLevels:     128,
		MaxClientIDLength:  256,
		ConnectTimeout:     10 * time.Second,
		TopicAliasMaximum:  64,
		RetainAvailable:    true,
		WildcardSubs:       true,
		SharedSubs:         true,
		SubscriptionIDs:    true,
		SharedStrategy:     RoundRobin,
		SharedPreferLocal:  true,
		SysInterval:        10 * time.Second,
		AllowEmptyClientID: true,
		AllowAnonymous:     true,
	}
}
