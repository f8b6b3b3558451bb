package mqtt

import (
	"testing"
	"time"
)

func TestMessageCopiesAndForwards(t *testing.T) {
	now := time.Unix(1000, 0)
	p := &Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 9, Payload: []byte("data")}
	p.Properties.ContentType, p.Properties.MessageExpiry, p.Properties.TopicAlias = "text/plain", 10, 3
	p.Properties.CorrelationData = []byte{1, 2}
	p.Properties.User = []StringPair{{"k", "v"}}
	p.Properties.SubscriptionIDs = []uint32{4}
	for _, id := range []PropertyID{PropContentType, PropMessageExpiry, PropTopicAlias, PropCorrelationData} {
		p.Properties.Set(id)
	}
	m := NewMessage(p, "pub", now)
	p.Payload[0] = 'X' // the decoder's buffer is reused
	p.Properties.CorrelationData[0] = 9
	if string(m.Payload) != "data" || m.Properties.CorrelationData[0] != 1 {
		t.Fatal("NewMessage did not copy the payload and correlation data")
	}
	if m.Expiry != now.Add(10*time.Second) || m.Origin != "pub" || m.QoS != 1 || !m.Retain {
		t.Fatalf("NewMessage = %+v", m)
	}

	var out Publish
	m.Fill(&out, 0, false, now.Add(2500*time.Millisecond))
	if out.Topic != "a/b" || string(out.Payload) != "data" || out.QoS != 0 || out.Retain {
		t.Fatalf("Fill = %+v", out)
	}
	if !out.Properties.Has(PropMessageExpiry) || out.Properties.MessageExpiry != 8 {
		t.Fatalf("expiry sent %d, want 8 (7.5s left, rounded up)", out.Properties.MessageExpiry)
	}
	if out.Properties.Has(PropTopicAlias) || out.Properties.Has(PropSubscriptionID) {
		t.Fatal("Fill forwarded a per-connection property")
	}
	if out.Properties.ContentType != "text/plain" || len(out.Properties.User) != 1 {
		t.Fatalf("Fill dropped forwarded properties: %+v", out.Properties)
	}
	if !m.Expired(now.Add(10*time.Second)) || m.Expired(now.Add(9*time.Second)) {
		t.Fatal("Expired is wrong")
	}
	if n := testing.AllocsPerRun(100, func() { m.Fill(&out, 1, true, now) }); n != 0 {
		t.Fatalf("Fill allocates %.0f times", n)
	}
}

func TestMessageBinaryRoundTrip(t *testing.T) {
	exp := time.Unix(1700000000, 123456789)
	props := &Properties{ContentType: "text/plain", CorrelationData: []byte{1, 2}, User: []StringPair{{"k", "v"}}}
	props.Set(PropContentType)
	props.Set(PropCorrelationData)
	for _, m := range []*Message{
		{Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true, Properties: props, Expiry: exp, Origin: "dev-1"},
		{Topic: "x", QoS: 0},
		{Topic: "été/€", Payload: make([]byte, 70000), QoS: 1},
	} {
		b, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != m.Topic || string(got.Payload) != string(m.Payload) || got.QoS != m.QoS || got.Retain != m.Retain ||
			!got.Expiry.Equal(m.Expiry) || got.Origin != m.Origin {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
		if (got.Properties == nil) != (m.Properties == nil) ||
			m.Properties != nil && (got.Properties.ContentType != "text/plain" || len(got.Properties.User) != 1) {
			t.Fatalf("properties: got %+v", got.Properties)
		}
		if _, err := UnmarshalMessage(b[:len(b)-1]); err == nil {
			t.Fatal("a truncated message was accepted")
		}
	}
	if _, err := UnmarshalMessage([]byte{9}); err == nil {
		t.Fatal("unknown format accepted")
	}
}
