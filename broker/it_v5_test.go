package broker

// Integration tests of what MQTT 5.0 adds: session and message expiry, topic
// aliases, maximum packet sizes, forwarded properties and reason codes.

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// sessionExpiry sets the CONNECT's Session Expiry Interval.
func sessionExpiry(sec uint32) func(*mqtt.Connect) {
	return func(cp *mqtt.Connect) {
		cp.Properties.SessionExpiry = sec
		cp.Properties.Set(mqtt.PropSessionExpiry)
	}
}

// reconnect5 connects raw client id with clean start 0 and the session expiry
// given, and returns the session present flag.
func reconnect5(t *testing.T, b *testBroker, id string, expiry uint32) (*rawClient, bool) {
	t.Helper()
	c := dialRaw(t, b.addr)
	ack := c.connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: id}, sessionExpiry(expiry))
	if ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	return c, ack.SessionPresent
}

// Session Expiry Interval (MQTT 5.0 section 3.1.2.11.2): the session outlives the
// connection for the interval, then ends; a reconnection after that finds no
// session [MQTT-3.2.2-3].
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "expiring", sessionExpiry(1))
	c.subscribe(nil, mqtt.Subscription{Filter: "expiring/t", QoS: 1})
	c.send(&mqtt.Disconnect{})
	c.expectClosed(itTimeout)

	c, present := reconnect5(t, b, "expiring", 1)
	if !present {
		t.Fatal("reconnection within the expiry interval: session not present")
	}
	c.send(&mqtt.Disconnect{})
	c.expectClosed(itTimeout)
	start := time.Now()
	eventually(t, "session expired", func() bool { return sessions(b) == 0 })
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("session gone after %v, before its expiry interval of 1 s", d)
	}
	c, present = reconnect5(t, b, "expiring", 1)
	if present {
		t.Fatal("reconnection after the expiry interval: session present")
	}
	if code := c.publish(&mqtt.Publish{Topic: "expiring/t", QoS: 1, Payload: []byte("x")}); code != mqtt.NoMatchingSubscribers {
		t.Fatalf("the expired session's subscription remains: PUBACK %v", code)
	}
}

// DISCONNECT may change the session expiry interval (MQTT 5.0 section 3.14.2.2.2):
// to 0, and the session ends with the connection; from 1 s to 60 s, and the session
// outlives its first interval.
func TestDisconnectChangesSessionExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)

	c, _ := rawConnect(t, b.addr, mqtt.Version5, "to-zero", sessionExpiry(60))
	d := &mqtt.Disconnect{}
	d.Properties.SessionExpiry = 0
	d.Properties.Set(mqtt.PropSessionExpiry)
	c.send(d)
	c.expectClosed(itTimeout)
	if _, present := reconnect5(t, b, "to-zero", 60); present {
		t.Error("session expiry set to 0 at DISCONNECT: session present")
	}

	c, _ = rawConnect(t, b.addr, mqtt.Version5, "longer", sessionExpiry(1))
	d = &mqtt.Disconnect{}
	d.Properties.SessionExpiry = 60
	d.Properties.Set(mqtt.PropSessionExpiry)
	c.send(d)
	c.expectClosed(itTimeout)
	time.Sleep(1500 * time.Millisecond) // past the interval of the CONNECT, not of the DISCONNECT
	if _, present := reconnect5(t, b, "longer", 60); !present {
		t.Error("session expiry raised at DISCONNECT: session gone after the CONNECT's interval")
	}
}

// [MQTT-3.14.2-2]: a non-zero Session Expiry Interval at DISCONNECT after 0 at
// CONNECT is a protocol error: the broker sends DISCONNECT 0x82 and closes, and as
// the connection did not end normally, the will is published.
func TestDisconnectExpiryAfterZero(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-expiry0", "will/#")
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "expiry0", withWill("will/expiry0"))
	d := &mqtt.Disconnect{}
	d.Properties.SessionExpiry = 30
	d.Properties.Set(mqtt.PropSessionExpiry)
	c.send(d)
	c.expectDisconnect(mqtt.ProtocolError, itTimeout)
	expectWill(t, w, "will/expiry0")
}

// Message Expiry Interval (MQTT 5.0 section 3.3.2.3.3): a message that expires
// while queued for an offline session is not delivered; one that does not is
// delivered with the interval reduced by the time it waited [MQTT-3.3.2-6].
func TestMessageExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "mexp", sessionExpiry(60))
	c.subscribe(nil, mqtt.Subscription{Filter: "mexp/t", QoS: 1})
	c.send(&mqtt.Disconnect{})
	c.expectClosed(itTimeout)

	pub := connect5(t, b.addr, "mexp-pub", nil)
	for _, m := range []struct {
		payload string
		expiry  *uint32
	}{{"short", u32(1)}, {"long", u32(60)}, {"never", nil}} {
		pub.pub(t, &pahov5.Publish{Topic: "mexp/t", QoS: 1, Payload: []byte(m.payload),
			Properties: &pahov5.PublishProperties{MessageExpiry: m.expiry}})
	}
	time.Sleep(2 * time.Second) // the first message's interval passes while it is queued

	c, present := reconnect5(t, b, "mexp", 60)
	if !present {
		t.Fatal("session not present")
	}
	p := c.expectPublish()
	if string(p.Payload) != "long" {
		t.Fatalf("got %s first, want the message that has not expired", describePacket(p))
	}
	if !p.Properties.Has(mqtt.PropMessageExpiry) || p.Properties.MessageExpiry > 58 || p.Properties.MessageExpiry < 50 {
		t.Errorf("Message Expiry Interval present %v value %d, want 58 or a little less",
			p.Properties.Has(mqtt.PropMessageExpiry), p.Properties.MessageExpiry)
	}
	c.send(&mqtt.Puback{PacketID: p.PacketID})
	p = c.expectPublish()
	if string(p.Payload) != "never" || p.Properties.Has(mqtt.PropMessageExpiry) {
		t.Errorf("got %s with expiry %v, want the message without expiry", describePacket(p), p.Properties.Has(mqtt.PropMessageExpiry))
	}
	c.send(&mqtt.Puback{PacketID: p.PacketID})
	if before := c.flush("mexp/t"); len(before) != 0 {
		t.Errorf("got %s", describePackets(before))
	}
	if b.Stats().MessagesExpired.Load() < 1 {
		t.Error("MessagesExpired not counted")
	}
}

// Inbound topic aliases (MQTT 5.0 section 3.3.2.3.4): a PUBLISH with a topic and an
// alias sets the alias, one with an empty topic and the alias uses it, and a new
// topic with the alias replaces the mapping.
func TestTopicAliasInbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	sub := connect5(t, b.addr, "alias-in-sub", nil)
	sub.sub(t, nil, pahov5.SubscribeOptions{Topic: "alias/#", QoS: 1})
	c, ack := rawConnect(t, b.addr, mqtt.Version5, "alias-in", nil)
	if ack.Properties.TopicAliasMaximum == 0 {
		t.Fatal("CONNACK announces no Topic Alias Maximum")
	}
	send := func(topic, payload string) {
		t.Helper()
		p := &mqtt.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}
		p.Properties.TopicAlias = 1
		p.Properties.Set(mqtt.PropTopicAlias)
		if code := c.publish(p); code != mqtt.Success {
			t.Fatalf("PUBACK %v", code)
		}
	}
	send("alias/a", "1")
	send("", "2")
	send("alias/b", "3")
	send("", "4")
	for _, want := range []string{"alias/a=1", "alias/a=2", "alias/b=3", "alias/b=4"} {
		m := sub.next(t)
		if got := m.Topic + "=" + string(m.Payload); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

// Outbound topic aliases: a client that announces a Topic Alias Maximum gets
// aliases, up to that maximum [MQTT-3.3.2-8]; the second message to a topic comes
// with an empty topic and the alias.
func TestTopicAliasOutbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "alias-out", func(cp *mqtt.Connect) {
		cp.Properties.TopicAliasMaximum = 2
		cp.Properties.Set(mqtt.PropTopicAliasMaximum)
	})
	c.subscribe(nil, mqtt.Subscription{Filter: "aout/#", QoS: 0})
	pub := paho3(t, b.addr, "alias-out-pub", nil)
	topics := []string{"aout/a", "aout/a", "aout/b", "aout/c", "aout/c", "aout/a", "aout/b"}
	for _, tp := range topics {
		wait(t, pub.Publish(tp, 0, false, tp))
	}
	aliases := map[uint16]string{}
	for i, want := range topics {
		p := c.expectPublish()
		topic := p.Topic
		if p.Properties.Has(mqtt.PropTopicAlias) {
			a := p.Properties.TopicAlias
			if a == 0 || a > 2 {
				t.Fatalf("message %d: alias %d beyond the client's maximum of 2", i, a)
			}
			if topic == "" {
				topic = aliases[a]
			} else {
				aliases[a] = topic
			}
		} else if topic == "" {
			t.Fatalf("message %d: empty topic without alias", i)
		}
		if topic != want || string(p.Payload) != want {
			t.Fatalf("message %d: resolves to %q payload %q, want %q", i, topic, p.Payload, want)
		}
		if i == 1 && (p.Topic != "" || !p.Properties.Has(mqtt.PropTopicAlias)) {
			t.Errorf("second message to aout/a: topic %q alias %v, want an empty topic and the alias",
				p.Topic, p.Properties.Has(mqtt.PropTopicAlias))
		}
	}
}

// [MQTT-3.3.2-9]: a topic alias above the broker's Topic Alias Maximum: DISCONNECT
// 0x94 and close.
func TestTopicAliasAboveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.TopicAliasMaximum = 2 })
	c, ack := rawConnect(t, b.addr, mqtt.Version5, "alias-max", nil)
	if ack.Properties.TopicAliasMaximum != 2 {
		t.Fatalf("CONNACK Topic Alias Maximum %d, want 2", ack.Properties.TopicAliasMaximum)
	}
	p := &mqtt.Publish{Topic: "alias/t", QoS: 1, PacketID: 1, Payload: []byte("x")}
	p.Properties.TopicAlias = 3
	p.Properties.Set(mqtt.PropTopicAlias)
	c.send(p)
	c.expectDisconnect(mqtt.TopicAliasInvalid, itTimeout)
}

// [MQTT-3.1.2-24] / [MQTT-3.1.2-25]: a message larger than the client's Maximum
// Packet Size is not sent to it, and the ones after it are.
func TestMaximumPacketSizeOfClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "small", func(cp *mqtt.Connect) {
		cp.Properties.MaximumPacketSize = 100
		cp.Properties.Set(mqtt.PropMaximumPacketSize)
	})
	c.subscribe(nil, mqtt.Subscription{Filter: "mps/t", QoS: 1})
	pub := connect5(t, b.addr, "mps-pub", nil)
	dropped := b.Stats().MessagesDropped.Load()
	pub.pub(t, &pahov5.Publish{Topic: "mps/t", QoS: 1, Payload: bytes.Repeat([]byte("x"), 1000)})
	pub.pub(t, &pahov5.Publish{Topic: "mps/t", QoS: 1, Payload: []byte("small")})
	p := c.expectPublish()
	if string(p.Payload) != "small" {
		t.Fatalf("got a PUBLISH of %d bytes payload, want the small one", len(p.Payload))
	}
	c.send(&mqtt.Puback{PacketID: p.PacketID})
	if before := c.flush("mps/t"); len(before) != 0 {
		t.Fatalf("got %s", describePackets(before))
	}
	if b.Stats().MessagesDropped.Load() <= dropped {
		t.Error("the large message is not counted as dropped")
	}
}

// Options.MaxPacketSize is announced in CONNACK, and a larger PUBLISH gets
// DISCONNECT 0x95 (Packet too large) [MQTT-3.2.2-15] and the close.
func TestMaxPacketSizeOption(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxPacketSize = 500 })
	c, ack := rawConnect(t, b.addr, mqtt.Version5, "too-large", nil)
	if !ack.Properties.Has(mqtt.PropMaximumPacketSize) || ack.Properties.MaximumPacketSize != 500 {
		t.Fatalf("CONNACK Maximum Packet Size %d, want 500", ack.Properties.MaximumPacketSize)
	}
	c.send(&mqtt.Publish{Topic: "large/t", QoS: 1, PacketID: 1, Payload: bytes.Repeat([]byte("x"), 1000)})
	c.expectDisconnect(mqtt.PacketTooLarge, itTimeout)

	// 3.1.1 has no DISCONNECT from the server: the connection is closed.
	c3, _ := rawConnect(t, b.addr, mqtt.Version311, "too-large-3", nil)
	c3.send(&mqtt.Publish{Topic: "large/t", Payload: bytes.Repeat([]byte("x"), 1000)})
	if got := c3.expectClosed(itTimeout); len(got) != 0 {
		t.Errorf("got %s", describePackets(got))
	}
}

// [MQTT-3.3.2-17] [MQTT-3.3.2-18] and section 3.3.2.3: user properties (in order),
// content type, response topic, correlation data and the payload format indicator
// reach the subscriber unaltered.
func TestPropertiesPassedThrough(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	sub := connect5(t, b.addr, "props-sub", nil)
	sub.sub(t, nil, pahov5.SubscribeOptions{Topic: "props/t", QoS: 2})
	pub := connect5(t, b.addr, "props-pub", nil)
	user := pahov5.UserProperties{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"}}
	pub.pub(t, &pahov5.Publish{Topic: "props/t", QoS: 2, Payload: []byte(`{"ok":true}`), Properties: &pahov5.PublishProperties{
		User: user, ContentType: "application/json", ResponseTopic: "props/reply",
		CorrelationData: []byte{0, 1, 2, 0xff}, PayloadFormat: byteP(1),
	}})
	m := sub.next(t)
	p := m.Properties
	if p == nil {
		t.Fatal("no properties")
	}
	if !slices.Equal(p.User, user) {
		t.Errorf("user properties %v, want %v", p.User, user)
	}
	if p.ContentType != "application/json" || p.ResponseTopic != "props/reply" ||
		!bytes.Equal(p.CorrelationData, []byte{0, 1, 2, 0xff}) || p.PayloadFormat == nil || *p.PayloadFormat != 1 {
		t.Errorf("properties %+v", p)
	}
}

// Payload Format Indicator 1 with a payload that is not UTF-8: the broker may
// check it [MQTT-3.3.2-4] and does, answering PUBACK 0x99 (Payload format
// invalid) and forwarding nothing.
func TestPayloadFormatInvalid(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "pfi", nil)
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "pfi/t", QoS: 1})
	pr := c.pub(t, &pahov5.Publish{Topic: "pfi/t", QoS: 1, Payload: []byte{0xff, 0xfe, 0xfd},
		Properties: &pahov5.PublishProperties{PayloadFormat: byteP(1)}})
	if pr.ReasonCode != byte(mqtt.PayloadFormatInvalid) {
		t.Errorf("PUBACK 0x%02x, want 0x99", pr.ReasonCode)
	}
	if got := c.flush(t, "pfi/t"); len(got) != 0 {
		t.Errorf("invalid message forwarded: %v", payloadsOf(got))
	}
	pr = c.pub(t, &pahov5.Publish{Topic: "pfi/t", QoS: 1, Payload: []byte("héllo"),
		Properties: &pahov5.PublishProperties{PayloadFormat: byteP(1)}})
	if pr.ReasonCode != 0 {
		t.Errorf("valid UTF-8: PUBACK 0x%02x", pr.ReasonCode)
	}
}

// PUBACK 0x10 (No matching subscribers) when nobody subscribes, 0x00 otherwise.
func TestNoMatchingSubscribers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "nomatch", nil)
	if pr := c.pub(t, &pahov5.Publish{Topic: "nomatch/t", QoS: 1, Payload: []byte("x")}); pr.ReasonCode != byte(mqtt.NoMatchingSubscribers) {
		t.Errorf("PUBACK 0x%02x, want 0x10", pr.ReasonCode)
	}
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "nomatch/+", QoS: 1})
	if pr := c.pub(t, &pahov5.Publish{Topic: "nomatch/t", QoS: 1, Payload: []byte("x")}); pr.ReasonCode != 0 {
		t.Errorf("with a subscriber: PUBACK 0x%02x, want 0x00", pr.ReasonCode)
	}
}

// Request Response Information 1 gets Response Information in CONNACK (MQTT 5.0
// section 3.2.2.3.15); without it, none [MQTT-3.1.2-28].
func TestRequestResponseInformation(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "rri", func(cp *pahov5.Connect) {
		cp.Properties = &pahov5.ConnectProperties{RequestResponseInfo: true}
	})
	if c.ack.Properties == nil || c.ack.Properties.ResponseInfo == "" {
		t.Errorf("no Response Information: %+v", c.ack.Properties)
	}
	c = connect5(t, b.addr, "no-rri", nil)
	if c.ack.Properties != nil && c.ack.Properties.ResponseInfo != "" {
		t.Errorf("Response Information %q without request", c.ack.Properties.ResponseInfo)
	}
}

// Clients may not publish to $SYS: a 5.0 client gets PUBACK 0x87 (Not
// authorized), and nothing is forwarded.
func TestPublishToSysRefused(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c := connect5(t, b.addr, "sys-pub", nil)
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "$SYS/#", QoS: 1})
	pr := c.pub(t, &pahov5.Publish{Topic: "$SYS/broker/version", QoS: 1, Payload: []byte("fake")})
	if pr.ReasonCode != byte(mqtt.NotAuthorized) {
		t.Errorf("PUBACK 0x%02x, want 0x87", pr.ReasonCode)
	}
	c.sub(t, nil, pahov5.SubscribeOptions{Topic: "sys-marker", QoS: 1})
	for _, m := range c.flush(t, "sys-marker") {
		if strings.HasPrefix(m.Topic, "$SYS") && string(m.Payload) == "fake" {
			t.Errorf("the refused message was forwarded")
		}
	}
}

// A queued message keeps its Subscription Identifier while later messages are
// routed to other subscriptions with other identifiers.
func TestQueuedMessageKeepsSubscriptionID(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	withID := func(id uint32) *mqtt.Properties {
		p := &mqtt.Properties{SubscriptionIDs: []uint32{id}}
		p.Set(mqtt.PropSubscriptionID)
		return p
	}
	a, _ := rawConnect(t, b.addr, mqtt.Version5, "subid-a", sessionExpiry(60))
	a.subscribe(withID(5), mqtt.Subscription{Filter: "subid/a", QoS: 1})
	a.send(&mqtt.Disconnect{})
	a.expectClosed(itTimeout)
	other, _ := rawConnect(t, b.addr, mqtt.Version5, "subid-b", nil)
	other.subscribe(withID(9), mqtt.Subscription{Filter: "subid/b", QoS: 0})

	pub, _ := rawConnect(t, b.addr, mqtt.Version5, "subid-pub", nil)
	pub.publish(&mqtt.Publish{Topic: "subid/a", QoS: 1, Payload: []byte("queued")})
	for range 20 { // routes that reuse the broker's match results
		pub.publish(&mqtt.Publish{Topic: "subid/b", QoS: 1, Payload: []byte("other")})
	}
	a, _ = reconnect5(t, b, "subid-a", 60)
	m := a.expectPublish()
	if ids := m.Properties.SubscriptionIDs; string(m.Payload) != "queued" || len(ids) != 1 || ids[0] != 5 {
		t.Fatalf("got %q with subscription identifiers %v, want \"queued\" with [5]", m.Payload, ids)
	}
}
