package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	gohash "hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Hook names a point at which Hooks are called; its String is the name a
// [[webhook]] entry gives and the value of the vernemq-hook request header.
type Hook int

// The hooks.
const (
	HookAuthOnRegister   Hook = iota + 1 // auth_on_register: may a client connect
	HookAuthOnSubscribe                  // auth_on_subscribe: may it subscribe to these filters
	HookAuthOnPublish                    // auth_on_publish: may it publish this message
	HookOnRegister                       // on_register: a client connected
	HookOnSubscribe                      // on_subscribe: subscriptions were granted
	HookOnUnsubscribe                    // on_unsubscribe: a client unsubscribed
	HookOnDeliver                        // on_deliver: a message was sent to a client
	HookOnClientOffline                  // on_client_offline: a client left, its session stays
	HookOnClientGone                     // on_client_gone: a client left with its session
	HookOnSessionExpired                 // on_session_expired: an offline session expired
	numHooks
)

var hookNames = [numHooks]string{"", "auth_on_register", "auth_on_subscribe", "auth_on_publish", "on_register",
	"on_subscribe", "on_unsubscribe", "on_deliver", "on_client_offline", "on_client_gone", "on_session_expired"}

// String returns the hook's name, as "auth_on_register".
func (h Hook) String() string {
	if h > 0 && h < numHooks {
		return hookNames[h]
	}
	return "Hook(" + strconv.Itoa(int(h)) + ")"
}

// IsAuth reports whether the hook decides (auth_*) rather than notifies (on_*).
func (h Hook) IsAuth() bool {
	return h == HookAuthOnRegister || h == HookAuthOnSubscribe || h == HookAuthOnPublish
}

// ParseHook returns the hook of a name such as "auth_on_publish".
func ParseHook(name string) (Hook, error) {
	for h := HookAuthOnRegister; h < numHooks; h++ {
		if hookNames[h] == name {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown hook %q", name)
}

// Decision is what an auth hook decided.
type Decision int

// The decisions.
const (
	Next  Decision = iota + 1 // no opinion: the broker's own decision stands
	Allow                     // allowed, with the request possibly changed
	Deny                      // refused with Result.Code
)

// String returns "next", "allow" or "deny".
func (d Decision) String() string {
	switch d {
	case Next:
		return "next"
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Result is the answer of an auth hook.
type Result struct {
	Decision Decision
	// Code is the reason code of a Deny: a CONNACK code for AuthOnRegister, a
	// PUBACK code for AuthOnPublish, a SUBACK code for AuthOnSubscribe. Zero
	// (or any code below 0x80) means mqtt.NotAuthorized.
	Code mqtt.ReasonCode
}

// Client identifies a connected client to Hooks.
type Client struct {
	ClientID   string
	Username   string // empty when the client gave none
	Listener   string
	RemoteAddr net.Addr // nil when unknown
	Version    mqtt.Version
}

// RegisterRequest is a CONNECT that AuthOnRegister decides on. Username is the
// name the client will be known by: the CONNECT's, or a certificate's identity
// on listeners that take it as the username.
type RegisterRequest struct {
	ClientID   string
	Username   string // on Allow, a hook may change it
	HasUser    bool   // the CONNECT carried a username, or a certificate gave one
	Password   []byte // nil when the CONNECT carried none; never log it
	Listener   string
	RemoteAddr net.Addr // nil when unknown
	Version    mqtt.Version
}

// PublishRequest is a PUBLISH that AuthOnPublish decides on. On Allow, a hook
// may change every field; a changed Topic must be a valid topic name, and QoS
// can only be lowered. Payload is the caller's, shared and read-only: a hook
// replaces it rather than writing into it, and copies it to keep it.
type PublishRequest struct {
	Topic   string
	QoS     mqtt.QoS
	Retain  bool
	Payload []byte
}

// SubscriptionRequest is one topic filter of a SUBSCRIBE. In AuthOnSubscribe a
// hook that allows may change Filter (to a valid filter) or lower QoS, and
// refuses this filter alone by setting Code to a SUBACK failure code; in
// OnSubscribe, Code is unused.
type SubscriptionRequest struct {
	Filter string
	QoS    mqtt.QoS
	Code   mqtt.ReasonCode
}

// Hooks observe what clients do and may steer it, in the spirit of VerneMQ's
// plugin hooks. Webhooks implements it with HTTP calls; an in-process
// implementation can embed NopHooks and override what it needs.
//
// The command adapts Hooks to the broker. Every method is called from the
// client's connection goroutines, concurrently for different clients. The
// auth methods are called after the password file has accepted the client,
// and for PUBLISH after the ACL has; they may block (an HTTP call, say) and
// hold up that one client only. The On methods are notifications and must not
// block: an implementation that calls out queues the work. Slices and
// payloads passed in belong to the caller and are only valid during the
// call; an implementation that keeps them copies them.
type Hooks interface {
	// AuthOnRegister decides on a CONNECT. Next leaves the decision to the
	// password file and allow_anonymous.
	AuthOnRegister(r *RegisterRequest) Result
	// AuthOnPublish decides on a PUBLISH. Next lets it through unchanged.
	AuthOnPublish(c *Client, p *PublishRequest) Result
	// AuthOnSubscribe decides on the filters of one SUBSCRIBE: Deny refuses
	// them all, Allow applies the per-filter changes and refusals, Next lets
	// them through unchanged.
	AuthOnSubscribe(c *Client, subs []SubscriptionRequest) Result
	// OnRegister follows a successful CONNECT.
	OnRegister(c *Client)
	// OnSubscribe follows a SUBACK with the subscriptions it granted.
	OnSubscribe(c *Client, subs []SubscriptionRequest)
	// OnUnsubscribe follows an UNSUBACK.
	OnUnsubscribe(c *Client, filters []string)
	// OnDeliver follows each message sent to a client. payload is shared and
	// read-only, and stays valid after the call.
	OnDeliver(c *Client, topic string, payload []byte)
	// OnClientOffline: the client disconnected and its session stays.
	OnClientOffline(c *Client)
	// OnClientGone: the client disconnected and its session ended with it.
	OnClientGone(c *Client)
	// OnSessionExpired: an offline session reached its expiry and was removed.
	OnSessionExpired(clientID string)
}

// NopHooks is a Hooks that has no opinion and ignores every event; embed it
// to implement only some hooks.
type NopHooks struct{}

// AuthOnRegister returns Next.
func (NopHooks) AuthOnRegister(*RegisterRequest) Result { return Result{Decision: Next} }

// AuthOnPublish returns Next.
func (NopHooks) AuthOnPublish(*Client, *PublishRequest) Result { return Result{Decision: Next} }

// AuthOnSubscribe returns Next.
func (NopHooks) AuthOnSubscribe(*Client, []SubscriptionRequest) Result {
	return Result{Decision: Next}
}

// OnRegister does nothing.
func (NopHooks) OnRegister(*Client) {}

// OnSubscribe does nothing.
func (NopHooks) OnSubscribe(*Client, []SubscriptionRequest) {}

// OnUnsubscribe does nothing.
func (NopHooks) OnUnsubscribe(*Client, []string) {}

// OnDeliver does nothing.
func (NopHooks) OnDeliver(*Client, string, []byte) {}

// OnClientOffline does nothing.
func (NopHooks) OnClientOffline(*Client) {}

// OnClientGone does nothing.
func (NopHooks) OnClientGone(*Client) {}

// OnSessionExpired does nothing.
func (NopHooks) OnSessionExpired(string) {}

// Endpoint is one webhook: the URL called on a hook.
type Endpoint struct {
	Hook    Hook
	URL     string        // http:// or https://
	Timeout time.Duration // per call, response body included; 0: DefaultWebhookTimeout
	// AllowOnError makes an auth hook allow when the endpoint fails (no
	// answer in time, a status other than 200, a body that is not a valid
	// answer); otherwise it denies. Notification hooks only count and log
	// failures.
	AllowOnError bool
}

// WebhookOptions configure Webhooks; zero values take the defaults.
type WebhookOptions struct {
	Endpoints []Endpoint
	// HTTPClient makes the calls; nil: a client of its own with the system's
	// root certificates, up to 100 idle connections per host, and no
	// redirects followed.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Workers    int // goroutines that send notifications; 0: DefaultWebhookWorkers
	QueueSize  int // notifications waiting to be sent; 0: DefaultWebhookQueue
	CacheSize  int // cached auth answers; 0: DefaultWebhookCache
}

// Defaults of WebhookOptions and Endpoint.
const (
	DefaultWebhookTimeout = 5 * time.Second
	DefaultWebhookWorkers = 16
	DefaultWebhookQueue   = 10000
	DefaultWebhookCache   = 10000
)

const (
	maxResponseBytes = 4 << 20          // larger answers are failures
	errorLogInterval = 10 * time.Second // per endpoint, and for dropped notifications
)

// WebhookStats counts what Webhooks did for one hook.
type WebhookStats struct {
	Requests  int64 // HTTP calls made
	Failures  int64 // calls that failed: transport error, timeout, status not 200, invalid answer
	CacheHits int64 // auth answers taken from the cache instead of a call
	Dropped   int64 // notifications dropped because the queue was full or closed
}

type hookCounters struct {
	requests, failures, cacheHits, dropped atomic.Int64
}

// Webhooks implements Hooks by POSTing JSON to HTTP(S) endpoints, in the shape
// VerneMQ's vmq_webhooks plugin uses, so that endpoints written for it work
// unchanged. It is safe for concurrent use.
//
// # Requests
//
// Every call is a POST with the headers "Content-Type: application/json" and
// "vernemq-hook: NAME" (the hook's name). The body is a JSON object; the
// mountpoint is always "", a username the client did not give is null, and
// payloads are standard base64 with padding. peer_addr and peer_port are null
// when the address is unknown.
//
//	auth_on_register   {"peer_addr":"192.0.2.1","peer_port":50123,"username":"u","password":"p",
//	                    "mountpoint":"","client_id":"c"}
//	auth_on_subscribe  {"client_id":"c","mountpoint":"","username":"u",
//	                    "topics":[{"topic":"a/b","qos":1},{"topic":"c/#","qos":2}]}
//	auth_on_publish    {"username":"u","client_id":"c","mountpoint":"","qos":1,"topic":"a/b",
//	                    "payload":"aGVsbG8=","retain":false}
//	on_register        {"peer_addr":"192.0.2.1","peer_port":50123,"username":"u","mountpoint":"","client_id":"c"}
//	on_subscribe       {"client_id":"c","mountpoint":"","username":"u","topics":[{"topic":"a/b","qos":1}]}
//	on_unsubscribe     {"username":"u","client_id":"c","mountpoint":"","topics":["a/b","c/#"]}
//	on_deliver         {"username":"u","client_id":"c","mountpoint":"","topic":"a/b","payload":"aGVsbG8="}
//	on_client_offline  {"client_id":"c","mountpoint":""}
//	on_client_gone     {"client_id":"c","mountpoint":""}
//	on_session_expired {"client_id":"c","mountpoint":""}
//
// The password is sent as a JSON string (bytes that are not UTF-8 become
// U+FFFD), and null when the CONNECT carried none. VerneMQ's clean_session
// field is not sent: the broker does not pass it to the authenticator.
//
// # Answers of auth hooks
//
// An answer is status 200 with a JSON object:
//
//	{"result":"ok"}                        allow, unchanged
//	{"result":"next"}                      no opinion: the next endpoint of the hook decides, or the broker
//	{"result":{"error":"not_allowed"}}     deny
//	{"result":"ok","modifiers":{...}}      allow with changes
//
// The error is a string or {"reason_code": NAME or NUMBER}. Names are
// VerneMQ's reason code names (not_authorized, bad_username_or_password,
// banned, client_identifier_not_valid, server_unavailable, server_busy,
// quota_exceeded, topic_name_invalid, ...; invalid_credentials is
// bad_username_or_password); a name or number that is not a failure code of
// the hook's packet (CONNACK, PUBACK, SUBACK) is not_authorized (0x87).
// 3.x clients get the nearest code their version has.
//
// Modifiers:
//
//	auth_on_register   "modifiers":{"username":"new-name"}     (ignored when "")
//	auth_on_publish    "modifiers":{"topic":"new/topic","qos":0,"retain":false,"payload":"bmV3"}
//	auth_on_subscribe  "topics":[{"topic":"a/b","qos":0},{"topic":"c/#","qos":128}]
//
// Other modifier keys are ignored (VerneMQ's session settings such as
// max_inflight_messages among them). A publish modifier may set any of its
// keys; qos can only lower the QoS, topic must be a valid topic name and
// payload is base64. auth_on_subscribe's topics list (at the top level as
// VerneMQ 3.1 hooks put it, or in "modifiers" as its 5.0 hooks do) has one
// entry per requested filter, in order: a qos of 0, 1 or 2 grants the filter
// (rewritten to topic), 128 refuses it as not authorized (0x87; 3.x clients
// get 0x80), and another SUBACK failure code refuses it with that code. An
// answer that breaks these rules is a failure.
//
// # Failures and timeouts
//
// A call fails when the endpoint does not answer within its timeout, answers
// with a status other than 200 (redirects are not followed), or with a body
// that is not a valid answer. A failed auth hook allows when its endpoint has
// AllowOnError and otherwise denies: auth_on_register with server_unavailable
// (0x88; 3.x: 0x03), the others with not_authorized. Failures are counted in
// Stats and logged, at most once per endpoint every ten seconds.
//
// # Several endpoints per hook
//
// The endpoints of an auth hook are asked in the order given until one
// answers ok or error (or fails); when all answer next, the result is Next.
// A notification goes to every endpoint of its hook.
//
// # Cache
//
// An auth answer "ok" that comes with the response header
// "cache-control: max-age=N" (N > 0 seconds) is kept for N seconds, and the
// same request to the same endpoint is answered from it without a call.
// Requests are the same when these fields are equal: auth_on_register
// client_id, username, password and peer_addr (not peer_port, which changes
// with every connection); auth_on_publish client_id, username, topic, qos and
// retain (not the payload, as in VerneMQ, whose payload modifier is not
// cached either: a cached answer leaves the payload as it is); auth_on_subscribe
// client_id, username and the topics with their QoS. Keys are SHA-256 digests,
// so no password is kept. Answers other than ok are not cached. The cache
// holds at most CacheSize answers, evicting expired ones first, then any.
//
// # Notifications
//
// on_* calls are queued and sent by Workers goroutines, so the broker never
// waits for them; the answer's body is read and ignored (VerneMQ expects {}).
// When QueueSize notifications are waiting, more are dropped and counted.
// Close sends what is queued before it returns.
type Webhooks struct {
	endpoints [numHooks][]*endpoint // fixed after NewWebhooks
	client    *http.Client
	log       *slog.Logger
	cache     *answerCache
	now       func() time.Time // time.Now; tests replace it
	stats     [numHooks]hookCounters

	jobs      chan notification
	quit      chan struct{} // closed by Close: workers drain jobs and stop
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup     // the workers
	ctx       context.Context    // every call's parent; cancelled when Close gives up waiting
	cancel    context.CancelFunc // cancels ctx
	dropLog   logLimiter
}

// endpoint is one configured URL.
type endpoint struct {
	id           int32  // unique among the Webhooks' endpoints; part of cache keys
	hook         Hook   // fixed
	url          string // fixed
	name         string // the URL without user info and query, for logs
	timeout      time.Duration
	allowOnError bool
	cacheable    atomic.Bool // some answer carried a max-age: look in the cache
	errLog       logLimiter
}

// notification is a queued on_* call.
type notification struct {
	hook Hook
	body any // marshalled by the worker
}

var _ Hooks = (*Webhooks)(nil)

// NewWebhooks checks the endpoints and starts the notification workers when
// some endpoint has an on_* hook. Close stops them.
func NewWebhooks(opts WebhookOptions) (*Webhooks, error) {
	w := &Webhooks{client: opts.HTTPClient, log: opts.Logger, now: time.Now}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 100
		w.client = &http.Client{Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	notify := false
	for i, e := range opts.Endpoints {
		if e.Hook <= 0 || e.Hook >= numHooks {
			return nil, fmt.Errorf("webhook %d: unknown hook %d", i, int(e.Hook))
		}
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook %d (%s): URL must be http:// or https://", i, e.Hook)
		}
		ep := &endpoint{id: int32(i), hook: e.Hook, url: e.URL, name: u.Scheme + "://" + u.Host + u.Path,
			timeout: e.Timeout, allowOnError: e.AllowOnError}
		if ep.timeout <= 0 {
			ep.timeout = DefaultWebhookTimeout
		}
		w.endpoints[e.Hook] = append(w.endpoints[e.Hook], ep)
		notify = notify || !e.Hook.IsAuth()
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultWebhookCache
	}
	w.cache = &answerCache{max: size, m: make(map[cacheKey]cacheEntry)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.quit = make(chan struct{})
	if notify {
		q, n := opts.QueueSize, opts.Workers
		if q <= 0 {
			q = DefaultWebhookQueue
		}
		if n <= 0 {
			n = DefaultWebhookWorkers
		}
		w.jobs = make(chan notification, q)
		w.wg.Add(n)
		for range n {
			go w.work()
		}
	}
	return w, nil
}

// Has reports whether some endpoint is configured for h.
func (w *Webhooks) Has(h Hook) bool { return h > 0 && h < numHooks && len(w.endpoints[h]) > 0 }

// Stats returns the counters of hook h.
func (w *Webhooks) Stats(h Hook) WebhookStats {
	if h <= 0 || h >= numHooks {
		return WebhookStats{}
	}
	c := &w.stats[h]
	return WebhookStats{Requests: c.requests.Load(), Failures: c.failures.Load(), CacheHits: c.cacheHits.Load(),
		Dropped: c.dropped.Load()}
}

// Close stops taking notifications and waits until the queued ones are sent
// or ctx is done; then it cancels the calls still running and returns
// ctx.Err(). Auth hooks called after Close fail.
func (w *Webhooks) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		close(w.quit)
	})
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	w.cancel()
	<-done
	return err
}

// AuthOnRegister implements Hooks: it asks the auth_on_register endpoints.
func (w *Webhooks) AuthOnRegister(r *RegisterRequest) Result {
	if !w.Has(HookAuthOnRegister) {
		return Result{Decision: Next}
	}
	addr, port := peer(r.RemoteAddr)
	body := func() any {
		b := &registerBody{PeerAddr: addr, PeerPort: port, Mountpoint: "", ClientID: r.ClientID}
		if r.HasUser {
			b.Username = &r.Username
		}
		if r.Password != nil {
			p := string(r.Password)
			b.Password = &p
		}
		return b
	}
	key := func(k *keyWriter) {
		k.str(r.ClientID)
		k.flag(r.HasUser)
		k.str(r.Username)
		k.flag(r.Password != nil)
		k.bytes(r.Password)
		if addr != nil {
			k.str(*addr)
		}
	}
	a, res := w.ask(HookAuthOnRegister, body, key, 0)
	if res.Decision == Allow && a != nil && a.username != nil && *a.username != "" {
		r.Username, r.HasUser = *a.username, true
	}
	return res
}

// AuthOnPublish implements Hooks: it asks the auth_on_publish endpoints.
func (w *Webhooks) AuthOnPublish(c *Client, p *PublishRequest) Result {
	if !w.Has(HookAuthOnPublish) {
		return Result{Decision: Next}
	}
	body := func() any {
		return &publishBody{Username: username(c.Username), ClientID: c.ClientID, QoS: int(p.QoS), Topic: p.Topic,
			Payload: base64.StdEncoding.EncodeToString(p.Payload), Retain: p.Retain}
	}
	key := func(k *keyWriter) {
		k.str(c.ClientID)
		k.str(c.Username)
		k.str(p.Topic)
		k.byte(byte(p.QoS))
		k.flag(p.Retain)
	}
	a, res := w.ask(HookAuthOnPublish, body, key, 0)
	if res.Decision == Allow && a != nil {
		if a.topic != nil {
			p.Topic = *a.topic
		}
		if a.qos != nil && *a.qos < p.QoS {
			p.QoS = *a.qos
		}
		if a.retain != nil {
			p.Retain = *a.retain
		}
		if a.payload != nil {
			p.Payload = a.payload
		}
	}
	return res
}

// AuthOnSubscribe implements Hooks: it asks the auth_on_subscribe endpoints.
func (w *Webhooks) AuthOnSubscribe(c *Client, subs []SubscriptionRequest) Result {
	if !w.Has(HookAuthOnSubscribe) {
		return Result{Decision: Next}
	}
	body := func() any {
		return &subscribeBody{ClientID: c.ClientID, Username: username(c.Username), Topics: topicList(subs)}
	}
	key := func(k *keyWriter) {
		k.str(c.ClientID)
		k.str(c.Username)
		for _, s := range subs {
			k.str(s.Filter)
			k.byte(byte(s.QoS))
		}
	}
	a, res := w.ask(HookAuthOnSubscribe, body, key, len(subs))
	if res.Decision == Allow && a != nil && len(a.topics) == len(subs) {
		for i, t := range a.topics {
			if t.code.IsError() {
				subs[i].Code = t.code
				continue
			}
			subs[i].Filter = t.topic
			if t.qos < subs[i].QoS {
				subs[i].QoS = t.qos
			}
		}
	}
	return res
}

// OnRegister implements Hooks: it queues an on_register call.
func (w *Webhooks) OnRegister(c *Client) {
	if w.Has(HookOnRegister) {
		addr, port := peer(c.RemoteAddr)
		w.enqueue(HookOnRegister, &registeredBody{PeerAddr: addr, PeerPort: port, Username: username(c.Username),
			ClientID: c.ClientID})
	}
}

// OnSubscribe implements Hooks: it queues an on_subscribe call.
func (w *Webhooks) OnSubscribe(c *Client, subs []SubscriptionRequest) {
	if w.Has(HookOnSubscribe) {
		w.enqueue(HookOnSubscribe, &subscribeBody{ClientID: c.ClientID, Username: username(c.Username),
			Topics: topicList(subs)})
	}
}

// OnUnsubscribe implements Hooks: it queues an on_unsubscribe call.
func (w *Webhooks) OnUnsubscribe(c *Client, filters []string) {
	if w.Has(HookOnUnsubscribe) {
		w.enqueue(HookOnUnsubscribe, &unsubscribeBody{Username: username(c.Username), ClientID: c.ClientID,
			Topics: append([]string{}, filters...)})
	}
}

// OnDeliver implements Hooks: it queues an on_deliver call. The payload is
// encoded by the worker that sends it.
func (w *Webhooks) OnDeliver(c *Client, topic string, payload []byte) {
	if w.Has(HookOnDeliver) {
		w.enqueue(HookOnDeliver, &deliverBody{Username: username(c.Username), ClientID: c.ClientID, Topic: topic,
			Payload: payload})
	}
}

// OnClientOffline implements Hooks: it queues an on_client_offline call.
func (w *Webhooks) OnClientOffline(c *Client) {
	if w.Has(HookOnClientOffline) {
		w.enqueue(HookOnClientOffline, &clientBody{ClientID: c.ClientID})
	}
}

// OnClientGone implements Hooks: it queues an on_client_gone call.
func (w *Webhooks) OnClientGone(c *Client) {
	if w.Has(HookOnClientGone) {
		w.enqueue(HookOnClientGone, &clientBody{ClientID: c.ClientID})
	}
}

// OnSessionExpired implements Hooks: it queues an on_session_expired call.
func (w *Webhooks) OnSessionExpired(clientID string) {
	if w.Has(HookOnSessionExpired) {
		w.enqueue(HookOnSessionExpired, &clientBody{ClientID: clientID})
	}
}

// The request bodies, in VerneMQ's shapes. Mountpoint is always "".
type (
	registerBody struct {
		PeerAddr   *string `json:"peer_addr"`
		PeerPort   *int    `json:"peer_port"`
		Username   *string `json:"username"`
		Password   *string `json:"password"`
		Mountpoint string  `json:"mountpoint"`
		ClientID   string  `json:"client_id"`
	}
	registeredBody struct {
		PeerAddr   *string `json:"peer_addr"`
		PeerPort   *int    `json:"peer_port"`
		Username   *string `json:"username"`
		Mountpoint string  `json:"mountpoint"`
		ClientID   string  `json:"client_id"`
	}
	publishBody struct {
		Username   *string `json:"username"`
		ClientID   string  `json:"client_id"`
		Mountpoint string  `json:"mountpoint"`
		QoS        int     `json:"qos"`
		Topic      string  `json:"topic"`
		Payload    string  `json:"payload"` // base64
		Retain     bool    `json:"retain"`
	}
	subscribeBody struct {
		ClientID   string     `json:"client_id"`
		Mountpoint string     `json:"mountpoint"`
		Username   *string    `json:"username"`
		Topics     []topicQoS `json:"topics"`
	}
	topicQoS struct {
		Topic string `json:"topic"`
		QoS   int    `json:"qos"`
	}
	unsubscribeBody struct {
		Username   *string  `json:"username"`
		ClientID   string   `json:"client_id"`
		Mountpoint string   `json:"mountpoint"`
		Topics     []string `json:"topics"`
	}
	deliverBody struct {
		Username   *string   `json:"username"`
		ClientID   string    `json:"client_id"`
		Mountpoint string    `json:"mountpoint"`
		Topic      string    `json:"topic"`
		Payload    payload64 `json:"payload"`
	}
	clientBody struct {
		ClientID   string `json:"client_id"`
		Mountpoint string `json:"mountpoint"`
	}
)

// payload64 is a payload that marshals as a base64 string, "" when empty (never null).
type payload64 []byte

// MarshalJSON implements json.Marshaler.
func (b payload64) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"'), nil
}

// username is the JSON value of a username: null when empty.
func username(u string) *string {
	if u == "" {
		return nil
	}
	return &u
}

func topicList(subs []SubscriptionRequest) []topicQoS {
	t := make([]topicQoS, len(subs))
	for i, s := range subs {
		t[i] = topicQoS{Topic: s.Filter, QoS: int(s.QoS)}
	}
	return t
}

// peer splits a remote address into the JSON values of peer_addr and
// peer_port: nil (null) when unknown.
func peer(a net.Addr) (*string, *int) {
	if a == nil {
		return nil, nil
	}
	if t, ok := a.(*net.TCPAddr); ok {
		ip := t.IP.String()
		return &ip, &t.Port
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return &host, nil
	}
	return &host, &n
}

// answer is a decoded answer of an auth endpoint. Cached answers are shared
// and never changed.
type answer struct {
	decision Decision // Allow, Next or Deny
	code     mqtt.ReasonCode
	reason   string // the endpoint's error, for logs

	username *string     // auth_on_register
	topic    *string     // auth_on_publish
	qos      *mqtt.QoS   // auth_on_publish
	retain   *bool       // auth_on_publish
	payload  []byte      // auth_on_publish; nil: unchanged
	topics   []subAnswer // auth_on_subscribe; nil: unchanged
}

// subAnswer is one entry of auth_on_subscribe's topics.
type subAnswer struct {
	topic string
	qos   mqtt.QoS
	code  mqtt.ReasonCode // a failure code: the filter is refused
}

// ask runs the endpoints of auth hook h in order until one decides, and
// returns the deciding answer (nil on failure or when all said next) and the
// Result. body makes the request body, key writes the fields that identify
// the request in the cache, and filters is the number of filters of an
// auth_on_subscribe request.
func (w *Webhooks) ask(h Hook, body func() any, key func(*keyWriter), filters int) (*answer, Result) {
	var data []byte
	var sum [sha256.Size]byte
	summed := false
	for _, e := range w.endpoints[h] {
		if e.cacheable.Load() {
			if !summed {
				sum, summed = keySum(key), true
			}
			if a, ok := w.cache.get(cacheKey{e.id, sum}, w.now()); ok {
				w.stats[h].cacheHits.Add(1)
				return a, Result{Decision: Allow}
			}
		}
		if data == nil {
			var err error
			if data, err = json.Marshal(body()); err != nil {
				return nil, w.failure(h, e, err)
			}
		}
		a, maxAge, err := w.callAuth(e, data, filters)
		if err != nil {
			return nil, w.failure(h, e, err)
		}
		switch a.decision {
		case Next:
			continue
		case Deny:
			w.log.Debug("webhook refused", "hook", h.String(), "endpoint", e.name, "error", a.reason,
				"reason", a.code.String())
			return a, Result{Decision: Deny, Code: a.code}
		}
		if maxAge > 0 {
			if !summed {
				sum, summed = keySum(key), true
			}
			e.cacheable.Store(true)
			c := a
			if a.payload != nil { // the payload modifier is not cached
				cp := *a
				cp.payload = nil
				c = &cp
			}
			now := w.now()
			w.cache.put(cacheKey{e.id, sum}, c, now, now.Add(maxAge))
		}
		return a, Result{Decision: Allow}
	}
	return nil, Result{Decision: Next}
}

// failure is the Result of a failed call to e, by its on_error policy.
func (w *Webhooks) failure(h Hook, e *endpoint, err error) Result {
	w.stats[h].failures.Add(1)
	w.logFailure(e, err)
	if e.allowOnError {
		return Result{Decision: Allow}
	}
	if h == HookAuthOnRegister {
		return Result{Decision: Deny, Code: mqtt.ServerUnavailable}
	}
	return Result{Decision: Deny, Code: mqtt.NotAuthorized}
}

func (w *Webhooks) logFailure(e *endpoint, err error) {
	if ok, suppressed := e.errLog.allow(w.now()); ok {
		w.log.Warn("webhook failed", "hook", e.hook.String(), "endpoint", e.name, "err", err,
			"suppressed", suppressed)
	}
}

// callAuth calls an auth endpoint and decodes its answer; maxAge is the
// cache-control max-age of the response, 0 when absent. filters is the number
// of filters of an auth_on_subscribe request.
func (w *Webhooks) callAuth(e *endpoint, data []byte, filters int) (*answer, time.Duration, error) {
	body, header, err := w.post(w.ctx, e, data)
	if err != nil {
		return nil, 0, err
	}
	a, err := decodeAnswer(e.hook, body, filters)
	if err != nil {
		return nil, 0, err
	}
	return a, maxAge(header), nil
}

// post sends one request and returns the body of a 200 response.
func (w *Webhooks) post(parent context.Context, e *endpoint, data []byte) ([]byte, http.Header, error) {
	w.stats[e.hook].requests.Add(1)
	ctx, cancel := context.WithTimeout(parent, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("vernemq-hook", e.hook.String())
	res, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error // its message holds the URL, which may hold a secret
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if cerr := res.Body.Close(); err == nil {
		err = cerr
	}
	switch {
	case res.StatusCode != http.StatusOK:
		return nil, nil, fmt.Errorf("status %s", res.Status)
	case err != nil:
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	case len(body) > maxResponseBytes:
		return nil, nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return body, res.Header, nil
}

// maxAge reads "max-age=N" from the Cache-Control header, as VerneMQ does.
func maxAge(h http.Header) time.Duration {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
			if !ok || !strings.EqualFold(name, "max-age") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(val, `"`), 10, 31)
			if err != nil {
				return 0
			}
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// wireAnswer is an answer as sent; the raw parts are decoded by hook.
type wireAnswer struct {
	Result    json.RawMessage `json:"result"`
	Modifiers json.RawMessage `json:"modifiers"`
	Topics    json.RawMessage `json:"topics"`
}

type wireModifiers struct {
	Username *string         `json:"username"`
	Topic    *string         `json:"topic"`
	QoS      *int            `json:"qos"`
	Retain   *bool           `json:"retain"`
	Payload  *string         `json:"payload"`
	Topics   json.RawMessage `json:"topics"`
}

// decodeAnswer decodes the body of an auth hook's answer. filters is the
// number of filters of an auth_on_subscribe request.
func decodeAnswer(h Hook, body []byte, filters int) (*answer, error) {
	var wa wireAnswer
	if err := json.Unmarshal(body, &wa); err != nil {
		return nil, fmt.Errorf("answer is not a JSON object: %w", err)
	}
	var result string
	if err := json.Unmarshal(wa.Result, &result); err != nil {
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(wa.Result, &e); err != nil || len(e.Error) == 0 {
			return nil, errors.New(`answer has no "result" of "ok", "next" or {"error": ...}`)
		}
		code, reason := errorCode(h, e.Error)
		return &answer{decision: Deny, code: code, reason: reason}, nil
	}
	switch result {
	case "next":
		return &answer{decision: Next}, nil
	case "ok":
	default:
		return nil, fmt.Errorf("unknown result %q", result)
	}
	a := &answer{decision: Allow}
	var m wireModifiers
	if isObject(wa.Modifiers) {
		if err := json.Unmarshal(wa.Modifiers, &m); err != nil {
			return nil, fmt.Errorf("modifiers: %w", err)
		}
	}
	switch h {
	case HookAuthOnRegister:
		a.username = m.Username
	case HookAuthOnPublish:
		if m.Topic != nil {
			if err := mqtt.ValidTopicName(*m.Topic); err != nil {
				return nil, fmt.Errorf("modifiers: topic %q: %w", *m.Topic, err)
			}
			a.topic = m.Topic
		}
		if m.QoS != nil {
			if *m.QoS < 0 || *m.QoS > 2 {
				return nil, fmt.Errorf("modifiers: qos %d", *m.QoS)
			}
			q := mqtt.QoS(*m.QoS)
			a.qos = &q
		}
		a.retain = m.Retain
		if m.Payload != nil {
			p, err := base64.StdEncoding.DecodeString(*m.Payload)
			if err != nil {
				if p, err = base64.RawStdEncoding.DecodeString(*m.Payload); err != nil {
					return nil, fmt.Errorf("modifiers: payload is not base64: %w", err)
				}
			}
			if p == nil {
				p = []byte{}
			}
			a.payload = p
		}
	case HookAuthOnSubscribe:
		raw := wa.Topics
		if len(raw) == 0 || string(raw) == "null" {
			raw = m.Topics
		}
		if len(raw) == 0 || string(raw) == "null" {
			break
		}
		var ts []topicQoS
		if err := json.Unmarshal(raw, &ts); err != nil {
			return nil, fmt.Errorf("topics: %w", err)
		}
		if len(ts) != filters {
			return nil, fmt.Errorf("topics has %d entries for %d filters", len(ts), filters)
		}
		a.topics = make([]subAnswer, len(ts))
		for i, t := range ts {
			switch {
			case t.QoS >= 0 && t.QoS <= 2:
				if err := mqtt.ValidTopicFilter(t.Topic); err != nil {
					return nil, fmt.Errorf("topics: %q: %w", t.Topic, err)
				}
				a.topics[i] = subAnswer{topic: t.Topic, qos: mqtt.QoS(t.QoS)}
			case t.QoS == 0x80: // VerneMQ's "not allowed"
				a.topics[i] = subAnswer{topic: t.Topic, code: mqtt.NotAuthorized}
			case t.QoS > 0x80 && t.QoS <= 0xFF && mqtt.ReasonCode(t.QoS).ValidFor(mqtt.SUBACK):
				a.topics[i] = subAnswer{topic: t.Topic, code: mqtt.ReasonCode(t.QoS)}
			default:
				return nil, fmt.Errorf("topics: %q: qos %d", t.Topic, t.QoS)
			}
		}
	}
	return a, nil
}

func isObject(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) > 0 && s[0] == '{'
}

// reasonNames are VerneMQ's names of reason codes, as endpoints give them in
// {"error": NAME} or {"error": {"reason_code": NAME}}.
var reasonNames = map[string]mqtt.ReasonCode{
	"unspecified_error":             mqtt.UnspecifiedError,
	"malformed_packet":              mqtt.MalformedPacket,
	"protocol_error":                mqtt.ProtocolError,
	"impl_specific_error":           mqtt.ImplementationSpecificError,
	"implementation_specific_error": mqtt.ImplementationSpecificError,
	"unsupported_protocol_version":  mqtt.UnsupportedProtocolVersion,
	"client_identifier_not_valid":   mqtt.ClientIdentifierNotValid,
	"bad_username_or_password":      mqtt.BadUserNameOrPassword,
	"invalid_credentials":           mqtt.BadUserNameOrPassword,
	"not_authorized":                mqtt.NotAuthorized,
	"not_allowed":                   mqtt.NotAuthorized,
	"server_unavailable":            mqtt.ServerUnavailable,
	"server_busy":                   mqtt.ServerBusy,
	"banned":                        mqtt.Banned,
	"bad_authentication_method":     mqtt.BadAuthenticationMethod,
	"topic_filter_invalid":          mqtt.TopicFilterInvalid,
	"topic_name_invalid":            mqtt.TopicNameInvalid,
	"packet_too_large":              mqtt.PacketTooLarge,
	"quota_exceeded":                mqtt.QuotaExceeded,
	"payload_format_invalid":        mqtt.PayloadFormatInvalid,
	"retain_not_supported":          mqtt.RetainNotSupported,
	"qos_not_supported":             mqtt.QoSNotSupported,
	"use_another_server":            mqtt.UseAnotherServer,
	"server_moved":                  mqtt.ServerMoved,
	"connection_rate_exceeded":      mqtt.ConnectionRateExceeded,
	"shared_subs_not_supported":     mqtt.SharedSubscriptionsNotSupported,
	"wildcard_subs_not_supported":   mqtt.WildcardSubscriptionsNotSupported,
}

// hookPacket is the packet whose reason codes an auth hook's refusal uses.
var hookPacket = map[Hook]mqtt.PacketType{
	HookAuthOnRegister: mqtt.CONNACK, HookAuthOnPublish: mqtt.PUBACK, HookAuthOnSubscribe: mqtt.SUBACK,
}

// errorCode maps the value of an answer's "error" to the reason code of the
// refusal, and returns it as text for logs.
func errorCode(h Hook, raw json.RawMessage) (mqtt.ReasonCode, string) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return mqtt.NotAuthorized, ""
	}
	if m, ok := v.(map[string]any); ok {
		v = m["reason_code"]
	}
	var code mqtt.ReasonCode
	var text string
	switch x := v.(type) {
	case string:
		code, text = reasonNames[x], x
	case float64:
		if x >= 0 && x <= 0xFF && x == float64(int(x)) {
			code = mqtt.ReasonCode(x)
		}
		text = strconv.FormatFloat(x, 'f', -1, 64)
	}
	if !code.IsError() || !code.ValidFor(hookPacket[h]) {
		code = mqtt.NotAuthorized
	}
	return code, text
}

// enqueue queues a notification, or drops and counts it when the queue is
// full or closed. It never blocks.
func (w *Webhooks) enqueue(h Hook, body any) {
	if !w.closed.Load() {
		select {
		case w.jobs <- notification{hook: h, body: body}:
			return
		default:
		}
	}
	w.stats[h].dropped.Add(1)
	if ok, suppressed := w.dropLog.allow(w.now()); ok {
		w.log.Warn("webhook notification dropped: queue full", "hook", h.String(), "suppressed", suppressed)
	}
}

// work sends queued notifications until Close, then what is still queued.
func (w *Webhooks) work() {
	defer w.wg.Done()
	for {
		select {
		case n := <-w.jobs:
			w.notify(n)
		case <-w.quit:
			for {
				select {
				case n := <-w.jobs:
					w.notify(n)
				default:
					return
				}
			}
		}
	}
}

// notify sends one notification to every endpoint of its hook.
func (w *Webhooks) notify(n notification) {
	data, err := json.Marshal(n.body)
	for _, e := range w.endpoints[n.hook] {
		if err == nil {
			_, _, err = w.post(w.ctx, e, data)
		}
		if err != nil {
			w.stats[n.hook].failures.Add(1)
			w.logFailure(e, err)
			err = nil
		}
	}
}

// keyWriter writes the fields of a request into a digest, each with its
// length, so that different field lists never give the same bytes.
type keyWriter struct {
	h   gohash.Hash
	buf [binary.MaxVarintLen64]byte
}

func (k *keyWriter) bytes(b []byte) {
	k.h.Write(binary.AppendUvarint(k.buf[:0], uint64(len(b))))
	k.h.Write(b)
}

func (k *keyWriter) str(s string) { k.bytes([]byte(s)) }

func (k *keyWriter) byte(b byte) { k.h.Write([]byte{b}) }

func (k *keyWriter) flag(b bool) {
	if b {
		k.byte(1)
	} else {
		k.byte(0)
	}
}

func keySum(key func(*keyWriter)) [sha256.Size]byte {
	k := &keyWriter{h: sha256.New()}
	key(k)
	var sum [sha256.Size]byte
	k.h.Sum(sum[:0])
	return sum
}

// cacheKey identifies a request to one endpoint.
type cacheKey struct {
	endpoint int32
	sum      [sha256.Size]byte
}

type cacheEntry struct {
	a       *answer
	expires time.Time
}

// answerCache holds auth answers until they expire, at most max of them.
type answerCache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]cacheEntry // guarded by mu
}

func (c *answerCache) get(k cacheKey, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		return nil, false
	}
	return e.a, true
}

// put stores an answer. A full cache first drops the expired entries among
// a few it looks at, and else one at random (map order).
func (c *answerCache) put(k cacheKey, a *answer, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		looked, evicted := 0, false
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
				evicted = true
			}
			if looked++; looked >= 64 {
				break
			}
		}
		if !evicted {
			for key := range c.m {
				delete(c.m, key)
				break
			}
		}
	}
	c.m[k] = cacheEntry{a: a, expires: expires}
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// logLimiter lets one log line through per errorLogInterval and counts the
// ones it holds back.
type logLimiter struct {
	mu         sync.Mutex
	next       time.Time // guarded by mu
	suppressed int       // guarded by mu
}

// allow reports whether to log now, and how many lines were held back since
// the last one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed, l.next = 0, now.Add(errorLogInterval)
	return true, n
}
