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
// numbered per origin and incarnation and broadcast through memberlist's gossip;
// peers apply a node's changes in order, keep early ones until the gap closes,
// and otherwise wait for the full table that push/pull exchanges, which also
// brings a joining or healing node up to date. A node that leaves loses its
// routes at once everywhere; one detected dead loses them after the dead-node
// grace. NodesFor answers which other nodes have a matching filter for a topic.
// The table is eventually consistent: during a partition each side keeps the
// routes it had.
//
// Wire format: every payload begins with a version byte; sizes and counts are
// bounded, and a malformed payload from a peer is logged and dropped.
//
// Node-to-node links (link.go): a LinkServer accepts links from peers, checks
// an HMAC of a nonce keyed with the cluster secret, and hands each message to a
// handler; Links keeps one outgoing link per peer with a bounded, counted queue,
// batched length-prefixed frames, and reconnection with backoff that keeps
// queued messages in order. Delivery over a link is at most once for now:
// exactly once across nodes comes with acknowledgements later. The links are
// not yet wired into the broker, and Node does not listen on its link address.
//
// Not here yet: wiring the links to the routing table and the broker,
// cluster-wide shared subscription groups, client id registration and session
// takeover across nodes, replication of retained messages, netsplit policies,
// and wiring into the configuration and avocet ctl.
package cluster
