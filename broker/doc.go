// Package broker is the hub of Avocet: it is to accept connections from listeners,
// run each client's protocol loop and route PUBLISH to sessions and to the cluster.
// Today it holds the subscription tree, [SubTree].
//
// The tree stores topic filters per subscriber with their subscription options
// (MQTT 5.0 section 3.8.3.1) and answers, for a topic name, which subscribers a
// message goes to: each subscriber once, its overlapping subscriptions merged
// (section 3.3.4), and every matching shared subscription group with its members
// (section 4.8.2). It applies the matching rules of section 4.7, including
// [MQTT-4.7.2-1] for topic names that begin with '$'. A subscriber is only a name:
// a client id today, later also a bridge or a cluster node, never a connection.
//
// The tree does not check ACLs, keep sessions or retained messages, or choose the
// member of a shared group that gets a message; the rest of the broker does.
package broker
