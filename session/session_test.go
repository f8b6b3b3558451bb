package session

import (
	"errors"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func msg(topic string) *mqtt.Message { return &mqtt.Message{Topic: topic, QoS: 2} }

func TestQueueOrderAndWindow(t *testing.T) {
	s := New("c", Limits{})
	now := time.Now()
	for i, q := range []mqtt.QoS{1, 0, 2, 1} {
		if _, _, err := s.Enqueue(Delivery{Msg: msg(string(rune('a' + i))), QoS: q}); err != nil {
			t.Fatal(err)
		}
	}
	d, id, ok := s.Next(1, now, nil)
	if !ok || d.Msg.Topic != "a" || id == 0 {
		t.Fatalf("first: %v %d %v", d.Msg, id, ok)
	}
	d2, id2, ok := s.Next(1, now, nil) // QoS 0 passes the full window
	if !ok || d2.Msg.Topic != "b" || id2 != 0 {
		t.Fatalf("second: %v %d %v", d2.Msg, id2, ok)
	}
	if _, _, ok := s.Next(1, now, nil); ok {
		t.Fatal("QoS 2 message sent beyond a window of 1")
	}
	if _, err := s.Puback(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Puback(id); !errors.Is(err, ErrUnknownPacketID) {
		t.Fatalf("second PUBACK: %v", err)
	}
	d3, id3, ok := s.Next(1, now, nil)
	if !ok || d3.Msg.Topic != "c" || id3 == id {
		t.Fatalf("third: %v %d %v", d3.Msg, id3, ok)
	}
	if _, err := s.Puback(id3); err == nil {
		t.Fatal("PUBACK completed a QoS 2 message")
	}
	if f, err := s.Pubrec(id3, false); err != nil || f.State != AwaitPubcomp || f.Msg != nil {
		t.Fatalf("PUBREC: %+v %v", f, err)
	}
	if _, err := s.Pubrec(id3, false); err != nil {
		t.Fatal("a repeated PUBREC must be answered with PUBREL again")
	}
	if _, err := s.Pubcomp(id3); err != nil {
		t.Fatal(err)
	}
	if s.InflightCount() != 0 || s.Queued() != 1 {
		t.Fatalf("inflight %d queued %d", s.InflightCount(), s.Queued())
	}
}

func TestDropPolicies(t *testing.T) {
	old := New("c", Limits{MaxQueued: 2, Drop: DropOldest})
	for _, topic := range []string{"1", "2", "3"} {
		_, _, _ = old.Enqueue(Delivery{Msg: msg(topic), QoS: 1})
	}
	if d, _, _ := old.Next(10, time.Now(), nil); d.Msg.Topic != "2" || old.Dropped() != 1 {
		t.Fatalf("drop oldest kept %q, dropped %d", d.Msg.Topic, old.Dropped())
	}
	newest := New("c", Limits{MaxQueued: 2, Drop: DropNewest})
	for _, topic := range []string{"1", "2"} {
		_, _, _ = newest.Enqueue(Delivery{Msg: msg(topic), QoS: 1})
	}
	if _, _, err := newest.Enqueue(Delivery{Msg: msg("3"), QoS: 1}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("drop newest: %v", err)
	}
	if d, _, _ := newest.Next(10, time.Now(), nil); d.Msg.Topic != "1" {
		t.Fatalf("drop newest lost the oldest: %q", d.Msg.Topic)
	}
}

func TestExpiredMessagesAreSkipped(t *testing.T) {
	s := New("c", Limits{})
	now := time.Now()
	_, _, _ = s.Enqueue(Delivery{Msg: &mqtt.Message{Topic: "old", Expiry: now.Add(-time.Second)}, QoS: 1})
	_, _, _ = s.Enqueue(Delivery{Msg: &mqtt.Message{Topic: "new", Expiry: now.Add(time.Hour)}, QoS: 1})
	var expired []string
	d, _, ok := s.Next(10, now, func(d Delivery) { expired = append(expired, d.Msg.Topic) })
	if !ok || d.Msg.Topic != "new" || len(expired) != 1 || expired[0] != "old" {
		t.Fatalf("got %v, expired %v", d.Msg, expired)
	}
}

func TestResendKeepsOrderAndIDs(t *testing.T) {
	s := New("c", Limits{})
	for _, topic := range []string{"x", "y", "z"} {
		_, _, _ = s.Enqueue(Delivery{Msg: msg(topic), QoS: 2})
	}
	var ids []uint16
	for range 3 {
		_, id, _ := s.Next(10, time.Now(), nil)
		ids = append(ids, id)
	}
	_, _ = s.Pubrec(ids[1], false)
	s.Unsent()
	r := s.Resend()
	if len(r) != 3 || r[0].PacketID != ids[0] || r[1].State != AwaitPubcomp || r[2].Msg.Topic != "z" || r[0].Sent {
		t.Fatalf("resend %+v", r)
	}
}

func TestPacketIDsWrapAndSkipInUse(t *testing.T) {
	s := New("c", Limits{})
	s.nextID = 65534
	for range 3 {
		_, _, _ = s.Enqueue(Delivery{Msg: msg("t"), QoS: 1})
	}
	var got []uint16
	for range 3 {
		_, id, _ := s.Next(10, time.Now(), nil)
		got = append(got, id)
	}
	if got[0] != 65535 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("ids %v", got)
	}
}

func TestReceiveQoS2ExactlyOnce(t *testing.T) {
	s := New("c", Limits{})
	now := time.Now()
	if first, err := s.ReceiveQoS2(7, now, 2); !first || err != nil {
		t.Fatal("first receipt not new")
	}
	if first, _ := s.ReceiveQoS2(7, now, 2); first {
		t.Fatal("duplicate receipt treated as new")
	}
	_, _ = s.ReceiveQoS2(8, now, 2)
	if _, err := s.ReceiveQoS2(9, now, 2); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("beyond receive maximum: %v", err)
	}
	if !s.Release(7) || s.Release(7) {
		t.Fatal("Release")
	}
	if first, _ := s.ReceiveQoS2(7, now, 2); !first {
		t.Fatal("identifier not reusable after PUBREL [MQTT-4.3.3-11]")
	}
}

func TestTakeShared(t *testing.T) {
	s := New("c", Limits{})
	_, _, _ = s.Enqueue(Delivery{Msg: msg("a"), QoS: 1, Group: "$share/g/a"})
	_, _, _ = s.Enqueue(Delivery{Msg: msg("b"), QoS: 1})
	_, _, _ = s.Enqueue(Delivery{Msg: msg("c"), QoS: 1, Group: "$share/g/c"})
	_, _, _ = s.Next(10, time.Now(), nil) // "a" inflight
	taken := s.TakeShared()
	if len(taken) != 2 || taken[0].Msg.Topic != "a" || taken[1].Msg.Topic != "c" {
		t.Fatalf("taken %+v", taken)
	}
	if s.Queued() != 1 || s.InflightCount() != 0 {
		t.Fatalf("left queued %d inflight %d", s.Queued(), s.InflightCount())
	}
}
