// Package cluster makes Avocet nodes members of one cluster and replicates,
// between them, which node has subscribers for which topic filters.
//
// Membership, failure detection and gossip are github.com/hashicorp/memberlist
// (SWIM with push/pull anti-entropy); this package writes no protocol of its own
// beyond the payloads it hands memberlist. A Node is one member. Its metadata
// carries the address where it accepts node-to-node links, so peers learn it
// from membership. With a secret key, gossip is encrypted and authenticated, and
// a node with another key cannot join.
//
// The routing table: every node owns the set of topic filters that have at least
// one local subscriber (the broker calls AddFilter and RemoveFilter; shared
// subscriptions keep their $share/{ShareName}/{filter} form). Each change is
// numbered per origin and incarnation and broadcast through memberlist's gossip,
// and sent over the links too, which are faster (a Cluster also sends its whole
// set when a link comes up, and holds a SUBACK until the reachable nodes
// confirm they route by it);
// peers apply a node's changes in order, keep early ones until the gap closes,
// and otherwise wait for the full table that push/pull exchanges, which also
// brings a joining or healing node up to date. A node that leaves loses its
// routes at once everywhere; one detected dead loses them after the dead-node
// grace. Options.OnRoute hears every change, in order: the Cluster makes it a
// subscription of that node in the broker's tree, which is the only structure
// messages are routed by; NodesFor answers, for operators and tests, which other
// nodes have a matching filter for a topic. The table is eventually consistent:
// during a partition each side keeps the routes it had.
//
// Wire format: every payload begins with a version byte; sizes and counts are
// bounded, and a malformed payload from a peer is logged and dropped.
//
// Node-to-node links (link.go): a LinkServer accepts links from peers, checks
// an HMAC of a nonce keyed with the cluster secret, and hands each item to a
// handler; Links keeps one outgoing link per peer with a bounded, counted
// queue, batched length-prefixed frames, pings when idle (a peer silent for 5 s
// is taken for unreachable), and reconnection with backoff. Items
// are numbered per sender and peer and acknowledged once the handler is done
// with them (for a message: once the sessions it went to have it durably);
// unacknowledged items are sent again after a reconnect and the receiver skips
// those it has done, so each is handled once and in order. With a store,
// durable items (QoS 1 and 2 messages, retained changes, sessions handed over)
// and what each receiver has done survive a restart of either node.
//
// Cluster (cluster.go and the files it names) puts it together for a broker:
// other nodes subscribe in the broker's tree as receivers, so a message
// published here goes once to each node with a match (for a shared subscription
// group, to the one node whose member was chosen); client identifiers are
// registered cluster-wide on CONNECT, ending the client's connection elsewhere
// and moving its session here, the old node relaying the session's messages
// until every node routes them to the new one (move.go); retained messages are
// replicated with last writer wins and exchanged in full when a link comes up;
// netsplit policies decide whether clients may connect and publish while a
// member is unreachable; and members taken for dead are tried again, so that a
// healed netsplit merges.
package cluster
