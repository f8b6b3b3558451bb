package broker

// Integration tests of will messages: when they are published, when not, the will
// delay interval and the will properties.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	pahov5 "github.com/eclipse/paho.golang/paho"
)

// withWill sets a QoS 1 will on topic with payload "gone".
func withWill(topic string) func(*mqtt.Connect) {
	return func(cp *mqtt.Connect) {
		cp.WillFlag = true
		cp.WillQoS = 1
		cp.WillTopic = topic
		cp.WillPayload = []byte("gone")
	}
}

// watcher connects a 5.0 client subscribed to filter.
func watcher(t *testing.T, b *testBroker, id, filter string) *client5 {
	t.Helper()
	w := connect5(t, b.addr, id, nil)
	w.sub(t, nil, pahov5.SubscribeOptions{Topic: filter, QoS: 1})
	return w
}

// expectWill waits for the will on topic and returns when it came.
func expectWill(t *testing.T, w *client5, topic string) time.Time {
	t.Helper()
	m := w.next(t)
	if m.Topic != topic || string(m.Payload) != "gone" {
		t.Fatalf("got %q %q, want the will on %q", m.Topic, m.Payload, topic)
	}
	return time.Now()
}

// The will is published when the network connection closes without DISCONNECT
// ([MQTT-3.1.2-8] in 3.1.1 and 5.0), with its retain flag.
func TestWillOnUngracefulClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-close", "will/#")
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		topic := "will/close/" + v.String()
		c, _ := rawConnect(t, b.addr, v, "will-close-"+v.String(), func(cp *mqtt.Connect) {
			withWill(topic)(cp)
			cp.WillRetain = true
		})
		c.close()
		expectWill(t, w, topic)
	}
	// Retained: a later subscriber gets it.
	late := connect5(t, b.addr, "w-late", nil)
	late.sub(t, nil, pahov5.SubscribeOptions{Topic: "will/close/3.1.1", QoS: 1})
	if m := late.next(t); string(m.Payload) != "gone" || !m.Retain {
		t.Fatalf("retained will: got %q retain %v", m.Payload, m.Retain)
	}
}

// The will is published when the broker closes the connection for keep alive.
func TestWillOnKeepAliveExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-ka", "will/#")
	start := time.Now()
	rawConnect(t, b.addr, mqtt.Version311, "will-ka", func(cp *mqtt.Connect) {
		withWill("will/ka")(cp)
		cp.KeepAlive = 1
	})
	at := expectWill(t, w, "will/ka")
	if d := at.Sub(start); d < 1500*time.Millisecond {
		t.Errorf("will after %v, before one and a half keep alive", d)
	}
}

// The will of a connection that is taken over is published (it ends without
// DISCONNECT).
func TestWillOnTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-takeover", "will/#")
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		topic := "will/takeover/" + v.String()
		rawConnect(t, b.addr, v, "will-takeover-"+v.String(), withWill(topic))
		rawConnect(t, b.addr, v, "will-takeover-"+v.String(), nil)
		expectWill(t, w, topic)
	}
}

// [MQTT-3.1.2-10] (3.1.1) / [MQTT-3.14.4-3] (5.0): a DISCONNECT (5.0: with reason
// 0x00) discards the will.
func TestNoWillOnDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-disc", "will/#")
	for _, v := range []mqtt.Version{mqtt.Version311, mqtt.Version5} {
		c, _ := rawConnect(t, b.addr, v, "will-disc-"+v.String(), withWill("will/disc"))
		c.send(&mqtt.Disconnect{})
		c.expectClosed(itTimeout)
	}
	// The sessions ended after their wills were discarded or handed to be
	// published; give a published one time to arrive.
	eventually(t, "sessions ended", func() bool { return sessions(b) == 1 })
	select {
	case m := <-w.msgs:
		t.Fatalf("will published after DISCONNECT: %q %q", m.Topic, m.Payload)
	case <-time.After(quiet):
	}
	if got := w.flush(t, "will/marker"); len(got) != 0 {
		t.Fatalf("got %v", payloadsOf(got))
	}
}

// MQTT 5.0 section 3.14.2.1: DISCONNECT with reason 0x04 (Disconnect with Will
// Message) publishes the will.
func TestWillOnDisconnectWithWillMessage(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-0x04", "will/#")
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-0x04", withWill("will/0x04"))
	c.send(&mqtt.Disconnect{ReasonCode: mqtt.DisconnectWithWillMessage})
	expectWill(t, w, "will/0x04")
	c.expectClosed(itTimeout)
}

// Will Delay Interval (MQTT 5.0 section 3.1.3.2.2): the will is published once the
// delay has passed [MQTT-3.1.3-9], not before; not at all if the client resumes
// the session within the delay; and when the session ends first, at its end.
func TestWillDelay(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	delayed := func(topic string, delay, expiry uint32) func(*mqtt.Connect) {
		return func(cp *mqtt.Connect) {
			withWill(topic)(cp)
			cp.WillProperties.WillDelay = delay
			cp.WillProperties.Set(mqtt.PropWillDelay)
			cp.Properties.SessionExpiry = expiry
			cp.Properties.Set(mqtt.PropSessionExpiry)
		}
	}

	t.Run("published after the delay", func(t *testing.T) {
		t.Parallel()
		w := watcher(t, b, "w-delay", "will/delay")
		c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-delay", delayed("will/delay", 2, 60))
		start := time.Now()
		c.close()
		if d := expectWill(t, w, "will/delay").Sub(start); d < 2*time.Second || d > 4*time.Second {
			t.Errorf("will after %v, want after the delay of 2 s", d)
		}
	})

	t.Run("not published when the session resumes", func(t *testing.T) {
		t.Parallel()
		w := watcher(t, b, "w-resume", "will/resume")
		c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-resume", delayed("will/resume", 1, 60))
		c.close()
		r := dialRaw(t, b.addr)
		ack := r.connect(&mqtt.Connect{Version: mqtt.Version5, ClientID: "will-resume"}, func(cp *mqtt.Connect) {
			cp.Properties.SessionExpiry = 60
			cp.Properties.Set(mqtt.PropSessionExpiry)
		})
		if !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		// Absence over a bounded time: twice the delay of the first will.
		select {
		case m := <-w.msgs:
			t.Fatalf("will published although the session resumed: %q", m.Topic)
		case <-time.After(2 * time.Second):
		}
	})

	t.Run("published when the session ends first", func(t *testing.T) {
		t.Parallel()
		w := watcher(t, b, "w-expiry", "will/expiry")
		c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-expiry", delayed("will/expiry", 30, 1))
		start := time.Now()
		c.close()
		if d := expectWill(t, w, "will/expiry").Sub(start); d < time.Second || d > 3*time.Second {
			t.Errorf("will after %v, want at the session's end after 1 s", d)
		}
	})
}

// The will's properties travel with it to a 5.0 subscriber (MQTT 5.0 section
// 3.1.3.2): content type, user properties, payload format, response topic,
// correlation data.
func TestWillProperties(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	w := watcher(t, b, "w-props", "will/#")
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-props", func(cp *mqtt.Connect) {
		withWill("will/props")(cp)
		wp := &cp.WillProperties
		wp.ContentType = "text/plain"
		wp.Set(mqtt.PropContentType)
		wp.PayloadFormat = 1
		wp.Set(mqtt.PropPayloadFormat)
		wp.ResponseTopic = "will/response"
		wp.Set(mqtt.PropResponseTopic)
		wp.CorrelationData = []byte{1, 2, 3}
		wp.Set(mqtt.PropCorrelationData)
		wp.User = []mqtt.StringPair{{Name: "k", Value: "v"}, {Name: "k", Value: "w"}}
	})
	c.close()
	m := w.next(t)
	p := m.Properties
	if m.Topic != "will/props" || p == nil {
		t.Fatalf("got %q with properties %+v", m.Topic, p)
	}
	if p.ContentType != "text/plain" || p.ResponseTopic != "will/response" || string(p.CorrelationData) != "\x01\x02\x03" ||
		p.PayloadFormat == nil || *p.PayloadFormat != 1 {
		t.Errorf("properties %+v", p)
	}
	if got := p.User.GetAll("k"); !slices.Equal(got, []string{"v", "w"}) {
		t.Errorf("user properties %v, want k=v, k=w", p.User)
	}
}

// Broker.Close stops the broker's background work and waits for it (its
// documentation): a will whose delay ends after Close is not published by the
// closed broker. Not parallel: when the broker fails, the race detector may see
// the late timer's goroutine, and its report should not land on other tests.
func TestCloseStopsWillDelay(t *testing.T) {
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, mqtt.Version5, "will-after-close", func(cp *mqtt.Connect) {
		withWill("will/after-close")(cp)
		cp.WillRetain = true // so that a publication leaves a trace in the retained store
		cp.WillProperties.WillDelay = 1
		cp.WillProperties.Set(mqtt.PropWillDelay)
		cp.Properties.SessionExpiry = 60
		cp.Properties.Set(mqtt.PropSessionExpiry)
	})
	c.close()
	eventually(t, "client offline", func() bool { return b.Stats().ClientsConnected.Load() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the will delay: a bounded wait for an absence
	if n := b.Retained().Len(); n != 0 {
		t.Errorf("the closed broker published the will: %d retained messages", n)
	}
}
