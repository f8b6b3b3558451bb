// Package session holds the state of one MQTT session that outlives a network
// connection (MQTT 5.0 section 4.1): its outbound queue of messages waiting to be
// sent, the QoS 1 and QoS 2 messages sent and not yet acknowledged with their
// packet identifiers, the QoS 2 packet identifiers received and awaiting PUBREL,
// and the session expiry interval.
//
// It is not the connection: the broker runs the protocol, decides what to send and
// when, and calls into a Session under the rules each method states. A Session
// knows nothing of sockets, of the subscription tree or of other sessions.
package session
