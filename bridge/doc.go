// Package bridge connects this broker to other MQTT brokers, as Mosquitto's
// and VerneMQ's bridges do, with github.com/eclipse/paho.mqtt.golang as the
// client. One Bridge is one [[bridge]] table of the configuration.
//
// Outbound (direction "out" or "both"): the bridge is a broker.Receiver named
// "bridge:<name>" subscribed, with No Local, to local_prefix+pattern. Each
// message it receives has local_prefix replaced by remote_prefix and goes into a
// bounded queue, kept in memory and in a session.Store (BuntDB) under
// "b/<name>\x00<sequence>", and one sender goroutine publishes the queue to the
// remote broker in order, one message at a time, deleting each stored entry
// once the remote has acknowledged it (PUBACK or PUBCOMP; QoS 0 once written).
// While the remote is unreachable the queue holds the messages; after a local
// restart New loads it from the store. A full queue drops its oldest or the
// new message, as queue_overflow says, and counts it.
//
// Inbound (direction "in" or "both"): on every connection the bridge
// subscribes to remote_prefix+pattern at the remote broker and publishes what
// arrives locally with remote_prefix replaced by local_prefix, as a client
// whose client identifier and username are both "bridge:<name>" would: the
// broker's Authorizer, when there is one, must allow that client to publish to
// the local topic. The RETAIN flag crosses the bridge only when the rule's
// retain is set.
//
// Loops: inbound messages carry Origin "bridge:<name>", so the No Local
// outbound subscriptions never send them back. MQTT 3.1.1 has no No Local for
// the remote subscriptions, so a message sent out on a topic that an inbound
// rule also covers comes back from the remote broker; the bridge remembers
// what it sent (topic and payload, for 30 seconds) and drops such an echo.
// A remote message identical in topic and payload to one sent out within that
// time is dropped as an echo too.
//
// Connections are made with exponential backoff and jitter between
// reconnect_min and reconnect_max, trying the addresses in order (failover),
// with one log line per attempt. paho.mqtt.golang speaks MQTT 3.1 and 3.1.1
// only: protocol_version 5 connects with 3.1.1 and logs a warning.
//
// Delivery is at least once: a message whose acknowledgement was lost with the
// connection is sent again on the next one.
package bridge
