package broker

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func TestPublishRateLimitSlowsThenDisconnects(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxPublishRate = 20; o.ThrottleLimit = time.Second })
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "fast", nil)
	start := time.Now()
	for i := range 40 { // 20 fit the first second's burst; 20 more take about a second
		c.publish(&mqtt.Publish{QoS: 1, Topic: "rate/x", Payload: []byte{byte(i)}})
	}
	if took := time.Since(start); took < 800*time.Millisecond {
		t.Fatalf("40 messages at 20/s went through in %v: not slowed", took)
	}
	// A client that keeps pushing is disconnected once it has been slowed for ThrottleLimit.
	stop := time.Now().Add(5 * time.Second)
	for time.Now().Before(stop) {
		b, _ := (&mqtt.Publish{Topic: "rate/x", Payload: []byte("x")}).Encode(nil, mqtt.Version5)
		if _, err := c.nc.Write(b); err != nil {
			break
		}
	}
	c.expectDisconnect(mqtt.MessageRateTooHigh, 10*time.Second)
}

func TestOutboundBytesCap(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxOutboundBytes = 10_000; o.MaxQueued = 0 })
	for _, id := range []string{"off1", "off2"} {
		c, _ := rawConnect(t, b.addr, mqtt.Version311, id, func(cp *mqtt.Connect) { cp.CleanStart = false })
		c.subscribe(nil, mqtt.Subscription{Filter: "cap/#", QoS: 1})
		c.send(&mqtt.Disconnect{})
		c.expectClosed(5 * time.Second)
	}
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "pub", nil)
	for range 50 {
		pub.publish(&mqtt.Publish{QoS: 1, Topic: "cap/x", Payload: make([]byte, 1000)})
	}
	if used := b.OutboundBytes(); used > 10_000 {
		t.Fatalf("queues hold %d bytes, above the cap of 10000", used)
	}
	if b.Stats().MessagesDropped.Load() == 0 {
		t.Fatal("nothing was dropped at the cap")
	}
	// A session that ends gives its bytes back.
	c, _ := rawConnect(t, b.addr, mqtt.Version311, "off1", nil) // clean start discards the session
	c.close()
	eventually(t, "bytes released", func() bool { return b.OutboundBytes() <= 5000 })
}

// recordingHooks records what the broker tells it and refuses topics under "deny/".
type recordingHooks struct {
	mu     sync.Mutex
	events []string
}

func (h *recordingHooks) add(s string) {
	h.mu.Lock()
	h.events = append(h.events, s)
	h.mu.Unlock()
}

func (h *recordingHooks) has(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e == s {
			return true
		}
	}
	return false
}

func (h *recordingHooks) AuthOnPublish(c *ClientInfo, req *PublishRequest) mqtt.ReasonCode {
	if strings.HasPrefix(req.Topic, "deny/") {
		return mqtt.NotAuthorized
	}
	if strings.HasPrefix(req.Topic, "rewrite/") {
		req.Topic = "rewritten/" + strings.TrimPrefix(req.Topic, "rewrite/")
	}
	return mqtt.Success
}

func (h *recordingHooks) AuthOnSubscribe(c *ClientInfo, reqs []SubscriptionRequest, codes []mqtt.ReasonCode) {
	for i := range reqs {
		if strings.HasPrefix(reqs[i].Filter, "deny/") {
			codes[i] = mqtt.NotAuthorized
		}
	}
}

func (h *recordingHooks) OnRegister(c *ClientInfo) { h.add("register " + c.ClientID) }
func (h *recordingHooks) OnSubscribe(c *ClientInfo, subs []SubscriptionRequest) {
	h.add("subscribe " + c.ClientID + " " + subs[0].Filter)
}
func (h *recordingHooks) OnUnsubscribe(c *ClientInfo, f []string) { h.add("unsubscribe " + f[0]) }
func (h *recordingHooks) OnDeliver(c *ClientInfo, topic string, _ []byte) {
	h.add("deliver " + c.ClientID + " " + topic)
}
func (h *recordingHooks) OnClientOffline(c *ClientInfo) { h.add("offline " + c.ClientID) }
func (h *recordingHooks) OnClientGone(c *ClientInfo)    { h.add("gone " + c.ClientID) }
func (h *recordingHooks) OnSessionExpired(id string)    { h.add("expired " + id) }

func TestHooks(t *testing.T) {
	h := &recordingHooks{}
	b := startBroker(t, func(o *Options) { o.Hooks = h })
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "hooked", nil)
	codes := c.subscribe(nil, mqtt.Subscription{Filter: "rewritten/#", QoS: 1}, mqtt.Subscription{Filter: "deny/#", QoS: 1})
	if codes[0] != mqtt.GrantedQoS1 || codes[1] != mqtt.NotAuthorized {
		t.Fatalf("SUBACK %v", codes)
	}
	if code := c.publish(&mqtt.Publish{QoS: 1, Topic: "deny/x", Payload: []byte("no")}); code != mqtt.NotAuthorized {
		t.Fatalf("refused publish: %v", code)
	}
	c.publish(&mqtt.Publish{QoS: 1, Topic: "rewrite/x", Payload: []byte("yes")})
	if p := c.expectPublish(); p.Topic != "rewritten/x" {
		t.Fatalf("delivered on %q, want the rewritten topic", p.Topic)
	}
	c.send(&mqtt.Unsubscribe{PacketID: 99, Filters: []string{"rewritten/#"}})
	c.readType(mqtt.UNSUBACK)
	c.send(&mqtt.Disconnect{})
	c.expectClosed(5 * time.Second)
	for _, e := range []string{"register hooked", "subscribe hooked rewritten/#", "deliver hooked rewritten/x",
		"unsubscribe rewritten/#", "gone hooked"} {
		eventually(t, e, func() bool { return h.has(e) })
	}
}

func TestRetainedDeliveryIgnoresTheQueueLimit(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxQueued = 10 })
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "pub", nil)
	for i := range 50 {
		pub.publish(&mqtt.Publish{QoS: 1, Retain: true, Topic: "many/" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Payload: []byte("r")})
	}
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "sub", nil)
	sub.subscribe(nil, mqtt.Subscription{Filter: "many/#", QoS: 0})
	for i := range 50 {
		if p := sub.expectPublish(); !p.Retain {
			t.Fatalf("message %d without RETAIN", i)
		}
	}
}

// denySecret allows everything but receiving topics under a/secret.
type denySecret struct{}

func (denySecret) CanPublish(string, string, string) bool   { return true }
func (denySecret) CanSubscribe(string, string, string) bool { return true }
func (denySecret) CanReceive(_, _, topic string) bool       { return !strings.HasPrefix(topic, "a/secret") }

func TestReadRulesApplyToEveryDelivery(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.Authorizer = denySecret{} })
	sub, _ := rawConnect(t, b.addr, mqtt.Version311, "reader", nil)
	sub.subscribe(nil, mqtt.Subscription{Filter: "a/#", QoS: 1})
	pub, _ := rawConnect(t, b.addr, mqtt.Version311, "writer", nil)
	pub.publish(&mqtt.Publish{QoS: 1, Topic: "a/secret/x", Payload: []byte("hidden")})
	pub.publish(&mqtt.Publish{QoS: 1, Topic: "a/open", Payload: []byte("shown")})
	if p := sub.expectPublish(); p.Topic != "a/open" {
		t.Fatalf("received %q: the read rule was not applied", p.Topic)
	}
	if b.Stats().DroppedNotAuthorized.Load() != 1 {
		t.Fatalf("dropped not authorized = %d", b.Stats().DroppedNotAuthorized.Load())
	}
}
