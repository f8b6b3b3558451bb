package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/auth"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// webhookCloseTimeout bounds how long shutdown waits for queued notifications.
const webhookCloseTimeout = 5 * time.Second

// webhooks are the configured [[webhook]] endpoints. A nil *webhooks (no
// [[webhook]] entry) leaves the broker's authenticator and hooks as they are.
//
// The endpoints reload on SIGHUP: the broker keeps calling the same webhooks,
// which forward to the endpoints in force. The hooks the broker calls at all are
// those configured at start; adding a kind of hook takes a restart.
type webhooks struct {
	w   *swappable
	log *slog.Logger
}

// swappable is auth.Hooks forwarding to the *auth.Webhooks in force.
type swappable struct{ cur atomic.Pointer[auth.Webhooks] }

func (s *swappable) Has(h auth.Hook) bool { return s.cur.Load().Has(h) }
func (s *swappable) AuthOnRegister(r *auth.RegisterRequest) auth.Result {
	return s.cur.Load().AuthOnRegister(r)
}
func (s *swappable) AuthOnPublish(c *auth.Client, p *auth.PublishRequest) auth.Result {
	return s.cur.Load().AuthOnPublish(c, p)
}
func (s *swappable) AuthOnSubscribe(c *auth.Client, subs []auth.SubscriptionRequest) auth.Result {
	return s.cur.Load().AuthOnSubscribe(c, subs)
}
func (s *swappable) OnRegister(c *auth.Client) { s.cur.Load().OnRegister(c) }
func (s *swappable) OnSubscribe(c *auth.Client, subs []auth.SubscriptionRequest) {
	s.cur.Load().OnSubscribe(c, subs)
}
func (s *swappable) OnUnsubscribe(c *auth.Client, filters []string) {
	s.cur.Load().OnUnsubscribe(c, filters)
}
func (s *swappable) OnDeliver(c *auth.Client, topic string, payload []byte) {
	s.cur.Load().OnDeliver(c, topic, payload)
}
func (s *swappable) OnClientOffline(c *auth.Client) { s.cur.Load().OnClientOffline(c) }
func (s *swappable) OnClientGone(c *auth.Client)    { s.cur.Load().OnClientGone(c) }
func (s *swappable) OnSessionExpired(id string)     { s.cur.Load().OnSessionExpired(id) }

// newWebhooks makes the webhooks of the [[webhook]] entries of cfg.
func newWebhooks(cfg *config.Config, log *slog.Logger) (*auth.Webhooks, error) {
	eps := make([]auth.Endpoint, len(cfg.Webhooks))
	for i, c := range cfg.Webhooks {
		h, err := auth.ParseHook(c.Hook)
		if err != nil {
			return nil, err
		}
		eps[i] = auth.Endpoint{Hook: h, URL: c.URL, Timeout: c.Timeout.Std(), AllowOnError: c.OnError == "allow"}
	}
	return auth.NewWebhooks(auth.WebhookOptions{Endpoints: eps, Logger: log})
}

// loadWebhooks sets up the [[webhook]] entries of cfg; nil when there are none.
func loadWebhooks(cfg *config.Config, log *slog.Logger) (*webhooks, error) {
	if len(cfg.Webhooks) == 0 {
		return nil, nil
	}
	w, err := newWebhooks(cfg, log)
	if err != nil {
		return nil, err
	}
	wh := &webhooks{w: &swappable{}, log: log}
	wh.w.cur.Store(w)
	return wh, nil
}

// reload puts the endpoints of cfg in force; the old ones send what they have
// queued in the background.
func (wh *webhooks) reload(cfg *config.Config) {
	if wh == nil {
		return
	}
	w, err := newWebhooks(cfg, wh.log)
	if err != nil {
		wh.log.Error("webhooks not reloaded; the running ones stay", "err", err)
		return
	}
	old := wh.w.cur.Swap(w)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
		defer cancel()
		_ = old.Close(ctx)
	}()
}

// authenticator returns builtin, chained with auth_on_register when an
// endpoint is configured for it.
func (wh *webhooks) authenticator(builtin *authenticator) broker.Authenticator {
	if wh == nil || !wh.w.Has(auth.HookAuthOnRegister) {
		return builtin
	}
	return &hookAuthenticator{builtin: builtin, hooks: wh.w}
}

// brokerHooks returns the broker's Hooks, or nil when no endpoint is
// configured for any of the hooks it calls, so that they cost nothing.
func (wh *webhooks) brokerHooks() broker.Hooks {
	if wh == nil {
		return nil
	}
	return newBrokerHooks(wh.w, wh.w.Has)
}

// close sends the queued notifications, waiting at most webhookCloseTimeout.
func (wh *webhooks) close() {
	if wh == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
	defer cancel()
	if err := wh.w.cur.Load().Close(ctx); err != nil {
		wh.log.Warn("webhook notifications not all sent at shutdown", "err", err)
	}
}

// hookAuthenticator chains the built-in authenticator with AuthOnRegister. A
// refusal that rests on the password file or on a missing certificate
// identity is final; otherwise the hook decides, and Next leaves the
// built-in decision (allow_anonymous, or the password file's acceptance).
type hookAuthenticator struct {
	builtin *authenticator
	hooks   auth.Hooks
}

// Authenticate implements broker.Authenticator.
func (a *hookAuthenticator) Authenticate(info *broker.ConnectInfo) (mqtt.ReasonCode, string) {
	code, user := a.builtin.Authenticate(info)
	if code.IsError() && a.builtin.binding(info) {
		return code, ""
	}
	r := auth.RegisterRequest{ClientID: info.ClientID, Username: info.Username, HasUser: info.HasUser,
		Password: info.Password, Listener: info.Listener, RemoteAddr: info.RemoteAddr, Version: info.Version}
	if user != "" {
		r.Username, r.HasUser = user, true
	}
	asked := r.Username
	res := a.hooks.AuthOnRegister(&r)
	switch res.Decision {
	case auth.Allow:
		if r.Username != asked {
			return mqtt.Success, r.Username
		}
		return mqtt.Success, user
	case auth.Deny:
		return refusal(res.Code), ""
	}
	return code, user
}

// binding reports whether the built-in decision on info rests on the password
// file or on a listener's certificate identity, which hooks cannot overrule.
func (a *authenticator) binding(info *broker.ConnectInfo) bool {
	return a.identity[info.Listener] || info.HasUser && a.passwords != nil
}

// refusal is a hook's refusal code, NotAuthorized when it gave none.
func refusal(c mqtt.ReasonCode) mqtt.ReasonCode {
	if c.IsError() {
		return c
	}
	return mqtt.NotAuthorized
}

// brokerHooks adapts auth.Hooks to broker.Hooks, calling only the hooks that
// are on and doing nothing for the others.
type brokerHooks struct {
	h  auth.Hooks
	on [auth.HookOnSessionExpired + 1]bool // by hook; fixed
}

// newBrokerHooks returns the broker.Hooks of h for the hooks on reports, or
// nil when none of the hooks the broker calls is on.
func newBrokerHooks(h auth.Hooks, on func(auth.Hook) bool) broker.Hooks {
	b := &brokerHooks{h: h}
	anyOn := false
	for _, hk := range []auth.Hook{auth.HookAuthOnSubscribe, auth.HookAuthOnPublish, auth.HookOnRegister,
		auth.HookOnSubscribe, auth.HookOnUnsubscribe, auth.HookOnDeliver, auth.HookOnClientOffline,
		auth.HookOnClientGone, auth.HookOnSessionExpired} {
		b.on[hk] = on(hk)
		anyOn = anyOn || b.on[hk]
	}
	if !anyOn {
		return nil
	}
	return b
}

func client(c *broker.ClientInfo) *auth.Client {
	return &auth.Client{ClientID: c.ClientID, Username: c.Username, Listener: c.Listener, RemoteAddr: c.RemoteAddr,
		Version: c.Version}
}

// AuthOnPublish implements broker.Hooks.
func (b *brokerHooks) AuthOnPublish(c *broker.ClientInfo, req *broker.PublishRequest) mqtt.ReasonCode {
	if !b.on[auth.HookAuthOnPublish] {
		return mqtt.Success
	}
	p := auth.PublishRequest{Topic: req.Topic, QoS: req.QoS, Retain: req.Retain, Payload: req.Payload}
	res := b.h.AuthOnPublish(client(c), &p)
	switch res.Decision {
	case auth.Deny:
		return refusal(res.Code)
	case auth.Allow:
		req.Topic, req.QoS, req.Retain, req.Payload = p.Topic, p.QoS, p.Retain, p.Payload
	}
	return mqtt.Success
}

// AuthOnSubscribe implements broker.Hooks.
func (b *brokerHooks) AuthOnSubscribe(c *broker.ClientInfo, reqs []broker.SubscriptionRequest, codes []mqtt.ReasonCode) {
	if !b.on[auth.HookAuthOnSubscribe] {
		return
	}
	subs := subscriptions(reqs)
	res := b.h.AuthOnSubscribe(client(c), subs)
	switch res.Decision {
	case auth.Deny:
		for i := range codes {
			codes[i] = refusal(res.Code)
		}
	case auth.Allow:
		for i, s := range subs {
			if s.Code.IsError() {
				codes[i] = s.Code
				continue
			}
			reqs[i].Filter, reqs[i].QoS = s.Filter, s.QoS
		}
	}
}

func subscriptions(reqs []broker.SubscriptionRequest) []auth.SubscriptionRequest {
	subs := make([]auth.SubscriptionRequest, len(reqs))
	for i, r := range reqs {
		subs[i] = auth.SubscriptionRequest{Filter: r.Filter, QoS: r.QoS}
	}
	return subs
}

// OnRegister implements broker.Hooks.
func (b *brokerHooks) OnRegister(c *broker.ClientInfo) {
	if b.on[auth.HookOnRegister] {
		b.h.OnRegister(client(c))
	}
}

// OnSubscribe implements broker.Hooks.
func (b *brokerHooks) OnSubscribe(c *broker.ClientInfo, subs []broker.SubscriptionRequest) {
	if b.on[auth.HookOnSubscribe] {
		b.h.OnSubscribe(client(c), subscriptions(subs))
	}
}

// OnUnsubscribe implements broker.Hooks.
func (b *brokerHooks) OnUnsubscribe(c *broker.ClientInfo, filters []string) {
	if b.on[auth.HookOnUnsubscribe] {
		b.h.OnUnsubscribe(client(c), filters)
	}
}

// OnDeliver implements broker.Hooks.
func (b *brokerHooks) OnDeliver(c *broker.ClientInfo, topic string, payload []byte) {
	if b.on[auth.HookOnDeliver] {
		b.h.OnDeliver(client(c), topic, payload)
	}
}

// OnClientOffline implements broker.Hooks.
func (b *brokerHooks) OnClientOffline(c *broker.ClientInfo) {
	if b.on[auth.HookOnClientOffline] {
		b.h.OnClientOffline(client(c))
	}
}

// OnClientGone implements broker.Hooks.
func (b *brokerHooks) OnClientGone(c *broker.ClientInfo) {
	if b.on[auth.HookOnClientGone] {
		b.h.OnClientGone(client(c))
	}
}

// OnSessionExpired implements broker.Hooks.
func (b *brokerHooks) OnSessionExpired(clientID string) {
	if b.on[auth.HookOnSessionExpired] {
		b.h.OnSessionExpired(clientID)
	}
}
