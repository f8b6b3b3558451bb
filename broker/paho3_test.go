package broker

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// paho3 connects a paho.mqtt.golang (3.1.1) client.
func paho3(t testing.TB, addr, id string, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func wait(t testing.TB, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

func TestPaho311PublishSubscribeAllQoS(t *testing.T) {
	b := startBroker(t, nil)
	sub := paho3(t, b.addr, "sub", nil)
	got := make(chan paho.Message, 10)
	wait(t, sub.Subscribe("a/+", 2, func(_ paho.Client, m paho.Message) { got <- m }))
	pub := paho3(t, b.addr, "pub", nil)
	for q := byte(0); q <= 2; q++ {
		wait(t, pub.Publish("a/b", q, false, []byte{'0' + q}))
		select {
		case m := <-got:
			if m.Topic() != "a/b" || m.Qos() != q || string(m.Payload()) != string([]byte{'0' + q}) {
				t.Fatalf("QoS %d: got topic %q qos %d payload %q", q, m.Topic(), m.Qos(), m.Payload())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("QoS %d: nothing received", q)
		}
	}
}
