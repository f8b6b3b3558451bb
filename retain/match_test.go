package retain

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

var matchTopics = []string{
	"a", "a/b", "a/b/c", "a/c", "b/b", "/a", "a/", "/",
	"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
	"sport/tennis/player1/score/wimbledon", "sport/tennis/player2",
	"$SYS", "$SYS/broker/uptime", "$SYS/monitor/Clients", "$other/x", "x/$y",
}

func TestMatch(t *testing.T) {
	tr := newTree(t, nil, Options{})
	for _, topic := range matchTopics {
		mustSet(t, tr, msg(topic, "p"), t0)
	}
	for _, c := range []struct {
		filter string
		want   []string
	}{
		// Exact filters are a lookup.
		{"a/b", []string{"a/b"}},
		{"a/b/c/d", nil},
		{"nothing", nil},
		{"a/", []string{"a/"}},
		{"/", []string{"/"}},
		{"$SYS", []string{"$SYS"}},
		{"x/$y", []string{"x/$y"}},
		// '+' fills one level.
		{"a/+", []string{"a/", "a/b", "a/c"}},
		{"+/b", []string{"a/b", "b/b"}},
		{"+/+", []string{"/", "/a", "a/", "a/b", "a/c", "b/b", "sport/", "x/$y"}},
		{"+", []string{"a", "sport"}},
		{"/+", []string{"/", "/a"}},
		{"sport/tennis/+", []string{"sport/tennis/player1", "sport/tennis/player2"}},
		{"sport/+", []string{"sport/"}},
		{"+/tennis/#", []string{
			"sport/tennis/player1", "sport/tennis/player1/ranking",
			"sport/tennis/player1/score/wimbledon", "sport/tennis/player2",
		}},
		// '#' fills the rest, including the level above it [MQTT-4.7.1-2].
		{"a/#", []string{"a", "a/", "a/b", "a/b/c", "a/c"}},
		{"sport/#", []string{
			"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
			"sport/tennis/player1/score/wimbledon", "sport/tennis/player2",
		}},
		{"sport/tennis/player1/#", []string{
			"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon",
		}},
		{"a/b/c/#", []string{"a/b/c"}},
		{"a/b/c/d/#", nil},
		{"+/#", []string{
			"/", "/a", "a", "a/", "a/b", "a/b/c", "a/c", "b/b",
			"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
			"sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "x/$y",
		}},
		// Filters beginning with a wildcard do not match '$' topics [MQTT-4.7.2-1].
		{"#", []string{
			"/", "/a", "a", "a/", "a/b", "a/b/c", "a/c", "b/b",
			"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
			"sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "x/$y",
		}},
		{"+/monitor/Clients", nil},
		{"$SYS/#", []string{"$SYS", "$SYS/broker/uptime", "$SYS/monitor/Clients"}},
		{"$SYS/monitor/+", []string{"$SYS/monitor/Clients"}},
		{"$SYS/+/+", []string{"$SYS/broker/uptime", "$SYS/monitor/Clients"}},
		{"$other/+", []string{"$other/x"}},
		{"x/+", []string{"x/$y"}}, // '$' matters only in the first level
	} {
		if err := mqtt.ValidTopicFilter(c.filter); err != nil {
			t.Fatalf("test filter %q: %v", c.filter, err)
		}
		if got := matched(tr, c.filter, t0); !slices.Equal(got, c.want) {
			t.Errorf("Match(%q) = %q; want %q", c.filter, got, c.want)
		}
		// The table agrees with mqtt.Match.
		var oracle []string
		for _, topic := range matchTopics {
			if mqtt.Match(c.filter, topic) {
				oracle = append(oracle, topic)
			}
		}
		slices.Sort(oracle)
		if !slices.Equal(oracle, c.want) {
			t.Errorf("mqtt.Match disagrees on %q: %q", c.filter, oracle)
		}
	}
}

// TestMatchOracle compares Match with mqtt.Match, topic by topic, over random
// topics and filters.
func TestMatchOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tr := newTree(t, nil, Options{})
	topics := map[string]bool{}
	for range 400 {
		topic := randomTopic(rng)
		topics[topic] = true
		mustSet(t, tr, msg(topic, "p"), t0)
	}
	for range 3000 {
		filter := randomFilter(rng)
		var want []string
		for topic := range topics {
			if mqtt.Match(filter, topic) {
				want = append(want, topic)
			}
		}
		slices.Sort(want)
		if got := matched(tr, filter, t0); !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q; mqtt.Match gives %q", filter, got, want)
		}
	}
}

func randomFilter(rng *rand.Rand) string {
	for {
		out := ""
		for i, level := range splitLevels(randomTopic(rng)) {
			if i > 0 {
				out += "/"
			}
			switch rng.IntN(4) {
			case 0:
				out += "+"
			default:
				out += level
			}
		}
		if rng.IntN(3) == 0 {
			if rng.IntN(2) == 0 {
				out += "/#"
			} else {
				out = "#"
			}
		}
		if mqtt.ValidTopicFilter(out) == nil {
			return out
		}
	}
}

func splitLevels(topic string) []string {
	var out []string
	for {
		level, rest, more := cutLevel(topic)
		out = append(out, level)
		if !more {
			return out
		}
		topic = rest
	}
}

func TestMatchStops(t *testing.T) {
	tr := newTree(t, nil, Options{})
	for i := range 10 {
		mustSet(t, tr, msg(fmt.Sprintf("s/%d", i), "p"), t0)
	}
	for _, filter := range []string{"s/+", "s/#", "#", "s/3"} {
		calls := 0
		tr.Match(filter, t0, func(*mqtt.Message) bool {
			calls++
			return false
		})
		if calls != 1 {
			t.Errorf("Match(%q) called fn %d times after it returned false; want 1", filter, calls)
		}
	}
	calls := 0
	tr.Range(func(*mqtt.Message) bool {
		calls++
		return calls < 3
	})
	if calls != 3 {
		t.Errorf("Range called fn %d times; want 3", calls)
	}
}

// TestMatchReentrant calls the tree from fn: fn runs with no lock held.
func TestMatchReentrant(t *testing.T) {
	tr := newTree(t, nil, Options{})
	for _, topic := range []string{"r/a", "r/b", "r/c"} {
		mustSet(t, tr, msg(topic, "p"), t0)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, filter := range []string{"r/+", "r/a"} {
			tr.Match(filter, t0, func(m *mqtt.Message) bool {
				mustSet(t, tr, msg(m.Topic+"/x", "q"), t0)
				if _, err := tr.Delete(m.Topic); err != nil {
					t.Error(err)
				}
				tr.Match("#", t0, func(*mqtt.Message) bool { return true })
				_, _ = tr.Sweep(t0)
				return true
			})
		}
		tr.Range(func(m *mqtt.Message) bool {
			if _, err := tr.Delete(m.Topic); err != nil {
				t.Error(err)
			}
			return true
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a call from fn deadlocked")
	}
	if tr.Len() != 0 || nodeCount(tr) != 0 {
		t.Fatalf("Len %d, %d nodes; want 0, 0", tr.Len(), nodeCount(tr))
	}
}

// TestConcurrent runs Set, Delete, Match, Get, Range and Sweep together (run it
// with -race). Every message Match gives must match its filter and not have
// expired; at the end the tree, its counters and the store agree.
func TestConcurrent(t *testing.T) {
	store := &MemStore{}
	tr := newTree(t, store, Options{MaxMessages: 300, MaxBytes: 300 * 8})
	var clock atomic.Int64 // seconds after t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load()) * time.Second) }
	var stop atomic.Bool
	var sets, delivered atomic.Int64
	var wg sync.WaitGroup
	run := func(seed uint64, fn func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed))
			for !stop.Load() {
				fn(rng)
			}
		}()
	}
	for w := range 4 {
		run(uint64(w), func(rng *rand.Rand) {
			topic := randomTopic(rng)
			var m *mqtt.Message
			switch rng.IntN(4) {
			case 0:
				m = msg(topic, "")
			case 1:
				m = expiring(topic, "exp", now().Add(time.Duration(1+rng.IntN(3))*time.Second))
			default:
				m = msg(topic, "payload")
			}
			if err := tr.Set(m, now()); err == nil {
				sets.Add(1)
			} else if !errors.Is(err, ErrLimit) {
				t.Error(err)
			}
		})
	}
	run(10, func(rng *rand.Rand) {
		if _, err := tr.Delete(randomTopic(rng)); err != nil {
			t.Error(err)
		}
	})
	for r := range 4 {
		run(uint64(20+r), func(rng *rand.Rand) {
			filter := randomFilter(rng)
			at := now()
			tr.Match(filter, at, func(m *mqtt.Message) bool {
				delivered.Add(1)
				if !mqtt.Match(filter, m.Topic) {
					t.Errorf("Match(%q) gave %q", filter, m.Topic)
				}
				if m.Expired(at) {
					t.Errorf("Match(%q) gave %q, expired", filter, m.Topic)
				}
				return rng.IntN(20) != 0
			})
			if m, ok := tr.Get(randomTopic(rng)); ok && len(m.Payload) == 0 {
				t.Errorf("Get gave an empty message")
			}
		})
	}
	run(30, func(rng *rand.Rand) {
		clock.Add(1)
		if _, err := tr.Sweep(now()); err != nil {
			t.Error(err)
		}
		n := 0
		tr.Range(func(*mqtt.Message) bool { n++; return true })
		if n > 300 {
			t.Errorf("Range gave %d messages, above the limit", n)
		}
		time.Sleep(time.Millisecond)
	})
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	if sets.Load() == 0 || delivered.Load() == 0 {
		t.Fatalf("%d sets, %d messages matched; the test did not run", sets.Load(), delivered.Load())
	}
	checkInvariants(t, tr)
	checkStore(t, tr, store)
	if tr.Len() > 300 || tr.Bytes() > 300*8 {
		t.Errorf("Len %d, Bytes %d above the limits", tr.Len(), tr.Bytes())
	}
}
