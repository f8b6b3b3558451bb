package broker

// Integration tests of 3.1.1 and 5.0 clients exchanging messages.

import (
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// A 5.0 publisher and 3.1.1 and 5.0 subscribers: each subscriber gets the QoS of
// its subscription at most [MQTT-3.8.4-6] (3.1.1: [MQTT-3.8.4-6] too), the 5.0
// subscriber gets the properties, and the 3.1.1 one gets a 3.1.1 PUBLISH whose
// payload is exactly the message's (no property bytes).
func TestInterop5To311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	raw3, _ := rawConnect(t, b.addr, mqtt.Version311, "io-raw3", nil)
	raw3.subscribe(nil, mqtt.Subscription{Filter: "interop/t", QoS: 0})
	h, got3 := collect()
	p3 := paho3(t, b.addr, "io-paho3", nil)
	wait(t, p3.Subscribe("interop/t", 1, h))
	s5 := connect5(t, b.addr, "io-sub5", nil)
	s5.sub(t, nil, pahov5.SubscribeOptions{Topic: "interop/t", QoS: 2})
	s5q0 := connect5(t, b.addr, "io-sub5-q0", nil)
	s5q0.sub(t, nil, pahov5.SubscribeOptions{Topic: "interop/t", QoS: 0})

	pub := connect5(t, b.addr, "io-pub5", nil)
	pub.pub(t, &pahov5.Publish{Topic: "interop/t", QoS: 2, Payload: []byte("hello"), Properties: &pahov5.PublishProperties{
		ContentType: "text/plain", ResponseTopic: "interop/reply", CorrelationData: []byte("c"), PayloadFormat: byteP(1),
		MessageExpiry: u32(60), User: pahov5.UserProperties{{Key: "k", Value: "v"}},
	}})

	p := raw3.expectPublish()
	if p.QoS != 0 || p.Topic != "interop/t" || string(p.Payload) != "hello" {
		t.Errorf("3.1.1 QoS 0 subscriber: got %s, want QoS 0 payload \"hello\"", describePacket(p))
	}
	if m := next3(t, got3); m.Qos() != 1 || string(m.Payload()) != "hello" {
		t.Errorf("3.1.1 QoS 1 subscriber: got QoS %d %q", m.Qos(), m.Payload())
	}
	if m := s5q0.next(t); m.QoS != 0 || string(m.Payload) != "hello" {
		t.Errorf("5.0 QoS 0 subscriber: got QoS %d %q", m.QoS, m.Payload)
	}
	m := s5.next(t)
	if m.QoS != 2 || string(m.Payload) != "hello" || m.Properties == nil ||
		m.Properties.ContentType != "text/plain" || m.Properties.User.Get("k") != "v" {
		t.Errorf("5.0 QoS 2 subscriber: got QoS %d %q properties %+v", m.QoS, m.Payload, m.Properties)
	}
}

// A 3.1.1 publisher and a 5.0 subscriber: the message arrives with the
// publisher's QoS and no properties.
func TestInterop311To5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	s5 := connect5(t, b.addr, "io2-sub5", nil)
	s5.sub(t, nil, pahov5.SubscribeOptions{Topic: "interop2/#", QoS: 2})
	p3 := paho3(t, b.addr, "io2-pub3", nil)
	for q := byte(0); q <= 2; q++ {
		wait(t, p3.Publish("interop2/t", q, false, []byte{'a' + q}))
		m := s5.next(t)
		if m.QoS != q || string(m.Payload) != string([]byte{'a' + q}) {
			t.Errorf("got QoS %d %q, want QoS %d", m.QoS, m.Payload, q)
		}
		if p := m.Properties; p != nil && (p.ContentType != "" || len(p.User) > 0 || p.PayloadFormat != nil ||
			p.MessageExpiry != nil || p.ResponseTopic != "" || p.CorrelationData != nil) {
			t.Errorf("properties on a 3.1.1 message: %+v", p)
		}
	}
}
