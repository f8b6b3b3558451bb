// Package admin is Avocet's HTTP admin server: the JSON admin API under
// /api/v1, the Prometheus exposition at /metrics, the live status page at /
// and a health check at /healthz, all on one listener (127.0.0.1:8888 by
// default).
//
// Every figure it shows is read from the broker's own counters (broker.Stats,
// the subscription tree, the retained tree, the store's Stats) at the moment
// of the request or scrape, the same counters the broker's $SYS topics
// publish: there is one source of counters and the admin server keeps none of
// its own, apart from the trace events it had to drop.
//
// The admin API lists, shows, disconnects and deletes sessions, lists
// subscriptions and retained messages (and deletes these), stops and starts
// listeners, prints the effective configuration with its secrets masked,
// starts a drain, streams a live trace of one client's packets as
// newline-delimited JSON, and on a node of a cluster shows the members and
// the links to the other nodes, joins more members and leaves the cluster. docs/admin-api.md is its reference; a test keeps the
// reference and the routes in step.
//
// The server refuses to expose an open API to the network: bound to an address
// other than loopback it requires a token (Authorization: Bearer, or basic
// auth with the token as password), and New fails when none is configured.
//
// The package does not reload configuration, stop listeners, drain the
// broker or run the cluster itself: it calls the Listeners, Drainer and
// cluster funcs it is given, which the avocet command implements. Nor is it the command-line client; `avocet ctl`
// speaks to this API.
package admin
