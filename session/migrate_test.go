package session

import (
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// TestSnapshotRestore: a session's queued and inflight messages, their packet
// identifiers and states, the QoS 2 identifiers awaiting PUBREL, its
// subscriptions, expiry and username come back from its snapshot, whether or
// not it had a store, and the restored session writes them to its new store.
func TestSnapshotRestore(t *testing.T) {
	for _, stored := range []bool{false, true} {
		src := New("dev-1", Limits{})
		if stored {
			src.AttachStore(recordStore{})
		}
		src.SetExpiry(3600)
		src.SetUsername("alice")
		for _, topic := range []string{"a", "b", "c", "d"} {
			_, _, _ = src.Enqueue(Delivery{Msg: &mqtt.Message{Topic: topic, QoS: 2, Payload: []byte(topic)}, QoS: 2})
		}
		var ids []uint16
		for range 2 {
			_, id, _ := src.Next(10, time.Now(), nil)
			ids = append(ids, id)
		}
		if _, err := src.Pubrec(ids[1], false); err != nil { // "b" awaits PUBCOMP
			t.Fatal(err)
		}
		_, _ = src.ReceiveQoS2(42, time.Now(), 10)
		subs := []SubscriptionRecord{{Filter: "x/#", Options: mqtt.Subscription{QoS: 1, NoLocal: true}, SubscriptionID: 9}}
		src.Unsent()
		recs := src.Snapshot(subs, time.Now())

		dst := recordStore{}
		l, err := Restore(recs, dst, Limits{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s := l.Session
		if s.ID() != "dev-1" || s.Expiry() != 3600 || s.Username() != "alice" {
			t.Fatalf("stored=%v: restored %q expiry %d user %q", stored, s.ID(), s.Expiry(), s.Username())
		}
		if len(l.Subscriptions) != 1 || l.Subscriptions[0] != subs[0] {
			t.Fatalf("stored=%v: subscriptions %+v", stored, l.Subscriptions)
		}
		if s.Queued() != 2 || s.InflightCount() != 2 || s.AwaitingRelease() != 1 {
			t.Fatalf("stored=%v: queued %d inflight %d awaiting release %d", stored, s.Queued(), s.InflightCount(), s.AwaitingRelease())
		}
		if len(dst) != len(recs) {
			t.Fatalf("stored=%v: %d records written to the new store, want %d", stored, len(dst), len(recs))
		}
		r := s.Resend()
		if len(r) != 2 || r[0].PacketID != ids[0] || r[0].Msg.Topic != "a" || r[1].PacketID != ids[1] || r[1].State != AwaitPubcomp {
			t.Fatalf("stored=%v: resend %+v", stored, r)
		}
		d, _, ok := s.Next(10, time.Now(), nil)
		if !ok || d.Msg.Topic != "c" || string(d.Msg.Payload) != "c" {
			t.Fatalf("stored=%v: next %+v %v", stored, d, ok)
		}
	}
}

func TestRestoreRefusesBadRecords(t *testing.T) {
	if _, err := Restore(nil, nil, Limits{}, time.Now()); err == nil {
		t.Fatal("no records restored a session")
	}
	a := New("a", Limits{}).Snapshot(nil, time.Now())
	b := New("b", Limits{}).Snapshot(nil, time.Now())
	if _, err := Restore(append(a, b...), nil, Limits{}, time.Now()); err == nil {
		t.Fatal("records of two sessions restored as one")
	}
	bad := []Record{{Key: "m/x", Value: []byte{1}}}
	if _, err := Restore(bad, nil, Limits{}, time.Now()); err == nil {
		t.Fatal("a corrupt meta record restored")
	}
}
