package broker

import (
	"net"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// ClientInfo identifies a connected client to Hooks.
type ClientInfo struct {
	ClientID   string
	Username   string
	Listener   string
	RemoteAddr net.Addr
	Version    mqtt.Version
}

// PublishRequest is a PUBLISH that AuthOnPublish may allow, refuse or change.
// Payload aliases the connection's read buffer: a hook that keeps it copies it.
type PublishRequest struct {
	Topic   string
	QoS     mqtt.QoS
	Retain  bool
	Payload []byte
}

// SubscriptionRequest is one topic filter of a SUBSCRIBE that AuthOnSubscribe may
// allow, refuse or change.
type SubscriptionRequest struct {
	Filter string
	QoS    mqtt.QoS
}

// Hooks observe what clients do and may steer it, in the spirit of VerneMQ's
// plugin hooks; webhooks implement them in package auth. Every method is called
// from the client's connection goroutines, concurrently for different clients,
// after the password file and the ACL have allowed the action. The auth methods
// may block (an HTTP call, say) and hold up that client only; the On methods are
// notifications and must not block: an implementation that calls out queues.
type Hooks interface {
	// AuthOnPublish decides on a PUBLISH: mqtt.Success to let it through, with
	// req possibly changed (topic, QoS, retain flag, payload), or a refusal code
	// (mqtt.NotAuthorized). A changed topic must be a valid topic name.
	AuthOnPublish(c *ClientInfo, req *PublishRequest) mqtt.ReasonCode
	// AuthOnSubscribe decides on the filters of a SUBSCRIBE: codes holds
	// mqtt.Success for each on entry, and the hook sets a refusal code
	// (mqtt.NotAuthorized) for those it refuses; it may change a request's Filter
	// or lower its QoS.
	AuthOnSubscribe(c *ClientInfo, reqs []SubscriptionRequest, codes []mqtt.ReasonCode)
	// OnRegister follows a successful CONNECT.
	OnRegister(c *ClientInfo)
	// OnSubscribe follows a SUBACK with the subscriptions it granted.
	OnSubscribe(c *ClientInfo, subs []SubscriptionRequest)
	// OnUnsubscribe follows an UNSUBACK.
	OnUnsubscribe(c *ClientInfo, filters []string)
	// OnDeliver is called for each message sent to the client. payload is shared
	// and read-only.
	OnDeliver(c *ClientInfo, topic string, payload []byte)
	// OnClientOffline: the client disconnected and its session stays.
	OnClientOffline(c *ClientInfo)
	// OnClientGone: the client disconnected and its session ended with it.
	OnClientGone(c *ClientInfo)
	// OnSessionExpired: an offline session reached its expiry and was removed.
	OnSessionExpired(clientID string)
}

// info returns the connection's ClientInfo, made once.
func (c *conn) info() *ClientInfo {
	if c.clientInfo == nil {
		c.clientInfo = &ClientInfo{ClientID: c.clientID, Username: c.username, Listener: c.listener,
			RemoteAddr: c.nc.RemoteAddr(), Version: c.version}
	}
	return c.clientInfo
}
