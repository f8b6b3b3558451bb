// Package retain keeps the retained messages of a broker: for every topic name the
// last message published to it with the RETAIN flag set, so that a new
// subscription can be sent the retained messages whose topic names match its
// filter (MQTT 5.0 section 3.3.1.3, MQTT 3.1.1 section 3.3.1.3).
//
// A [Tree] holds the messages in memory, one level of the topic name per node, so
// that a topic filter is matched by walking levels: an exact filter is a lookup,
// '+' and '#' walk the children of the levels they stand for. Matching follows
// section 4.7, including [MQTT-4.7.2-1]: filters that begin with a wildcard do not
// match topic names that begin with '$'. A message with a Message Expiry Interval
// is not matched once it has expired and is removed by [Tree.Sweep]. [Options]
// bound how many messages, and how many bytes, the tree keeps.
//
// Persistence plugs in through the [Store] interface, which the tree keeps in step
// with every change and reads once in [New]. Package store implements it on
// BuntDB; [MemStore] is an in-memory twin for tests.
//
// The package does not decide whether a client may publish or subscribe, does not
// set the RETAIN flag or the remaining Message Expiry Interval of the PUBLISH packets
// that carry retained messages to subscribers, and does not apply Retain Handling;
// the broker does. It does not match shared subscriptions, to which retained
// messages are not sent.
package retain
