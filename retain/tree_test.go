package retain

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func TestSetReplaceClear(t *testing.T) {
	store := &MemStore{}
	tr := newTree(t, store, Options{})

	first := msg("a/b", "1")
	mustSet(t, tr, first, t0)
	if got, ok := tr.Get("a/b"); !ok || got != first {
		t.Fatalf("Get after Set = %v, %v; want the message set", got, ok)
	}
	if tr.Len() != 1 || tr.Bytes() != 4 {
		t.Fatalf("Len, Bytes = %d, %d; want 1, 4", tr.Len(), tr.Bytes())
	}

	// A new retained message replaces the old one [MQTT-3.3.1-5].
	second := msg("a/b", "22")
	mustSet(t, tr, second, t0)
	if got, _ := tr.Get("a/b"); got != second {
		t.Fatalf("Get after replace = %v; want the second message", got)
	}
	if tr.Len() != 1 || tr.Bytes() != 5 {
		t.Fatalf("Len, Bytes after replace = %d, %d; want 1, 5", tr.Len(), tr.Bytes())
	}
	if got := matched(tr, "a/b", t0); !slices.Equal(got, []string{"a/b"}) {
		t.Fatalf("Match after replace = %q", got)
	}
	checkStore(t, tr, store)

	// An empty payload clears and is not kept [MQTT-3.3.1-6] [MQTT-3.3.1-7].
	for _, payload := range [][]byte{nil, {}} {
		mustSet(t, tr, msg("a/b", "3"), t0)
		mustSet(t, tr, &mqtt.Message{Topic: "a/b", Payload: payload, Retain: true}, t0)
		if got, ok := tr.Get("a/b"); ok {
			t.Fatalf("Get after clear with payload %#v = %v; want none", payload, got)
		}
		if tr.Len() != 0 || tr.Bytes() != 0 {
			t.Fatalf("Len, Bytes after clear = %d, %d; want 0, 0", tr.Len(), tr.Bytes())
		}
		if got := matched(tr, "#", t0); len(got) != 0 {
			t.Fatalf("Match # after clear = %q", got)
		}
		if store.Len() != 0 {
			t.Fatalf("store holds %q after clear", store.Topics())
		}
		if n := nodeCount(tr); n != 0 {
			t.Fatalf("%d nodes left after clear", n)
		}
	}
	// Clearing a topic that holds nothing is no error.
	mustSet(t, tr, msg("x/y", ""), t0)
	checkInvariants(t, tr)
}

func TestSetInvalid(t *testing.T) {
	tr := newTree(t, nil, Options{})
	for _, topic := range []string{"", "a/+", "a/#", "#", "a\x00b"} {
		err := tr.Set(msg(topic, "x"), t0)
		var merr *mqtt.Error
		if !errors.As(err, &merr) || merr.Code != mqtt.TopicNameInvalid {
			t.Errorf("Set(%q) = %v; want an *mqtt.Error with TopicNameInvalid", topic, err)
		}
	}
	if err := tr.Set(nil, t0); err == nil {
		t.Errorf("Set(nil) = nil; want an error")
	}
	if tr.Len() != 0 {
		t.Errorf("Len = %d after invalid sets", tr.Len())
	}
}

func TestDelete(t *testing.T) {
	store := &MemStore{}
	tr := newTree(t, store, Options{})
	mustSet(t, tr, msg("a/b", "1"), t0)
	mustSet(t, tr, msg("a", "2"), t0)
	for _, c := range []struct {
		topic   string
		existed bool
	}{
		{"a/b/c", false},
		{"a/b", true},
		{"a/b", false},
		{"b", false},
		{"a/+", false},
		{"a", true},
	} {
		existed, err := tr.Delete(c.topic)
		if err != nil || existed != c.existed {
			t.Errorf("Delete(%q) = %v, %v; want %v, nil", c.topic, existed, err, c.existed)
		}
		checkStore(t, tr, store)
	}
	if tr.Len() != 0 || tr.Bytes() != 0 || nodeCount(tr) != 0 {
		t.Errorf("Len, Bytes, nodes = %d, %d, %d; want all 0", tr.Len(), tr.Bytes(), nodeCount(tr))
	}
}

func TestExpiry(t *testing.T) {
	store := &MemStore{}
	tr := newTree(t, store, Options{})
	mustSet(t, tr, expiring("a/soon", "1", t0.Add(10*time.Second)), t0)
	mustSet(t, tr, expiring("a/later", "2", t0.Add(time.Hour)), t0)
	mustSet(t, tr, msg("a/never", "3"), t0)

	for _, c := range []struct {
		at   time.Duration
		want []string
	}{
		{0, []string{"a/later", "a/never", "a/soon"}},
		{10*time.Second - 1, []string{"a/later", "a/never", "a/soon"}},
		{10 * time.Second, []string{"a/later", "a/never"}}, // expired at its expiry
		{time.Hour, []string{"a/never"}},
	} {
		now := t0.Add(c.at)
		if got := matched(tr, "a/#", now); !slices.Equal(got, c.want) {
			t.Errorf("Match a/# at +%v = %q; want %q", c.at, got, c.want)
		}
		if got := matched(tr, "a/+", now); !slices.Equal(got, c.want) {
			t.Errorf("Match a/+ at +%v = %q; want %q", c.at, got, c.want)
		}
		got := matched(tr, "a/soon", now)
		if want := slices.Contains(c.want, "a/soon"); want != (len(got) == 1) {
			t.Errorf("Match a/soon at +%v = %q", c.at, got)
		}
	}
	// Match leaves them for Sweep; Get and Len still see them.
	if _, ok := tr.Get("a/soon"); !ok || tr.Len() != 3 {
		t.Fatalf("before Sweep: Get a/soon found %v, Len %d; want true, 3", ok, tr.Len())
	}

	for _, c := range []struct {
		at      time.Duration
		removed int
		left    []string
	}{
		{5 * time.Second, 0, []string{"a/later", "a/never", "a/soon"}},
		{10 * time.Second, 1, []string{"a/later", "a/never"}},
		{10 * time.Second, 0, []string{"a/later", "a/never"}},
		{100 * time.Hour, 1, []string{"a/never"}},
	} {
		n, err := tr.Sweep(t0.Add(c.at))
		if err != nil || n != c.removed {
			t.Errorf("Sweep(+%v) = %d, %v; want %d, nil", c.at, n, err, c.removed)
		}
		if got := heldTopics(tr); !slices.Equal(got, c.left) {
			t.Errorf("after Sweep(+%v) the tree holds %q; want %q", c.at, got, c.left)
		}
		checkStore(t, tr, store)
		checkInvariants(t, tr)
	}
	if n := nodeCount(tr); n != 2 {
		t.Errorf("%d nodes after sweeping; want 2 (a, a/never)", n)
	}
}

func TestExpiryReplace(t *testing.T) {
	tr := newTree(t, nil, Options{})
	// An expiring message replaced by one that never expires leaves the heap.
	mustSet(t, tr, expiring("x", "1", t0.Add(time.Second)), t0)
	mustSet(t, tr, msg("x", "2"), t0)
	checkInvariants(t, tr)
	if n, _ := tr.Sweep(t0.Add(time.Hour)); n != 0 || tr.Len() != 1 {
		t.Fatalf("Sweep removed %d, Len %d; want 0, 1", n, tr.Len())
	}
	// A later expiry replaces an earlier one.
	mustSet(t, tr, expiring("x", "3", t0.Add(time.Second)), t0)
	mustSet(t, tr, expiring("x", "4", t0.Add(time.Minute)), t0)
	checkInvariants(t, tr)
	if n, _ := tr.Sweep(t0.Add(time.Second)); n != 0 {
		t.Fatalf("Sweep at the first expiry removed %d; want 0", n)
	}
	if n, _ := tr.Sweep(t0.Add(time.Minute)); n != 1 {
		t.Fatalf("Sweep at the second expiry removed %d; want 1", n)
	}
	// A message that has already expired clears the topic.
	mustSet(t, tr, msg("y", "1"), t0)
	mustSet(t, tr, expiring("y", "2", t0), t0)
	if _, ok := tr.Get("y"); ok || tr.Len() != 0 {
		t.Fatalf("an expired message kept the topic: Len %d", tr.Len())
	}
	checkInvariants(t, tr)
}

// TestSweepOrder sets messages with random expiries and sweeps at rising times:
// each Sweep removes exactly those expired by then.
func TestSweepOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := newTree(t, nil, Options{})
	expiries := map[string]time.Time{}
	for i := range 2000 {
		topic := fmt.Sprintf("t/%d/%d", i%37, i)
		var m *mqtt.Message
		if rng.IntN(4) == 0 {
			m = msg(topic, "p")
		} else {
			exp := t0.Add(time.Duration(1+rng.IntN(1000)) * time.Second)
			m = expiring(topic, "p", exp)
			expiries[topic] = exp
		}
		mustSet(t, tr, m, t0)
		// Replace some, moving their expiry or removing it.
		if rng.IntN(5) == 0 {
			exp := t0.Add(time.Duration(1+rng.IntN(1000)) * time.Second)
			mustSet(t, tr, expiring(topic, "q", exp), t0)
			expiries[topic] = exp
		}
	}
	checkInvariants(t, tr)
	for step := 0; step <= 1000; step += 50 {
		now := t0.Add(time.Duration(step) * time.Second)
		want := 0
		for topic, exp := range expiries {
			if !now.Before(exp) {
				want++
				delete(expiries, topic)
			}
		}
		if got, err := tr.Sweep(now); got != want || err != nil {
			t.Fatalf("Sweep(+%ds) = %d, %v; want %d", step, got, err, want)
		}
		checkInvariants(t, tr)
	}
}

func TestLimits(t *testing.T) {
	type step struct {
		m       *mqtt.Message
		at      time.Duration
		limited bool
	}
	for _, c := range []struct {
		name  string
		opts  Options
		steps []step
		left  []string
	}{
		{"count", Options{MaxMessages: 2}, []step{
			{m: msg("a", "1")},
			{m: msg("b", "1")},
			{m: msg("c", "1"), limited: true},
			{m: msg("a", "a much longer payload")}, // replacement at the limit
			{m: msg("b", "")},                      // a clear is never limited
			{m: msg("c", "1")},
			{m: msg("d", "1"), limited: true},
		}, []string{"a", "c"}},
		{"bytes", Options{MaxBytes: 10}, []step{
			{m: msg("a", "1234")}, // 5 bytes
			{m: msg("b", "1234")}, // 10
			{m: msg("c", "1"), limited: true},
			{m: msg("a", "12345"), limited: true}, // would be 11
			{m: msg("a", "123")},                  // 9
			{m: msg("a", "1234")},                 // 10 again: replacement at the limit
			{m: msg("a", "")},                     // 5
			{m: msg("cc", "1234"), limited: true}, // 11
			{m: msg("c", "1234")},
		}, []string{"b", "c"}},
		{"oversized", Options{MaxBytes: 4}, []step{
			{m: msg("a", "1234"), limited: true},
			{m: msg("a", "123")},
		}, []string{"a"}},
		{"both", Options{MaxMessages: 2, MaxBytes: 6}, []step{
			{m: msg("a", "12")},
			{m: msg("b", "1")},
			{m: msg("c", "1"), limited: true},
			{m: msg("b", "123"), limited: true}, // 7 bytes
			{m: msg("b", "12")},                 // 6: replacement at both limits
		}, []string{"a", "b"}},
		{"expired make room", Options{MaxMessages: 2}, []step{
			{m: expiring("a", "1", t0.Add(time.Second))},
			{m: msg("b", "1")},
			{m: msg("c", "1"), limited: true},
			{m: msg("c", "1"), at: time.Second}, // a has expired and is swept
		}, []string{"b", "c"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &MemStore{}
			tr := newTree(t, store, c.opts)
			for i, s := range c.steps {
				before, beforeBytes := heldTopics(tr), tr.Bytes()
				prev, _ := tr.Get(s.m.Topic)
				err := tr.Set(s.m, t0.Add(s.at))
				if s.limited {
					if !errors.Is(err, ErrLimit) {
						t.Fatalf("step %d: Set(%q, %q) = %v; want ErrLimit", i, s.m.Topic, s.m.Payload, err)
					}
					if got, _ := tr.Get(s.m.Topic); got != prev {
						t.Fatalf("step %d: a refused Set changed the topic's message", i)
					}
					if got := heldTopics(tr); !slices.Equal(got, before) || tr.Bytes() != beforeBytes {
						t.Fatalf("step %d: a refused Set changed the tree: %q, %d bytes", i, got, tr.Bytes())
					}
				} else if err != nil {
					t.Fatalf("step %d: Set(%q, %q) = %v", i, s.m.Topic, s.m.Payload, err)
				}
				if max := c.opts.MaxMessages; max > 0 && tr.Len() > max {
					t.Fatalf("step %d: Len %d above %d", i, tr.Len(), max)
				}
				if max := c.opts.MaxBytes; max > 0 && tr.Bytes() > max {
					t.Fatalf("step %d: Bytes %d above %d", i, tr.Bytes(), max)
				}
				checkStore(t, tr, store)
			}
			if got := heldTopics(tr); !slices.Equal(got, c.left) {
				t.Errorf("the tree holds %q; want %q", got, c.left)
			}
			checkInvariants(t, tr)
		})
	}
}

func TestNewOptions(t *testing.T) {
	for _, opts := range []Options{{MaxMessages: -1}, {MaxBytes: -1}} {
		if _, err := New(nil, opts); err == nil {
			t.Errorf("New(%+v) = nil error; want one", opts)
		}
	}
}

// TestNewOverLimits loads a store holding more than the limits allow: all of it
// is kept, and Set refuses until there is room.
func TestNewOverLimits(t *testing.T) {
	store := &MemStore{}
	for _, topic := range []string{"a", "b", "c"} {
		if err := store.Put(msg(topic, "1")); err != nil {
			t.Fatal(err)
		}
	}
	tr := newTree(t, store, Options{MaxMessages: 2})
	if tr.Len() != 3 {
		t.Fatalf("Len = %d; want 3", tr.Len())
	}
	if err := tr.Set(msg("d", "1"), t0); !errors.Is(err, ErrLimit) {
		t.Fatalf("Set over the limit = %v; want ErrLimit", err)
	}
	mustSet(t, tr, msg("a", ""), t0)
	if err := tr.Set(msg("d", "1"), t0); !errors.Is(err, ErrLimit) {
		t.Fatalf("Set at the limit = %v; want ErrLimit", err)
	}
	mustSet(t, tr, msg("b", ""), t0)
	mustSet(t, tr, msg("d", "1"), t0)
	checkStore(t, tr, store)
}

func TestPersistence(t *testing.T) {
	store := &MemStore{}
	tr := newTree(t, store, Options{})
	now := time.Now()
	for _, m := range []*mqtt.Message{
		msg("a/b", "1"),
		msg("a/b/c", "2"),
		msg("$SYS/x", "3"),
		expiring("e/later", "4", now.Add(time.Hour)),
		expiring("e/soon", "5", now.Add(time.Second)),
		msg("gone", "6"),
		msg("cleared", "7"),
	} {
		mustSet(t, tr, m, now)
	}
	mustSet(t, tr, msg("a/b", "replaced"), now)
	if _, err := tr.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, tr, msg("cleared", ""), now)
	if n, err := tr.Sweep(now.Add(time.Second)); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1, nil", n, err)
	}
	checkStore(t, tr, store)

	// Reopen over the same store.
	again := newTree(t, store, Options{})
	if got, want := heldTopics(again), heldTopics(tr); !slices.Equal(got, want) {
		t.Fatalf("reopened tree holds %q; want %q", got, want)
	}
	if again.Len() != tr.Len() || again.Bytes() != tr.Bytes() {
		t.Fatalf("reopened Len, Bytes = %d, %d; want %d, %d", again.Len(), again.Bytes(), tr.Len(), tr.Bytes())
	}
	if m, _ := again.Get("a/b"); m == nil || string(m.Payload) != "replaced" {
		t.Fatalf("reopened a/b = %v; want the replacement", m)
	}
	if got := matched(again, "#", now); !slices.Equal(got, []string{"a/b", "a/b/c", "e/later"}) {
		t.Fatalf("reopened Match # = %q", got)
	}
	checkInvariants(t, again)
	checkStore(t, again, store)
}

func TestNewDropsStale(t *testing.T) {
	store := &MemStore{}
	now := time.Now()
	for _, m := range []*mqtt.Message{
		msg("live", "1"),
		expiring("live/expiring", "2", now.Add(time.Hour)),
		expiring("expired", "3", now.Add(-time.Second)),
		expiring("expired/deep/topic", "4", now.Add(-time.Hour)),
		msg("empty", ""),
	} {
		if err := store.Put(m); err != nil {
			t.Fatal(err)
		}
	}
	tr := newTree(t, store, Options{})
	want := []string{"live", "live/expiring"}
	if got := heldTopics(tr); !slices.Equal(got, want) {
		t.Fatalf("tree holds %q; want %q", got, want)
	}
	if got := store.Topics(); !slices.Equal(got, want) {
		t.Fatalf("store holds %q after New; want %q", got, want)
	}
	if nodeCount(tr) != 2 {
		t.Fatalf("%d nodes; want 2", nodeCount(tr))
	}
	checkInvariants(t, tr)
}

func TestStoreFailures(t *testing.T) {
	store := &faultyStore{}
	tr := newTree(t, store, Options{})
	old := msg("a", "1")
	mustSet(t, tr, old, t0)
	mustSet(t, tr, expiring("e", "1", t0.Add(time.Second)), t0)
	mustSet(t, tr, expiring("f", "1", t0.Add(time.Second)), t0)

	store.fail(true, true, false)
	if err := tr.Set(msg("a", "2"), t0); !errors.Is(err, errStore) {
		t.Fatalf("Set with a failing store = %v; want errStore", err)
	}
	if err := tr.Set(msg("b", "2"), t0); !errors.Is(err, errStore) {
		t.Fatalf("Set with a failing store = %v; want errStore", err)
	}
	if existed, err := tr.Delete("a"); existed || !errors.Is(err, errStore) {
		t.Fatalf("Delete with a failing store = %v, %v; want false, errStore", existed, err)
	}
	if err := tr.Set(msg("a", ""), t0); !errors.Is(err, errStore) {
		t.Fatalf("clear with a failing store = %v; want errStore", err)
	}
	if n, err := tr.Sweep(t0.Add(time.Second)); n != 0 || !errors.Is(err, errStore) {
		t.Fatalf("Sweep with a failing store = %d, %v; want 0, errStore", n, err)
	}
	if got, _ := tr.Get("a"); got != old {
		t.Fatalf("a failing store changed the tree")
	}
	if got := heldTopics(tr); !slices.Equal(got, []string{"a", "e", "f"}) {
		t.Fatalf("tree holds %q after failures", got)
	}
	checkInvariants(t, tr)

	store.fail(false, false, false)
	if n, err := tr.Sweep(t0.Add(time.Second)); n != 2 || err != nil {
		t.Fatalf("Sweep after recovery = %d, %v; want 2, nil", n, err)
	}
	checkStore(t, tr, &store.MemStore)
	checkInvariants(t, tr)

	store.fail(false, false, true)
	if _, err := New(store, Options{}); !errors.Is(err, errStore) {
		t.Fatalf("New with a failing Load = %v; want errStore", err)
	}
}

func TestNewRejectsBadRecords(t *testing.T) {
	for _, m := range []*mqtt.Message{msg("a/+", "1"), msg("", "1")} {
		store := &MemStore{}
		if err := store.Put(m); err != nil {
			t.Fatal(err)
		}
		var merr *mqtt.Error
		if _, err := New(store, Options{}); !errors.As(err, &merr) {
			t.Errorf("New over a store holding topic %q = %v; want an *mqtt.Error", m.Topic, err)
		}
	}
}

func TestPrune(t *testing.T) {
	tr := newTree(t, nil, Options{})
	mustSet(t, tr, msg("a/b/c/d", "1"), t0)
	mustSet(t, tr, msg("a", "1"), t0)
	mustSet(t, tr, msg("a/x", "1"), t0)
	if n := nodeCount(tr); n != 5 {
		t.Fatalf("%d nodes; want 5", n)
	}
	// Levels that lead to a message stay; the others go.
	for _, c := range []struct {
		topic string
		nodes int
	}{
		{"a", 5},       // a still leads to a/x and a/b/c/d
		{"a/b/c/d", 2}, // a/b/c/d, a/b/c, a/b go; a stays for a/x
		{"a/x", 0},
	} {
		if _, err := tr.Delete(c.topic); err != nil {
			t.Fatal(err)
		}
		if n := nodeCount(tr); n != c.nodes {
			t.Fatalf("after Delete(%q): %d nodes; want %d", c.topic, n, c.nodes)
		}
		checkInvariants(t, tr)
	}
}

// TestChildrenIndex grows a level past indexAt children and shrinks it again:
// lookups, wildcard walks and pruning work throughout.
func TestChildrenIndex(t *testing.T) {
	tr := newTree(t, nil, Options{})
	const n = 3 * indexAt
	var want []string
	for i := range n {
		topic := fmt.Sprintf("p/%d", i)
		mustSet(t, tr, msg(topic, "x"), t0)
		want = append(want, topic)
		slices.Sort(want)
		if got := matched(tr, "p/+", t0); !slices.Equal(got, want) {
			t.Fatalf("after %d: Match p/+ = %q", i+1, got)
		}
		checkInvariants(t, tr)
	}
	p := tr.find("p")
	if p.index == nil {
		t.Fatalf("%d children and no index", len(p.children))
	}
	for i := range n {
		topic := fmt.Sprintf("p/%d", (i*7)%n) // out of order
		if existed, err := tr.Delete(topic); !existed || err != nil {
			t.Fatalf("Delete(%q) = %v, %v", topic, existed, err)
		}
		want = slices.DeleteFunc(want, func(s string) bool { return s == topic })
		if got := matched(tr, "p/#", t0); !slices.Equal(got, want) {
			t.Fatalf("after deleting %q: Match p/# = %q; want %q", topic, got, want)
		}
		for _, w := range want {
			if _, ok := tr.Get(w); !ok {
				t.Fatalf("after deleting %q: Get(%q) finds nothing", topic, w)
			}
		}
		checkInvariants(t, tr)
		if left := n - i - 1; left > 0 && left < indexAt/2 && p.index != nil {
			t.Fatalf("%d children and still indexed", left)
		}
	}
	if nodeCount(tr) != 0 {
		t.Fatalf("%d nodes left", nodeCount(tr))
	}
}

// TestChurn sets, replaces, clears, deletes and expires random topics, then
// removes what is left: nothing may remain of the levels.
func TestChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	store := &MemStore{}
	tr := newTree(t, store, Options{MaxMessages: 500})
	now := t0
	live := map[string]bool{}
	for i := range 20000 {
		topic := randomTopic(rng)
		switch rng.IntN(5) {
		case 0:
			if _, err := tr.Delete(topic); err != nil {
				t.Fatal(err)
			}
			delete(live, topic)
		case 1:
			mustSet(t, tr, msg(topic, ""), now)
			delete(live, topic)
		case 2:
			err := tr.Set(expiring(topic, "e", now.Add(time.Duration(1+rng.IntN(20))*time.Second)), now)
			if err != nil && !errors.Is(err, ErrLimit) {
				t.Fatal(err)
			}
		default:
			err := tr.Set(msg(topic, "p"), now)
			if err != nil && !errors.Is(err, ErrLimit) {
				t.Fatal(err)
			}
		}
		if i%100 == 0 {
			now = now.Add(time.Second)
			if _, err := tr.Sweep(now); err != nil {
				t.Fatal(err)
			}
		}
		if i%5000 == 0 {
			checkInvariants(t, tr)
		}
	}
	checkInvariants(t, tr)
	checkStore(t, tr, store)
	for _, topic := range heldTopics(tr) {
		if _, err := tr.Delete(topic); err != nil {
			t.Fatal(err)
		}
	}
	if n := nodeCount(tr); n != 0 || tr.Len() != 0 || tr.Bytes() != 0 || len(tr.expiring) != 0 {
		t.Fatalf("after deleting everything: %d nodes, Len %d, Bytes %d, heap %d", n, tr.Len(), tr.Bytes(), len(tr.expiring))
	}
	if store.Len() != 0 {
		t.Fatalf("store still holds %d", store.Len())
	}
}

// randomTopic returns a topic name of one to five levels from a small alphabet,
// with empty levels and '$' levels now and then. The alphabet is larger than
// indexAt, so that nodes cross it both ways.
func randomTopic(rng *rand.Rand) string {
	levels := []string{"a", "b", "c", "", "$s", "dd", "e", "f", "g", "h", "i"}
	n := 1 + rng.IntN(5)
	topic := ""
	for i := range n {
		if i > 0 {
			topic += "/"
		}
		topic += levels[rng.IntN(len(levels))]
	}
	if topic == "" {
		topic = "z"
	}
	return topic
}

// TestLiveAgreesWithExpired checks the nodes' copy of the expiry, kept in Unix
// nanoseconds, against mqtt.Message.Expired, across the edges of that range.
func TestLiveAgreesWithExpired(t *testing.T) {
	epoch := time.Unix(0, 0)
	times := []time.Time{
		{}, epoch, epoch.Add(-1), epoch.Add(1), t0, t0.Add(-1), t0.Add(1),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, expiry := range times {
		n := &node{msg: expiring("x", "p", expiry), expiry: unixNano(expiry)}
		for _, now := range times {
			if !now.IsZero() && (now.Year() < 1678 || now.Year() > 2261) {
				continue // outside the range of Unix nanoseconds; the broker's clock is not
			}
			if got, want := n.live(nowNano(now)), !n.msg.Expired(now); got != want {
				t.Errorf("expiry %v, now %v: live %v; Expired says %v", expiry, now, got, !want)
			}
		}
	}
}
