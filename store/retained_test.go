package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/retain"
)

func testMessages() []*mqtt.Message {
	props := &mqtt.Properties{ContentType: "text/plain", CorrelationData: []byte{1, 2, 3}, PayloadFormat: 1,
		User: []mqtt.StringPair{{Name: "k", Value: "v"}, {Name: "k", Value: "w"}}}
	props.Set(mqtt.PropContentType)
	props.Set(mqtt.PropCorrelationData)
	props.Set(mqtt.PropPayloadFormat)
	return []*mqtt.Message{
		{Topic: "a/b", Payload: []byte("hello"), QoS: mqtt.AtLeastOnce, Retain: true, Origin: "client-1"},
		{Topic: "a/b/c", Payload: bytes.Repeat([]byte{0, 0xff}, 5000), QoS: mqtt.ExactlyOnce, Retain: true,
			Properties: props, Expiry: time.Unix(2_000_000_000, 123)},
		{Topic: "$SYS/x", Payload: []byte("sys"), Retain: true},
		{Topic: "ü/✓", Payload: []byte{0}, QoS: mqtt.AtMostOnce, Retain: true, Origin: "c2"},
	}
}

// sameMessage reports whether a decoded message equals the one stored.
func sameMessage(got, want *mqtt.Message) bool {
	if !got.Expiry.Equal(want.Expiry) {
		return false
	}
	g, w := *got, *want
	g.Expiry, w.Expiry = time.Time{}, time.Time{}
	return reflect.DeepEqual(g, w)
}

func loadAll(t testing.TB, r retain.Store) map[string]*mqtt.Message {
	t.Helper()
	out := make(map[string]*mqtt.Message)
	var last string
	err := r.Load(func(m *mqtt.Message) error {
		if m.Topic <= last && last != "" {
			t.Errorf("Load gave %q after %q", m.Topic, last)
		}
		last = m.Topic
		out[m.Topic] = m
		return nil
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return out
}

func checkLoaded(t testing.TB, what string, got map[string]*mqtt.Message, want []*mqtt.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: loaded %d messages, want %d", what, len(got), len(want))
	}
	for _, w := range want {
		if g, ok := got[w.Topic]; !ok || !sameMessage(g, w) {
			t.Fatalf("%s: %q loaded as %+v, want %+v", what, w.Topic, g, w)
		}
	}
}

func TestRetainedRoundTrip(t *testing.T) {
	msgs := testMessages()
	check := func(t *testing.T, s store, reopen func() store) {
		r := s.Retained()
		for _, m := range msgs {
			if err := r.Put(m); err != nil {
				t.Fatalf("Put(%q): %v", m.Topic, err)
			}
		}
		if err := r.Put(&mqtt.Message{Topic: "a/b", Payload: []byte("replaced"), Retain: true}); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete("$SYS/x"); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete("never/retained"); err != nil {
			t.Fatalf("Delete of a topic holding nothing: %v", err)
		}
		s.Set("s/not-retained", []byte("x")) // another prefix
		if err := barrier(t, s); err != nil {
			t.Fatal(err)
		}
		want := []*mqtt.Message{{Topic: "a/b", Payload: []byte("replaced"), Retain: true}, msgs[1], msgs[3]}
		checkLoaded(t, "loaded", loadAll(t, r), want)
		if v, ok := scanMap(t, s, "")[RetainedPrefix+"a/b/c"]; !ok || !bytes.HasPrefix([]byte(v), []byte{1}) {
			t.Fatalf("the record of a/b/c is %q, want AppendBinary's form", v)
		}
		if reopen != nil {
			checkLoaded(t, "reopened", loadAll(t, reopen().Retained()), want)
		}
	}
	t.Run("bunt", func(t *testing.T) {
		dir := t.TempDir()
		db := openT(t, dir, Always)
		check(t, db, func() store {
			closeT(t, db)
			return openT(t, dir, Always)
		})
	})
	t.Run("mem", func(t *testing.T) { check(t, NewMem(), nil) })
}

// TestRetainedTree runs a retain.Tree on the store across a reopening.
func TestRetainedTree(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, EverySec)
	tree, err := retain.New(db.Retained(), retain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, m := range testMessages() {
		if err := tree.Set(m, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tree.Delete("a/b"); err != nil {
		t.Fatal(err)
	}
	closeT(t, db)
	tree, err = retain.New(openT(t, dir, EverySec).Retained(), retain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tree.Len() != 3 {
		t.Fatalf("the tree holds %d messages after reopening, want 3", tree.Len())
	}
	want := testMessages()[1]
	if got, ok := tree.Get(want.Topic); !ok || !sameMessage(got, want) {
		t.Fatalf("Get(%q) = %+v, want %+v", want.Topic, got, want)
	}
}

func TestRetainedLoadErrors(t *testing.T) {
	for _, s := range []store{openT(t, t.TempDir(), Never), NewMem()} {
		good, err := (&mqtt.Message{Topic: "x", Payload: []byte("p")}).AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Set("r/bad", []byte{9, 9, 9})
		if err := barrier(t, s); err != nil {
			t.Fatal(err)
		}
		err = s.Retained().Load(func(*mqtt.Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), `"r/bad"`) {
			t.Errorf("%T: Load of an undecodable record: %v, want an error naming r/bad", s, err)
		}
		s.Delete("r/bad")
		s.Set("r/y", good)
		if err := barrier(t, s); err != nil {
			t.Fatal(err)
		}
		err = s.Retained().Load(func(*mqtt.Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), `"r/y"`) {
			t.Errorf("%T: Load of a record holding another topic: %v, want an error naming r/y", s, err)
		}
		s.Delete("r/y")
		s.Set("r/x", good)
		if err := barrier(t, s); err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop")
		if err := s.Retained().Load(func(*mqtt.Message) error { return stop }); err != stop {
			t.Errorf("%T: Load returned %v, want fn's error", s, err)
		}
	}
}

func TestRetainedPutAfterClose(t *testing.T) {
	db := openT(t, t.TempDir(), Never)
	closeT(t, db)
	if err := db.Retained().Put(testMessages()[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if err := db.Retained().Load(func(*mqtt.Message) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after Close = %v, want ErrClosed", err)
	}
}
