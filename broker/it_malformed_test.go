package broker

// Integration tests of malformed packets after CONNECT.

import (
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// [MQTT-3.3.1-4]: a PUBLISH with QoS 3 is malformed: a 5.0 client gets DISCONNECT
// 0x81 (Malformed Packet) and the close (MQTT 5.0 section 4.13.1), a 3.1.1 client
// the close; the broker goes on serving the others.
func TestMalformedPublishQoS3(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	h, got := collect()
	other := paho3(t, b.addr, "bystander", nil)
	wait(t, other.Subscribe("malformed/t", 1, h))
	errors := b.Stats().ProtocolErrors.Load()

	// PUBLISH, QoS bits 11; topic "malformed/t", packet id 1, no properties, payload "x".
	pkt5 := []byte{0x36, 17, 0, 11, 'm', 'a', 'l', 'f', 'o', 'r', 'm', 'e', 'd', '/', 't', 0, 1, 0, 'x'}
	c5, _ := rawConnect(t, b.addr, mqtt.Version5, "malformed5", nil)
	c5.write(pkt5)
	c5.expectDisconnect(mqtt.MalformedPacket, itTimeout)

	pkt3 := []byte{0x36, 16, 0, 11, 'm', 'a', 'l', 'f', 'o', 'r', 'm', 'e', 'd', '/', 't', 0, 1, 'x'}
	c3, _ := rawConnect(t, b.addr, mqtt.Version311, "malformed3", nil)
	c3.write(pkt3)
	if before := c3.expectClosed(itTimeout); len(before) != 0 {
		t.Errorf("3.1.1: got %s before the close", describePackets(before))
	}
	if b.Stats().ProtocolErrors.Load() < errors+2 {
		t.Error("protocol errors not counted")
	}

	wait(t, other.Publish("malformed/t", 1, false, "still here"))
	if m := next3(t, got); string(m.Payload()) != "still here" {
		t.Fatalf("got %q", m.Payload())
	}
	rawConnect(t, b.addr, mqtt.Version5, "after-malformed", nil)
}
