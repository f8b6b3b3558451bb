// Package auth is Avocet's authentication and authorization: the password
// file that decides who may connect, the ACL file that decides what a client
// may publish, subscribe to and receive, `avocet passwd`, which manages the
// password file, and webhooks, which let HTTP endpoints decide and observe.
//
// It is a leaf: it does not import the broker. The command adapts Passwords
// to broker.Authenticator, hands an *ACL to the broker as its Authorizer (or
// nil when no ACL file is configured, which allows everything), and adapts
// Hooks to broker.Hooks.
//
// # Password file
//
// One user a line, username:hash; lines whose first non-blank character is
// '#' are comments, and blank lines are skipped. A username is not empty, is
// valid UTF-8, and holds no ':' and no control character (so no newline); it
// does not begin or end with white space, nor begin with '#'.
//
// New hashes are argon2id (RFC 9106) in the PHC string format,
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with a 16-byte random salt, a 32-byte hash, both in unpadded standard
// base64, and the parameters OWASP recommends: 19 MiB of memory, 2 passes, 1
// lane. They are at that floor, not above it, because the broker pays them on
// every CONNECT that carries a password, reconnect storms included.
// Verification reads m, t and p from each hash, so the parameters can change
// without invalidating the file. bcrypt hashes ($2a$, $2b$, $2y$), as
// htpasswd -B and many other tools write them, are verified too, so their
// files can be reused (bcrypt reads only the first 72 bytes of a password);
// new passwords are never hashed with bcrypt. Mosquitto's
// own PBKDF2 format ($6$, $7$) is not read.
//
// Passwords.Check compares in constant time; for an unknown user it verifies a
// dummy hash with the cost most of the file's hashes have, so its time does not
// tell which users exist. At most GOMAXPROCS hashes are computed at once, which
// bounds the memory a burst of CONNECTs takes to GOMAXPROCS times m (19 MiB
// for new hashes).
//
// # ACL file
//
// Mosquitto's acl_file syntax:
//
//	# comment
//	topic read $SYS/#                    applies to anonymous clients (no user line yet)
//	user alice
//	topic readwrite home/alice/#         applies to alice
//	topic deny home/alice/secret
//	pattern write devices/%c/status      applies to every client
//	pattern read users/%u/#
//
// topic and pattern take an access, read, write, readwrite or deny
// (readwrite when left out), then a topic filter that runs to the end of the
// line and may hold + and #. topic lines before any user line apply to
// anonymous clients (those with no username); after `user NAME` they apply
// to that user. pattern lines apply to every client wherever they stand, with
// %c replaced by the client id and %u by the username; a pattern with %u does
// not apply to clients without a username, nor one with %c to an empty client
// id. A client id or username that holds '+' or '#', or that begins with '$'
// where it begins a pattern's filter, could widen the pattern: such a pattern
// grants that client nothing, and a deny pattern refuses it everything.
//
// A request is allowed when a rule that applies grants it and no deny rule
// that applies matches it: deny wins. Publishing needs write on the topic;
// receiving a message (retained ones included) needs read on its topic.
// Subscribing to a filter F needs a read rule whose filter covers F, that is
// matches every topic F matches (a/# covers a/b/+; a/+ covers a/b but not
// a/#), and is refused when a deny rule's filter covers F; a deny rule that
// only overlaps F leaves the subscription to CanReceive, which withholds the
// messages the rule denies. Shared subscriptions are checked on their filter
// without $share/{group}/. Filters that begin with a wildcard do not match
// topics that begin with '$' [MQTT-4.7.2-1], so reading $SYS takes a rule such
// as `topic read $SYS/#`.
//
// Checks take no lock and do not allocate: rules are compiled per user and per
// operation when the file is read, and patterns are matched level by level,
// each placeholder compared in place with the client id or username, without
// building the substituted filter.
//
// # Webhooks
//
// Hooks is the interface through which code outside the broker's own rules
// decides on CONNECT, PUBLISH and SUBSCRIBE (AuthOnRegister, AuthOnPublish,
// AuthOnSubscribe: allow, possibly with changes, deny with a reason code, or
// next to leave the decision to the built-in rules) and hears of what
// clients do (OnRegister, OnSubscribe, OnUnsubscribe, OnDeliver,
// OnClientOffline, OnClientGone, OnSessionExpired). In-process
// implementations embed NopHooks.
//
// Webhooks implements Hooks over HTTP(S) in the shape of VerneMQ's
// vmq_webhooks, so that endpoints written for VerneMQ work unchanged: a POST
// per call with the header vernemq-hook naming the hook and a JSON body such
// as
//
//	{"peer_addr":"192.0.2.1","peer_port":50123,"username":"u","password":"p","mountpoint":"","client_id":"c"}
//
// answered by {"result":"ok"}, {"result":"next"}, {"result":{"error":"not_allowed"}}
// or {"result":"ok","modifiers":{...}} (auth_on_subscribe: "topics" with qos
// 128 for a refused filter). Each endpoint has a timeout and a policy for
// failures (allow or deny); an ok answer with "cache-control: max-age=N" is
// cached for N seconds; on_* calls go through a bounded queue and a pool of
// workers, never holding up the broker, and are dropped and counted when the
// queue is full. The Webhooks type documents every body and answer.
//
// The command chains auth_on_register after the password file: a client the
// password file (or a missing client certificate identity) refuses stays
// refused; for the others the endpoint decides, and next leaves the decision
// to the password file and allow_anonymous. auth_on_publish is asked once
// the ACL has allowed the topic, and a topic it rewrites is not checked
// again; auth_on_subscribe is asked first, and the ACL then checks the
// filters as the hook left them.
//
// # Reloading
//
// Both files are read again by Reload, which the command calls on SIGHUP, and
// by Watch, which polls a file's identity, size and modification time and
// reloads it once they have changed and then stayed the same for one interval.
// A reload that fails keeps what was loaded before and returns the error,
// whose message names the file and line. Files are best replaced atomically
// (write a new file, rename it over the old), as Passwords.Save does.
package auth
