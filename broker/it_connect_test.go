package broker

// Integration tests of CONNECT and CONNACK over real sockets: protocol versions,
// client identifiers, the CONNECT timeout, keep alive and takeover.

import (
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// One listener serves 3.1 (MQIsdp), 3.1.1 and 5.0 clients, and a message goes
// from each to the others.
func TestConnectAllVersionsOnOneListener(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)

	c31, ack31 := rawConnect(t, b.addr, mqtt.Version31, "v31", nil)
	if ack31.SessionPresent {
		t.Error("3.1: session present on a clean session")
	}
	if codes := c31.subscribe(nil, mqtt.Subscription{Filter: "versions/#", QoS: 1}); codes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("3.1 SUBACK %v", codes)
	}
	h3, got3 := collect()
	c311 := paho3(t, b.addr, "v311", nil)
	wait(t, c311.Subscribe("versions/#", 1, h3))
	c5 := connect5(t, b.addr, "v5", nil)
	c5.sub(t, nil, pahov5.SubscribeOptions{Topic: "versions/#", QoS: 1})

	// 3.1 publishes; 3.1.1 and 5.0 receive.
	if code := c31.publish(&mqtt.Publish{Topic: "versions/31", QoS: 1, Payload: []byte("from 3.1")}); code != mqtt.Success {
		t.Fatalf("3.1 PUBACK %v", code)
	}
	if m := next3(t, got3); m.Topic() != "versions/31" || string(m.Payload()) != "from 3.1" {
		t.Fatalf("3.1.1 got %q %q", m.Topic(), m.Payload())
	}
	if m := c5.next(t); m.Topic != "versions/31" || string(m.Payload) != "from 3.1" {
		t.Fatalf("5.0 got %q %q", m.Topic, m.Payload)
	}
	p := c31.expectPublish() // its own message
	if p.Topic != "versions/31" {
		t.Fatalf("3.1 got %s", describePacket(p))
	}
	c31.send(&mqtt.Puback{PacketID: p.PacketID})

	// 3.1.1 and 5.0 publish; 3.1 receives both.
	wait(t, c311.Publish("versions/311", 1, false, "from 3.1.1"))
	c5.pub(t, &pahov5.Publish{Topic: "versions/5", QoS: 1, Payload: []byte("from 5.0")})
	want := map[string]string{"versions/311": "from 3.1.1", "versions/5": "from 5.0"}
	for range 2 {
		p := c31.expectPublish()
		if want[p.Topic] != string(p.Payload) {
			t.Fatalf("3.1 got %s", describePacket(p))
		}
		delete(want, p.Topic)
		c31.send(&mqtt.Puback{PacketID: p.PacketID})
	}
}

// [MQTT-3.1.2-2]: an unsupported protocol level is answered with CONNACK return
// code 0x01, then the connection is closed.
func TestConnectUnsupportedProtocolLevel(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, level := range []byte{2, 6, 0x83} {
		c := dialRaw(t, b.addr)
		// CONNECT: protocol name "MQTT", the level, clean session, keep alive 60, client id "x".
		c.write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', level, 0x02, 0, 60, 0, 1, 'x'})
		got := c.expectClosed(itTimeout)
		if len(got) != 1 || got[0].Type() != mqtt.CONNACK {
			t.Fatalf("level %d: got %s, want one CONNACK", level, describePackets(got))
		}
		if code := got[0].(*mqtt.Connack).ReasonCode; code != mqtt.UnsupportedProtocolVersion {
			t.Errorf("level %d: CONNACK %v, want return code 0x01", level, code)
		}
	}
}

// An empty client identifier: 5.0 gets an Assigned Client Identifier
// [MQTT-3.2.2-16]; 3.1.1 is accepted with Clean Session 1 [MQTT-3.1.3-6] and
// refused with return code 0x02 with Clean Session 0 [MQTT-3.1.3-8].
func TestConnectEmptyClientID(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)

	c5 := connect5(t, b.addr, "", nil)
	if c5.ack.Properties == nil || c5.ack.Properties.AssignedClientID == "" {
		t.Fatalf("5.0 CONNACK without Assigned Client Identifier: %+v", c5.ack.Properties)
	}
	// The assigned identifier is the client's: a second client with it takes over.
	assigned := c5.ack.Properties.AssignedClientID
	connect5(t, b.addr, assigned, nil)
	select {
	case d := <-c5.disc:
		if d.ReasonCode != byte(mqtt.SessionTakenOver) {
			t.Errorf("DISCONNECT 0x%02x, want 0x8E", d.ReasonCode)
		}
	case <-time.After(itTimeout):
		t.Fatal("client with the assigned id not taken over")
	}

	c3 := paho3(t, b.addr, "", nil)
	if !c3.IsConnected() {
		t.Fatal("3.1.1 with an empty client id and clean session not connected")
	}
	wait(t, c3.Publish("empty/id", 1, false, "x"))

	raw := dialRaw(t, b.addr)
	ack := raw.connect(&mqtt.Connect{Version: mqtt.Version311, CleanStart: false}, nil)
	if ack.ReasonCode != mqtt.ClientIdentifierNotValid {
		t.Fatalf("3.1.1 clean session 0, empty id: CONNACK %v, want 0x02", ack.ReasonCode)
	}
	raw.expectClosed(itTimeout)
}

// A client identifier longer than MaxClientIDLength is refused: 0x02 for 3.1.1,
// 0x85 for 5.0; one of that length is accepted.
func TestConnectClientIDTooLong(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.MaxClientIDLength = 8 })
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		c := dialRaw(t, b.addr)
		ack := c.connect(&mqtt.Connect{Version: v, ClientID: "123456789", CleanStart: true}, nil)
		if ack.ReasonCode != mqtt.ClientIdentifierNotValid { // 0x02 in 3.1.1, 0x85 in 5.0
			t.Errorf("%v: CONNACK %v, want client identifier not valid", v, ack.ReasonCode)
		}
		c.expectClosed(itTimeout)
		rawConnect(t, b.addr, v, "12345678", nil)
	}
}

// A connection that sends no CONNECT is closed after the CONNECT timeout.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.ConnectTimeout = 300 * time.Millisecond })
	start := time.Now()
	c := dialRaw(t, b.addr)
	if got := c.expectClosed(5 * time.Second); len(got) != 0 {
		t.Fatalf("got %s before the close", describePackets(got))
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the CONNECT timeout", d)
	}
}

// [MQTT-3.1.0-1]: a first packet other than CONNECT closes the connection.
func TestConnectFirstPacketNotConnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for name, pkt := range map[string][]byte{
		"PINGREQ":   {0xC0, 0},
		"PUBLISH":   {0x30, 5, 0, 1, 'a', 'h', 'i'},
		"SUBSCRIBE": {0x82, 6, 0, 1, 0, 1, 'a', 0},
	} {
		c := dialRaw(t, b.addr)
		c.write(pkt)
		if got := c.expectClosed(itTimeout); len(got) != 0 {
			t.Errorf("%s first: got %s before the close", name, describePackets(got))
		}
	}
	// The broker still serves.
	rawConnect(t, b.addr, mqtt.Version311, "after", nil)
}

// [MQTT-3.1.2-24] (3.1.1) and [MQTT-3.1.2-22] (5.0): a client silent for one and a
// half times its keep alive is disconnected; a 5.0 client gets DISCONNECT 0x8D
// first.
func TestKeepAliveEnforced(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, b.addr)
			start := time.Now() // before the broker can have started the clock
			if ack := c.connect(&mqtt.Connect{Version: v, ClientID: "ka-" + v.String(), CleanStart: true, KeepAlive: 1}, nil); ack.ReasonCode != mqtt.Success {
				t.Fatalf("CONNACK %v", ack.ReasonCode)
			}
			got := c.expectClosed(5 * time.Second)
			d := time.Since(start)
			if d < 1500*time.Millisecond || d > 3*time.Second {
				t.Errorf("closed after %v, want 1.5 s to 3 s", d)
			}
			if v == mqtt.Version5 {
				if len(got) != 1 || got[0].Type() != mqtt.DISCONNECT || got[0].(*mqtt.Disconnect).ReasonCode != mqtt.KeepAliveTimeout {
					t.Errorf("got %s before the close, want DISCONNECT 0x8D", describePackets(got))
				}
			} else if len(got) != 0 {
				t.Errorf("got %s before the close, want nothing", describePackets(got))
			}
		})
	}
}

// Packets within the keep alive keep the connection open past 1.5 times it.
func TestKeepAliveResetByPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version311, "pinger", func(cp *mqtt.Connect) { cp.KeepAlive = 1 })
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		// Pacing, not synchronisation: a PINGREQ every half keep alive.
		time.Sleep(500 * time.Millisecond)
		c.send(&mqtt.Pingreq{})
		if p := c.read(); p.Type() != mqtt.PINGRESP {
			t.Fatalf("got %v, want PINGRESP", p.Type())
		}
	}
}

// ServerKeepAlive replaces the client's keep alive: a 5.0 CONNACK carries Server
// Keep Alive [MQTT-3.2.2-21], and the broker enforces the server's value.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.ServerKeepAlive = 1 })
	c := dialRaw(t, b.addr)
	start := time.Now()
	ack := c.connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "ska", CleanStart: true, KeepAlive: 600}, nil)
	if !ack.Properties.Has(mqtt.PropServerKeepAlive) || ack.Properties.ServerKeepAlive != 1 {
		t.Fatalf("CONNACK Server Keep Alive present %v value %d, want 1",
			ack.Properties.Has(mqtt.PropServerKeepAlive), ack.Properties.ServerKeepAlive)
	}
	c.expectDisconnect(mqtt.KeepAliveTimeout, 5*time.Second)
	if d := time.Since(start); d < 1500*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v, want 1.5 s to 3 s", d)
	}

	// paho.golang follows the Server Keep Alive and stays connected.
	c5 := connect5(t, b.addr, "ska-paho", func(cp *pahov5.Connect) { cp.KeepAlive = 600 })
	if p := c5.ack.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 1 {
		t.Fatalf("paho CONNACK properties %+v", c5.ack.Properties)
	}
}

// [MQTT-3.1.4-3]: a second connection with the same client id takes over; the
// first, a 5.0 one, gets DISCONNECT 0x8E and is closed. Session Present follows
// clean start and the session's expiry [MQTT-3.2.2-2] [MQTT-3.2.2-3].
func TestTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	expiry := func(cp *mqtt.Connect) {
		cp.Properties.SessionExpiry = 60
		cp.Properties.Set(mqtt.PropSessionExpiry)
	}

	a, ack := rawConnect(t, b.addr, mqtt.Version5, "dup", expiry)
	if ack.SessionPresent {
		t.Fatal("first connection: session present")
	}
	a.subscribe(nil, mqtt.Subscription{Filter: "takeover/t", QoS: 1})

	// Clean start 0 resumes the session.
	bc := dialRaw(t, b.addr)
	ack = bc.connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "dup"}, expiry)
	if ack.ReasonCode != mqtt.Success || !ack.SessionPresent {
		t.Fatalf("second connection, clean start 0: CONNACK %v present %v, want success, present", ack.ReasonCode, ack.SessionPresent)
	}
	a.expectDisconnect(mqtt.SessionTakenOver, itTimeout)
	// The subscription came with the session.
	if before := bc.flush("takeover/t"); len(before) != 0 {
		t.Fatalf("got %s", describePackets(before))
	}

	// Clean start 1 discards it.
	cc := dialRaw(t, b.addr)
	ack = cc.connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "dup", CleanStart: true}, expiry)
	if ack.ReasonCode != mqtt.Success || ack.SessionPresent {
		t.Fatalf("third connection, clean start 1: CONNACK %v present %v, want success, not present", ack.ReasonCode, ack.SessionPresent)
	}
	bc.expectDisconnect(mqtt.SessionTakenOver, itTimeout)
	if code := cc.publish(&mqtt.Publish{Topic: "takeover/t", QoS: 1, Payload: []byte("x")}); code != mqtt.NoMatchingSubscribers {
		t.Fatalf("subscription of the discarded session still there: PUBACK %v", code)
	}

	// A client id never seen, clean start 0: no session present.
	_, ack = rawConnect(t, b.addr, mqtt.Version5, "fresh", func(cp *mqtt.Connect) { cp.CleanStart = false; expiry(cp) })
	if ack.SessionPresent {
		t.Fatal("new client id with clean start 0: session present")
	}
}

// Takeover between 3.1.1 clients: the first connection is closed, and clean
// session 0 on both resumes the session.
func TestTakeover311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	lost := make(chan error, 1)
	h, _ := collect()
	o := pahov3.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID("dup3").
		SetAutoReconnect(false).SetProtocolVersion(4).SetCleanSession(false).SetDefaultPublishHandler(h).
		SetConnectionLostHandler(func(_ pahov3.Client, err error) { lost <- err })
	first := pahov3.NewClient(o)
	tok := first.Connect()
	if !tok.WaitTimeout(itTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { first.Disconnect(0) })

	_, present := paho3Session(t, b.addr, "dup3", false, h)
	if !present {
		t.Error("takeover with clean session 0: session present 0")
	}
	select {
	case <-lost:
	case <-time.After(itTimeout):
		t.Fatal("first connection not closed")
	}
	eventually(t, "one client connected", func() bool { return b.SysTopics()["$SYS/broker/clients/connected"] == "1" })
}
