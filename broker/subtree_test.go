package broker

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// sub is one subscription to set up in a test.
type sub struct {
	who, filter string
	opts        SubscriptionOptions
}

func q(qos mqtt.QoS) SubscriptionOptions { return SubscriptionOptions{QoS: qos} }

func qid(qos mqtt.QoS, id uint32) SubscriptionOptions {
	return SubscriptionOptions{QoS: qos, SubscriptionID: id}
}

// describe renders a result as sorted lines, so that tests compare it whole:
// "c1 q2 rap ids=[3 5]" for a recipient, "g a/+: c1 q1 id=0, c2 q0 id=4" for a group.
func describe(res *MatchResult) []string {
	var out []string
	for _, r := range res.Recipients {
		line := fmt.Sprintf("%s q%d", r.Subscriber, r.QoS)
		if r.RetainAsPublished {
			line += " rap"
		}
		if len(r.SubscriptionIDs) > 0 {
			line += fmt.Sprintf(" ids=%v", r.SubscriptionIDs)
		}
		out = append(out, line)
	}
	for _, g := range res.Groups {
		var ms []string
		for _, m := range g.Members {
			ms = append(ms, describeMember(m))
		}
		slices.Sort(ms)
		out = append(out, fmt.Sprintf("%s %s: %s", g.Group, g.Filter, strings.Join(ms, ", ")))
	}
	slices.Sort(out)
	return out
}

func describeMember(m Member) string {
	o := m.Options
	return fmt.Sprintf("%s q%d id=%d nl=%v rap=%v rh=%d", m.Subscriber, o.QoS, o.SubscriptionID, o.NoLocal, o.RetainAsPublished, o.RetainHandling)
}

func mustSubscribe(t testing.TB, tree *SubTree, who, filter string, opts SubscriptionOptions) bool {
	t.Helper()
	created, err := tree.Subscribe(who, filter, opts)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", who, filter, err)
	}
	return created
}

// forEachTree runs f on a tree with a match cache and on one without.
func forEachTree(t *testing.T, f func(t *testing.T, tree *SubTree)) {
	for _, size := range []int{DefaultMatchCacheSize, 0} {
		t.Run(fmt.Sprintf("cache=%d", size), func(t *testing.T) { f(t, NewSubTree(size)) })
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name      string
		subs      []sub
		topic     string
		publisher string
		want      []string
	}{
		{"exact", []sub{{"c1", "a/b", q(1)}}, "a/b", "", []string{"c1 q1"}},
		{"exact not deeper", []sub{{"c1", "a/b", q(1)}}, "a/b/c", "", nil},
		{"exact not shallower", []sub{{"c1", "a/b", q(1)}}, "a", "", nil},
		{"exact not longer level", []sub{{"c1", "a/b", q(1)}}, "a/bc", "", nil},
		{"case matters", []sub{{"c1", "Sport", q(0)}}, "sport", "", nil},
		{"empty levels", []sub{{"c1", "a//b", q(0)}}, "a//b", "", []string{"c1 q0"}},
		{"plus", []sub{{"c1", "a/+/c", q(2)}}, "a/b/c", "", []string{"c1 q2"}},
		{"plus matches empty level", []sub{{"c1", "a/+/c", q(0)}}, "a//c", "", []string{"c1 q0"}},
		{"plus one level only", []sub{{"c1", "a/+", q(0)}}, "a/b/c", "", nil},
		{"plus needs its level", []sub{{"c1", "sport/+", q(0)}}, "sport", "", nil},
		{"plus at end takes empty level", []sub{{"c1", "sport/+", q(0)}}, "sport/", "", []string{"c1 q0"}},
		{"plus first", []sub{{"c1", "+/+", q(0)}}, "/finance", "", []string{"c1 q0"}},
		{"plus alone", []sub{{"c1", "+", q(0)}}, "/finance", "", nil},
		{"hash below", []sub{{"c1", "a/#", q(1)}}, "a/b/c", "", []string{"c1 q1"}},
		{"hash parent", []sub{{"c1", "a/#", q(1)}}, "a", "", []string{"c1 q1"}},
		{"hash empty level", []sub{{"c1", "a/#", q(1)}}, "a/", "", []string{"c1 q1"}},
		{"hash other branch", []sub{{"c1", "a/#", q(1)}}, "b/a", "", nil},
		{"hash alone", []sub{{"c1", "#", q(0)}}, "x/y", "", []string{"c1 q0"}},
		{"hash alone slash", []sub{{"c1", "#", q(0)}}, "/", "", []string{"c1 q0"}},
		{"plus then hash parent", []sub{{"c1", "+/#", q(0)}}, "a", "", []string{"c1 q0"}},
		{"plus hash needs level", []sub{{"c1", "a/+/#", q(0)}}, "a", "", nil},
		{"plus hash", []sub{{"c1", "a/+/#", q(0)}}, "a/b", "", []string{"c1 q0"}},
		{"dollar not by hash", []sub{{"c1", "#", q(0)}}, "$SYS/x", "", nil},
		{"dollar not by plus", []sub{{"c1", "+/x", q(0)}}, "$SYS/x", "", nil},
		{"dollar not by shared hash", []sub{{"c1", "$share/g/#", q(0)}}, "$SYS/x", "", nil},
		{"dollar by literal", []sub{{"c1", "$SYS/#", q(0)}, {"c2", "$SYS/+", q(1)}, {"c3", "#", q(0)}}, "$SYS/x", "",
			[]string{"c1 q0", "c2 q1"}},
		{"dollar shared literal", []sub{{"c1", "$share/g/$SYS/#", q(1)}}, "$SYS/x", "",
			[]string{"g $SYS/#: c1 q1 id=0 nl=false rap=false rh=0"}},
		{"dollar only first level", []sub{{"c1", "a/+", q(0)}, {"c2", "a/#", q(0)}}, "a/$x", "", []string{"c1 q0", "c2 q0"}},
		{"two subscribers", []sub{{"c1", "a/b", q(0)}, {"c2", "a/+", q(2)}, {"c3", "b/#", q(1)}}, "a/b", "",
			[]string{"c1 q0", "c2 q2"}},
		{"overlap merged", []sub{
			{"c1", "a/+", qid(0, 5)},
			{"c1", "a/b", qid(2, 3)},
			{"c1", "#", qid(1, 0)},
			{"c1", "a/#", qid(1, 5)},
			{"c2", "a/b", qid(1, 9)},
		}, "a/b", "", []string{"c1 q2 ids=[3 5]", "c2 q1 ids=[9]"}},
		{"overlap retain as published", []sub{
			{"c1", "a/+", SubscriptionOptions{QoS: 0, RetainAsPublished: true}},
			{"c1", "a/b", q(1)},
		}, "a/b", "", []string{"c1 q1 rap"}},
		{"no local skips publisher", []sub{{"c1", "a/b", SubscriptionOptions{NoLocal: true}}}, "a/b", "c1", nil},
		{"no local others get it", []sub{{"c1", "a/b", SubscriptionOptions{QoS: 1, NoLocal: true}}}, "a/b", "c2", []string{"c1 q1"}},
		{"no local without publisher", []sub{{"c1", "a/b", SubscriptionOptions{NoLocal: true}}}, "a/b", "", []string{"c1 q0"}},
		{"no local only that subscription", []sub{
			{"c1", "a/b", SubscriptionOptions{QoS: 2, NoLocal: true, SubscriptionID: 1, RetainAsPublished: true}},
			{"c1", "a/+", qid(1, 2)},
			{"c2", "a/b", SubscriptionOptions{QoS: 0, NoLocal: true}},
		}, "a/b", "c1", []string{"c1 q1 ids=[2]", "c2 q0"}},
		{"publisher without no local", []sub{{"c1", "a/b", q(1)}}, "a/b", "c1", []string{"c1 q1"}},
		{"shared two groups", []sub{
			{"c1", "$share/g1/a/+", qid(1, 4)},
			{"c2", "$share/g1/a/+", q(0)},
			{"c3", "$share/g2/a/+", q(2)},
		}, "a/b", "", []string{
			"g1 a/+: c1 q1 id=4 nl=false rap=false rh=0, c2 q0 id=0 nl=false rap=false rh=0",
			"g2 a/+: c3 q2 id=0 nl=false rap=false rh=0",
		}},
		{"shared and normal distinct", []sub{
			{"c1", "a/+", q(1)},
			{"c1", "$share/g/a/+", q(2)},
		}, "a/b", "c1", []string{"c1 q1", "g a/+: c1 q2 id=0 nl=false rap=false rh=0"}},
		{"shared same name other filters", []sub{
			{"c1", "$share/g/a/+", q(1)},
			{"c2", "$share/g/a/#", q(1)},
			{"c3", "$share/g/b/#", q(1)},
		}, "a/b", "", []string{
			"g a/#: c2 q1 id=0 nl=false rap=false rh=0",
			"g a/+: c1 q1 id=0 nl=false rap=false rh=0",
		}},
		{"shared members keep their options", []sub{
			{"c1", "$share/g/a", SubscriptionOptions{QoS: 2, RetainAsPublished: true, RetainHandling: 2, SubscriptionID: 8}},
		}, "a", "", []string{"g a: c1 q2 id=8 nl=false rap=true rh=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTree(t, func(t *testing.T, tree *SubTree) {
				for _, s := range tt.subs {
					mustSubscribe(t, tree, s.who, s.filter, s.opts)
				}
				var res MatchResult
				for _, pass := range []string{"first", "second"} { // the second may come from the cache
					tree.Match(tt.topic, tt.publisher, &res)
					if got := describe(&res); !slices.Equal(got, tt.want) {
						t.Errorf("%s Match(%q, %q) =\n\t%q\nwant\n\t%q", pass, tt.topic, tt.publisher, got, tt.want)
					}
				}
			})
		})
	}
}

func TestSubscribeReplaces(t *testing.T) {
	forEachTree(t, func(t *testing.T, tree *SubTree) {
		var res MatchResult
		if !mustSubscribe(t, tree, "c1", "a/+", qid(0, 1)) {
			t.Error("first Subscribe: created = false")
		}
		tree.Match("a/b", "", &res)
		opts := SubscriptionOptions{QoS: 2, RetainAsPublished: true, RetainHandling: 1, SubscriptionID: 7}
		if mustSubscribe(t, tree, "c1", "a/+", opts) { // [MQTT-3.8.4-3]
			t.Error("second Subscribe: created = true, want a replacement")
		}
		tree.Match("a/b", "", &res)
		if got, want := describe(&res), []string{"c1 q2 rap ids=[7]"}; !slices.Equal(got, want) {
			t.Errorf("after replace: %q, want %q", got, want)
		}
		if got := tree.Subscriptions("c1"); !slices.Equal(got, []Subscription{{"a/+", opts}}) {
			t.Errorf("Subscriptions = %+v", got)
		}
		if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 1 || m != 1 {
			t.Errorf("counts = %d subscriptions, %d subscribers; want 1, 1", n, m)
		}
		// The shared form of the same filter is another subscription.
		if !mustSubscribe(t, tree, "c1", "$share/g/a/+", q(1)) {
			t.Error("shared Subscribe: created = false")
		}
		if mustSubscribe(t, tree, "c1", "$share/g/a/+", q(0)) {
			t.Error("shared re-Subscribe: created = true")
		}
		if !mustSubscribe(t, tree, "c2", "a/+", q(0)) {
			t.Error("other subscriber: created = false")
		}
		if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 3 || m != 2 {
			t.Errorf("counts = %d subscriptions, %d subscribers; want 3, 2", n, m)
		}
	})
}

func TestSubscribeErrors(t *testing.T) {
	tree := NewSubTree(DefaultMatchCacheSize)
	tests := []struct {
		who, filter string
		opts        SubscriptionOptions
		code        mqtt.ReasonCode
	}{
		{"c1", "", q(0), mqtt.TopicFilterInvalid},
		{"c1", "a/#/b", q(0), mqtt.TopicFilterInvalid},
		{"c1", "a+", q(0), mqtt.TopicFilterInvalid},
		{"c1", "$share/g", q(0), mqtt.TopicFilterInvalid},
		{"c1", "$share/g+/a", q(0), mqtt.TopicFilterInvalid},
		{"c1", "a", q(3), mqtt.ProtocolError},
		{"c1", "a", SubscriptionOptions{RetainHandling: 3}, mqtt.ProtocolError},
		{"c1", "a", SubscriptionOptions{SubscriptionID: mqtt.MaxSubscriptionID + 1}, mqtt.ProtocolError},
		{"c1", "$share/g/a", SubscriptionOptions{NoLocal: true}, mqtt.ProtocolError}, // [MQTT-3.8.3-4]
		{"", "a", q(0), mqtt.UnspecifiedError},
	}
	for _, tt := range tests {
		created, err := tree.Subscribe(tt.who, tt.filter, tt.opts)
		if err == nil || created || mqtt.CodeOf(err) != tt.code {
			t.Errorf("Subscribe(%q, %q, %+v) = %v, %v; want an error with %s", tt.who, tt.filter, tt.opts, created, err, tt.code)
		}
	}
	if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 0 || m != 0 || tree.nodes != 1 {
		t.Errorf("after failed Subscribes: %d subscriptions, %d subscribers, %d nodes", n, m, tree.nodes)
	}
	if _, err := tree.Subscribe("c1", "a", SubscriptionOptions{NoLocal: true, SubscriptionID: mqtt.MaxSubscriptionID}); err != nil {
		t.Errorf("largest subscription identifier, no local: %v", err)
	}
}

func TestUnsubscribe(t *testing.T) {
	forEachTree(t, func(t *testing.T, tree *SubTree) {
		var res MatchResult
		mustSubscribe(t, tree, "c1", "a/+", q(1))
		mustSubscribe(t, tree, "c1", "a/b", q(0))
		mustSubscribe(t, tree, "c1", "$share/g/a/+", q(0))
		mustSubscribe(t, tree, "c2", "a/+", q(2))
		tree.Match("a/b", "", &res)

		for _, tt := range []struct {
			who, filter string
			want        bool
		}{
			{"c1", "a/+", true},
			{"c1", "a/+", false}, // already gone: UNSUBACK 0x11
			{"c3", "a/b", false}, // no such subscriber
			{"c1", "a/c", false}, // never subscribed
			{"c1", "a/#/x", false},
			{"c1", "$share/g/a/b", false},
			{"c1", "$share/h/a/+", false},
		} {
			if got := tree.Unsubscribe(tt.who, tt.filter); got != tt.want {
				t.Errorf("Unsubscribe(%q, %q) = %v, want %v", tt.who, tt.filter, got, tt.want)
			}
		}
		tree.Match("a/b", "", &res)
		want := []string{"c1 q0", "c2 q2", "g a/+: c1 q0 id=0 nl=false rap=false rh=0"}
		if got := describe(&res); !slices.Equal(got, want) {
			t.Errorf("after Unsubscribe(c1, a/+): %q, want %q", got, want)
		}
		if !tree.Unsubscribe("c1", "$share/g/a/+") {
			t.Error("Unsubscribe of the shared subscription = false")
		}
		tree.Match("a/b", "", &res)
		if got, want := describe(&res), []string{"c1 q0", "c2 q2"}; !slices.Equal(got, want) {
			t.Errorf("after shared Unsubscribe: %q, want %q", got, want)
		}
		if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 2 || m != 2 {
			t.Errorf("counts = %d, %d; want 2, 2", n, m)
		}
		if !tree.Unsubscribe("c1", "a/b") {
			t.Error("Unsubscribe(c1, a/b) = false")
		}
		if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 1 || m != 1 {
			t.Errorf("counts = %d, %d; want 1, 1", n, m)
		}
		if got := tree.Subscriptions("c1"); got != nil {
			t.Errorf("Subscriptions(c1) = %+v, want nil", got)
		}
	})
}

func TestUnsubscribeAll(t *testing.T) {
	forEachTree(t, func(t *testing.T, tree *SubTree) {
		var res MatchResult
		for _, f := range []string{"a/b", "a/+", "#", "$share/g/a/b", "$share/h/#"} {
			mustSubscribe(t, tree, "c1", f, q(1))
		}
		mustSubscribe(t, tree, "c2", "a/b", q(0))
		mustSubscribe(t, tree, "c2", "$share/g/a/b", q(0))
		tree.Match("a/b", "", &res)
		if len(res.Recipients) != 2 || len(res.Groups) != 2 {
			t.Fatalf("before: %q", describe(&res))
		}
		if n := tree.UnsubscribeAll("c1"); n != 5 {
			t.Errorf("UnsubscribeAll(c1) = %d, want 5", n)
		}
		if n := tree.UnsubscribeAll("c1"); n != 0 {
			t.Errorf("second UnsubscribeAll(c1) = %d, want 0", n)
		}
		tree.Match("a/b", "", &res)
		want := []string{"c2 q0", "g a/b: c2 q0 id=0 nl=false rap=false rh=0"}
		if got := describe(&res); !slices.Equal(got, want) {
			t.Errorf("after: %q, want %q", got, want)
		}
		if n, m := tree.SubscriptionCount(), tree.SubscriberCount(); n != 2 || m != 1 {
			t.Errorf("counts = %d, %d; want 2, 1", n, m)
		}
		if tree.Unsubscribe("c1", "a/b") {
			t.Error("Unsubscribe after UnsubscribeAll = true")
		}
	})
}

func TestSubscriptions(t *testing.T) {
	tree := NewSubTree(DefaultMatchCacheSize)
	want := []Subscription{
		{"$SYS/#", q(0)},
		{"$share/g/a/+", qid(1, 3)},
		{"a/+", SubscriptionOptions{QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, SubscriptionID: 9}},
		{"a/b", q(1)},
	}
	for _, i := range []int{2, 0, 3, 1} {
		mustSubscribe(t, tree, "c1", want[i].Filter, want[i].Options)
	}
	mustSubscribe(t, tree, "c2", "z", q(0))
	got := tree.Subscriptions("c1")
	if !slices.Equal(got, want) {
		t.Errorf("Subscriptions(c1) =\n\t%+v\nwant\n\t%+v", got, want)
	}
	got[0].Filter = "changed" // the slice is the caller's
	if again := tree.Subscriptions("c1"); !slices.Equal(again, want) {
		t.Errorf("Subscriptions changed through a returned slice: %+v", again)
	}
	if got := tree.Subscriptions("nobody"); got != nil {
		t.Errorf("Subscriptions(nobody) = %+v", got)
	}
}

func TestSharedGroups(t *testing.T) {
	forEachTree(t, func(t *testing.T, tree *SubTree) {
		var res MatchResult
		mustSubscribe(t, tree, "c1", "$share/g1/s/+", q(1))
		mustSubscribe(t, tree, "c2", "$share/g1/s/+", q(2))
		mustSubscribe(t, tree, "c3", "$share/g2/s/+", q(0))
		mustSubscribe(t, tree, "c1", "s/+", q(0))
		tree.Match("s/x", "c1", &res)
		want := []string{
			"c1 q0",
			"g1 s/+: c1 q1 id=0 nl=false rap=false rh=0, c2 q2 id=0 nl=false rap=false rh=0",
			"g2 s/+: c3 q0 id=0 nl=false rap=false rh=0",
		}
		if got := describe(&res); !slices.Equal(got, want) {
			t.Fatalf("Match = %q, want %q", got, want)
		}
		// The last member's departure removes the group.
		tree.Unsubscribe("c3", "$share/g2/s/+")
		tree.Unsubscribe("c1", "$share/g1/s/+")
		tree.Match("s/x", "", &res)
		want = []string{"c1 q0", "g1 s/+: c2 q2 id=0 nl=false rap=false rh=0"}
		if got := describe(&res); !slices.Equal(got, want) {
			t.Fatalf("after leaving: %q, want %q", got, want)
		}
		tree.mu.RLock()
		groups := len(tree.root.children["s"].plus.groups)
		tree.mu.RUnlock()
		if groups != 1 {
			t.Errorf("node holds %d groups, want 1", groups)
		}
	})
}

func TestCacheInvalidation(t *testing.T) {
	tree := NewSubTree(DefaultMatchCacheSize)
	var res MatchResult
	match := func(topic, publisher string) []string {
		tree.Match(topic, publisher, &res)
		return describe(&res)
	}
	cached := func(topic string) bool {
		_, ok := tree.cache.get(topic)
		return ok
	}

	if got := match("a/b", ""); got != nil {
		t.Fatalf("empty tree matched %q", got)
	}
	if !cached("a/b") {
		t.Fatal("a/b not cached after Match")
	}
	steps := []struct {
		name   string
		change func()
		topic  string // matched before and after change
		want   []string
	}{
		{"subscribe exact", func() { mustSubscribe(t, tree, "c1", "a/b", q(0)) }, "a/b", []string{"c1 q0"}},
		{"subscribe plus", func() { mustSubscribe(t, tree, "c2", "+/b", q(1)) }, "a/b", []string{"c1 q0", "c2 q1"}},
		{"subscribe hash parent", func() { mustSubscribe(t, tree, "c3", "a/b/#", q(2)) }, "a/b", []string{"c1 q0", "c2 q1", "c3 q2"}},
		{"subscribe shared", func() { mustSubscribe(t, tree, "c4", "$share/g/a/#", q(2)) }, "a/b",
			[]string{"c1 q0", "c2 q1", "c3 q2", "g a/#: c4 q2 id=0 nl=false rap=false rh=0"}},
		{"replace options", func() { mustSubscribe(t, tree, "c1", "a/b", qid(2, 5)) }, "a/b",
			[]string{"c1 q2 ids=[5]", "c2 q1", "c3 q2", "g a/#: c4 q2 id=0 nl=false rap=false rh=0"}},
		{"replace shared options", func() { mustSubscribe(t, tree, "c4", "$share/g/a/#", q(0)) }, "a/b",
			[]string{"c1 q2 ids=[5]", "c2 q1", "c3 q2", "g a/#: c4 q0 id=0 nl=false rap=false rh=0"}},
		{"unsubscribe plus", func() { tree.Unsubscribe("c2", "+/b") }, "a/b",
			[]string{"c1 q2 ids=[5]", "c3 q2", "g a/#: c4 q0 id=0 nl=false rap=false rh=0"}},
		{"unsubscribe shared", func() { tree.Unsubscribe("c4", "$share/g/a/#") }, "a/b", []string{"c1 q2 ids=[5]", "c3 q2"}},
		{"unsubscribe all", func() { tree.UnsubscribeAll("c3") }, "a/b", []string{"c1 q2 ids=[5]"}},
		{"unsubscribe exact", func() { tree.Unsubscribe("c1", "a/b") }, "a/b", nil},
		{"subscribe $ literal", func() { mustSubscribe(t, tree, "c5", "$SYS/+", q(1)) }, "$SYS/x", []string{"c5 q1"}},
		{"subscribe hash not $", func() { mustSubscribe(t, tree, "c6", "#", q(1)) }, "$SYS/x", []string{"c5 q1"}},
	}
	for _, s := range steps {
		match(s.topic, "")
		if !cached(s.topic) {
			t.Fatalf("%s: %q not cached", s.name, s.topic)
		}
		s.change()
		if got := match(s.topic, ""); !slices.Equal(got, s.want) {
			t.Errorf("%s: Match(%q) = %q, want %q", s.name, s.topic, got, s.want)
		}
	}

	// A change leaves the cached answers of topics its filter does not match.
	match("x/y", "")
	match("a/b", "")
	mustSubscribe(t, tree, "c7", "a/+", q(0))
	mustSubscribe(t, tree, "c7", "x/z", q(0))
	mustSubscribe(t, tree, "c7", "+/z", q(0))
	mustSubscribe(t, tree, "c7", "x/+/y", q(0))
	if !cached("x/y") || cached("a/b") {
		t.Errorf("after subscribing a/+, x/z, +/z and x/+/y: x/y cached %v (want true), a/b cached %v (want false)", cached("x/y"), cached("a/b"))
	}
	mustSubscribe(t, tree, "c7", "+/y", q(0))
	if cached("x/y") {
		t.Error("x/y still cached after subscribing +/y")
	}
	match("x/y", "")
	mustSubscribe(t, tree, "c7", "x/#", q(0))
	if cached("x/y") {
		t.Error("x/y still cached after subscribing x/#")
	}

	// The cache stays within its bound.
	small := NewSubTree(64)
	mustSubscribe(t, small, "c1", "t/+", q(0))
	for i := range 1000 {
		small.Match(fmt.Sprintf("t/%d", i), "", &res)
		if len(res.Recipients) != 1 {
			t.Fatalf("Match(t/%d) = %q", i, describe(&res))
		}
	}
	if n := small.cache.len(); n == 0 || n > 64 {
		t.Errorf("cache holds %d topics, want 1 to 64", n)
	}
}

// TestKeepsNoReference checks that the tree copies the strings it keeps, so a
// caller may pass strings over a buffer it reuses.
func TestKeepsNoReference(t *testing.T) {
	tree := NewSubTree(DefaultMatchCacheSize)
	sbuf := []byte("c1 $share/g/a/+")
	mustSubscribe(t, tree, unsafe.String(&sbuf[0], 2), unsafe.String(&sbuf[3], len(sbuf)-3), q(1))
	mustSubscribe(t, tree, unsafe.String(&sbuf[0], 2), unsafe.String(&sbuf[12], 3), q(1))
	copy(sbuf, "xx $share/h/x/x")
	want := []Subscription{{"$share/g/a/+", q(1)}, {"a/+", q(1)}}
	if got := tree.Subscriptions("c1"); !slices.Equal(got, want) {
		t.Errorf("Subscriptions(c1) = %+v after the caller reused its buffer", got)
	}
	var res MatchResult
	tree.Match("a/b", "", &res)
	if got := describe(&res); !slices.Equal(got, []string{"c1 q1", "g a/+: c1 q1 id=0 nl=false rap=false rh=0"}) {
		t.Errorf("Match(a/b) = %q after the caller reused its buffer", got)
	}
	if !tree.Unsubscribe("c1", "$share/g/a/+") || tree.UnsubscribeAll("c1") != 1 || tree.nodes != 1 {
		t.Errorf("removal after the caller reused its buffer left %d nodes", tree.nodes)
	}

	mustSubscribe(t, tree, "c1", "a/b", q(1))
	buf := []byte("a/b")
	tree.Match(unsafe.String(&buf[0], len(buf)), "", &res)
	copy(buf, "x/y")
	if _, ok := tree.cache.get("a/b"); !ok {
		t.Error("a/b is not found in the cache once the caller reused its buffer")
	}
	if _, ok := tree.cache.get("x/y"); ok {
		t.Error("the cache holds the caller's buffer as a key")
	}
	tree.Match("a/b", "", &res)
	if got := describe(&res); !slices.Equal(got, []string{"c1 q1"}) {
		t.Errorf("after reusing the buffer: %q", got)
	}
}

func TestPruning(t *testing.T) {
	tree := NewSubTree(DefaultMatchCacheSize)
	var filters []string
	for i := range 200 {
		filters = append(filters,
			fmt.Sprintf("d/%d/s", i),
			fmt.Sprintf("d/+/s/%d", i),
			fmt.Sprintf("d/%d/#", i),
			fmt.Sprintf("$share/g%d/d/%d/x", i%3, i),
			fmt.Sprintf("%d/+/+/#", i),
		)
	}
	var res MatchResult
	for round := range 3 {
		for i, f := range filters {
			mustSubscribe(t, tree, fmt.Sprintf("c%d", i%7), f, q(1))
			mustSubscribe(t, tree, "other", f, q(0))
		}
		for i := range 50 {
			tree.Match(fmt.Sprintf("d/%d/s", i), "", &res)
		}
		if tree.nodes <= 1 || tree.SubscriptionCount() != 2*len(filters) {
			t.Fatalf("round %d: %d nodes, %d subscriptions", round, tree.nodes, tree.SubscriptionCount())
		}
		for i, f := range filters {
			if !tree.Unsubscribe(fmt.Sprintf("c%d", i%7), f) {
				t.Fatalf("Unsubscribe(%q) = false", f)
			}
		}
		if n := tree.UnsubscribeAll("other"); n != len(filters) {
			t.Fatalf("UnsubscribeAll(other) = %d", n)
		}
		r := tree.root
		if tree.nodes != 1 || r.children != nil || r.plus != nil || r.hash != nil || len(tree.subscribers) != 0 {
			t.Fatalf("round %d: after removing everything %d nodes, %d children, %d subscribers",
				round, tree.nodes, len(r.children), len(tree.subscribers))
		}
		if tree.SubscriptionCount() != 0 || tree.SubscriberCount() != 0 {
			t.Fatalf("round %d: counts %d, %d", round, tree.SubscriptionCount(), tree.SubscriberCount())
		}
	}
	// Removing one filter keeps the levels that others still use.
	mustSubscribe(t, tree, "c1", "a/b/c", q(0))
	mustSubscribe(t, tree, "c1", "a/b", q(0))
	mustSubscribe(t, tree, "c1", "a/+/c", q(0))
	if tree.nodes != 6 { // root, a, b, c below b, +, c below +
		t.Errorf("%d nodes, want 6", tree.nodes)
	}
	tree.Unsubscribe("c1", "a/b/c")
	if tree.nodes != 5 {
		t.Errorf("%d nodes after removing a/b/c, want 5", tree.nodes)
	}
	tree.Match("a/b", "", &res)
	if got := describe(&res); !slices.Equal(got, []string{"c1 q0"}) {
		t.Errorf("Match(a/b) = %q", got)
	}
}

func TestMatchAllocs(t *testing.T) {
	build := func(size int) *SubTree {
		tree := NewSubTree(size)
		for i := range 50 {
			c := fmt.Sprintf("c%d", i%10)
			mustSubscribe(t, tree, c, fmt.Sprintf("d/%d/t", i), qid(1, uint32(i+1)))
			mustSubscribe(t, tree, c, "d/+/t", SubscriptionOptions{QoS: 2, NoLocal: true, SubscriptionID: 100})
			mustSubscribe(t, tree, c, fmt.Sprintf("$share/g%d/d/#", i%3), q(0))
		}
		mustSubscribe(t, tree, "c0", "#", q(0))
		return tree
	}
	topics := []string{"d/1/t", "d/7/t", "d/x/t", "e", "d/1/t/u", "$SYS/x"}
	for _, size := range []int{DefaultMatchCacheSize, 0} {
		tree := build(size)
		var res MatchResult
		for _, topic := range topics { // grow res and fill the cache
			tree.Match(topic, "c1", &res)
		}
		tree.Match("d/1/t", "c1", &res)
		if len(res.Recipients) == 0 || len(res.Groups) != 3 {
			t.Fatalf("cache=%d: unexpected result %q", size, describe(&res))
		}
		allocs := testing.AllocsPerRun(100, func() {
			for _, topic := range topics {
				tree.Match(topic, "c1", &res)
			}
		})
		if allocs != 0 {
			t.Errorf("cache=%d: Match allocates %.1f times per %d topics, want 0", size, allocs, len(topics))
		}
	}
}

// TestAgainstModel applies random changes and checks every answer of Match against
// a brute-force model built on mqtt.Match, with a small cache so that entries are
// evicted and invalidated all the time.
func TestAgainstModel(t *testing.T) {
	levels := []string{"a", "b", "$x", ""}
	var topics []string
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		for _, l := range levels {
			topic := l
			if depth > 0 {
				topic = prefix + "/" + l
			}
			topics = append(topics, topic)
			if depth < 2 {
				gen(topic, depth+1)
			}
		}
	}
	gen("", 0)
	whos := []string{"c1", "c2", "c3", "c4"}
	rng := rand.New(rand.NewPCG(1, 2))
	randFilter := func() string {
		parts := make([]string, 1+rng.IntN(3))
		for i := range parts {
			parts[i] = []string{"a", "b", "$x", "", "+", "+", "#"}[rng.IntN(7)]
		}
		f := strings.Join(parts, "/")
		if rng.IntN(5) == 0 {
			f = "$share/" + []string{"g1", "g2"}[rng.IntN(2)] + "/" + f
		}
		return f
	}

	for _, size := range []int{16, 0} {
		t.Run(fmt.Sprintf("cache=%d", size), func(t *testing.T) {
			tree := NewSubTree(size)
			model := map[string]map[string]SubscriptionOptions{}
			var res MatchResult
			check := func(step int, topic, publisher string) {
				t.Helper()
				tree.Match(topic, publisher, &res)
				got := describe(&res)
				want := modelMatch(model, topic, publisher)
				if !slices.Equal(got, want) {
					t.Fatalf("step %d: Match(%q, %q) =\n\t%q\nwant\n\t%q", step, topic, publisher, got, want)
				}
			}
			for step := range 1500 {
				who := whos[rng.IntN(len(whos))]
				switch op := rng.IntN(20); {
				case op < 12:
					f := randFilter()
					if mqtt.ValidTopicFilter(f) != nil {
						continue
					}
					opts := SubscriptionOptions{
						QoS:               mqtt.QoS(rng.IntN(3)),
						NoLocal:           rng.IntN(3) == 0,
						RetainAsPublished: rng.IntN(2) == 0,
						SubscriptionID:    uint32(rng.IntN(4)),
					}
					if strings.HasPrefix(f, mqtt.SharePrefix) {
						opts.NoLocal = false
					}
					_, existed := model[who][f]
					if created := mustSubscribe(t, tree, who, f, opts); created == existed {
						t.Fatalf("step %d: Subscribe(%q, %q) created = %v with existed = %v", step, who, f, created, existed)
					}
					if model[who] == nil {
						model[who] = map[string]SubscriptionOptions{}
					}
					model[who][f] = opts
				case op < 18:
					// Unsubscribe one the subscriber holds, or a random filter.
					f := randFilter()
					if held := slices.Sorted(maps.Keys(model[who])); len(held) > 0 && rng.IntN(4) != 0 {
						f = held[rng.IntN(len(held))]
					}
					_, existed := model[who][f]
					if got := tree.Unsubscribe(who, f); got != existed {
						t.Fatalf("step %d: Unsubscribe(%q, %q) = %v, want %v", step, who, f, got, existed)
					}
					delete(model[who], f)
					if len(model[who]) == 0 {
						delete(model, who)
					}
				default:
					if got, want := tree.UnsubscribeAll(who), len(model[who]); got != want {
						t.Fatalf("step %d: UnsubscribeAll(%q) = %d, want %d", step, who, got, want)
					}
					delete(model, who)
				}
				n := 0
				for _, fs := range model {
					n += len(fs)
				}
				if tree.SubscriptionCount() != n || tree.SubscriberCount() != len(model) {
					t.Fatalf("step %d: counts %d, %d; want %d, %d", step, tree.SubscriptionCount(), tree.SubscriberCount(), n, len(model))
				}
				if got, want := len(tree.Subscriptions(who)), len(model[who]); got != want {
					t.Fatalf("step %d: %d subscriptions of %s, want %d", step, got, who, want)
				}
				for range 10 {
					check(step, topics[rng.IntN(len(topics))], whos[rng.IntN(len(whos))])
				}
				if step%100 == 0 {
					for _, topic := range topics {
						check(step, topic, "")
					}
				}
			}
			for who := range model {
				tree.UnsubscribeAll(who)
			}
			if tree.nodes != 1 {
				t.Errorf("%d nodes left after removing every subscriber", tree.nodes)
			}
		})
	}
}

// modelMatch answers Match by testing every subscription with mqtt.Match.
func modelMatch(model map[string]map[string]SubscriptionOptions, topic, publisher string) []string {
	res := &MatchResult{}
	groups := map[[2]string][]Member{}
	for who, fs := range model {
		var rec *Recipient
		for f, o := range fs {
			if g, sf, ok := mqtt.SplitShared(f); ok {
				if mqtt.Match(sf, topic) {
					groups[[2]string{g, sf}] = append(groups[[2]string{g, sf}], Member{who, o})
				}
				continue
			}
			if !mqtt.Match(f, topic) || (o.NoLocal && who == publisher) {
				continue
			}
			if rec == nil {
				rec = &Recipient{Subscriber: who}
			}
			rec.QoS = max(rec.QoS, o.QoS)
			rec.RetainAsPublished = rec.RetainAsPublished || o.RetainAsPublished
			if o.SubscriptionID != 0 && !slices.Contains(rec.SubscriptionIDs, o.SubscriptionID) {
				rec.SubscriptionIDs = append(rec.SubscriptionIDs, o.SubscriptionID)
			}
		}
		if rec != nil {
			slices.Sort(rec.SubscriptionIDs)
			res.Recipients = append(res.Recipients, *rec)
		}
	}
	for k, ms := range groups {
		res.Groups = append(res.Groups, GroupMatch{Group: k[0], Filter: k[1], Members: ms})
	}
	return describe(res)
}

// TestConcurrent runs matchers against writers that subscribe and unsubscribe in
// the same topic space. Matchers check that subscriptions which never change are
// always found; writers check that their own change is visible to their next Match.
func TestConcurrent(t *testing.T) {
	tree := NewSubTree(64)
	mustSubscribe(t, tree, "anchor", "s/+/x", qid(1, 7))
	mustSubscribe(t, tree, "anchor", "s/#", qid(0, 3))
	mustSubscribe(t, tree, "member", "$share/g/s/+/x", q(2))

	const matchers, writers, rounds = 3, 3, 600
	var (
		stop      atomic.Bool
		matched   [matchers]atomic.Int64
		failed    atomic.Bool
		wgMatch   sync.WaitGroup
		wgWriters sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	for m := range matchers {
		wgMatch.Add(1)
		go func() {
			defer wgMatch.Done()
			rng := rand.New(rand.NewPCG(uint64(m), 99))
			var res MatchResult
			for !stop.Load() && !failed.Load() {
				topic := fmt.Sprintf("s/%d/x", rng.IntN(40))
				tree.Match(topic, "", &res)
				ok := false
				for _, r := range res.Recipients {
					if r.Subscriber == "anchor" {
						ok = r.QoS == 1 && slices.Equal(r.SubscriptionIDs, []uint32{3, 7})
					}
				}
				if !ok || len(res.Groups) != 1 || res.Groups[0].Members[0].Subscriber != "member" {
					fail("Match(%q) lost the anchor subscriptions: %q", topic, describe(&res))
					return
				}
				matched[m].Add(1)
			}
		}()
	}
	// Start writing once every matcher is running.
	for m := range matchers {
		for matched[m].Load() == 0 && !failed.Load() {
			runtime.Gosched()
		}
	}
	for w := range writers {
		wgWriters.Add(1)
		go func() {
			defer wgWriters.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			who := fmt.Sprintf("w%d", w)
			var res MatchResult
			has := func(topic string) bool {
				tree.Match(topic, "", &res)
				for _, r := range res.Recipients {
					if r.Subscriber == who {
						return true
					}
				}
				return false
			}
			for i := range rounds {
				n := rng.IntN(40)
				topic := fmt.Sprintf("s/%d/x", n)
				filter := []string{topic, "s/+/x", fmt.Sprintf("s/%d/#", n), "+/+/x"}[i%4]
				if _, err := tree.Subscribe(who, filter, q(0)); err != nil {
					fail("Subscribe: %v", err)
					return
				}
				if !has(topic) {
					fail("%s: Match(%q) misses %q right after Subscribe", who, topic, filter)
					return
				}
				if i%5 == 0 {
					tree.UnsubscribeAll(who)
				} else if !tree.Unsubscribe(who, filter) {
					fail("%s: Unsubscribe(%q) = false", who, filter)
					return
				}
				if has(topic) {
					fail("%s: Match(%q) still finds %q after Unsubscribe", who, topic, filter)
					return
				}
			}
		}()
	}
	wgWriters.Wait()
	stop.Store(true)
	wgMatch.Wait()
	if tree.SubscriptionCount() != 3 || tree.SubscriberCount() != 2 {
		t.Errorf("counts after the writers: %d, %d; want 3, 2", tree.SubscriptionCount(), tree.SubscriberCount())
	}
	if tree.nodes != 5 { // root, s, + below s, x below +, # below s
		t.Errorf("%d nodes after the writers, want 5", tree.nodes)
	}
}
