package broker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// The benchmark topic space is site/{s}/dev/{d}/{metric}: 100 sites, 1000 devices
// per site, 10 metrics, a million topic names.
const (
	benchSites   = 100
	benchDevices = 1000
	benchSubs    = 100_000
)

var benchMetrics = [...]string{"temp", "hum", "co2", "volt", "amp", "rssi", "door", "lux", "batt", "state"}

func benchTopic(s, d, m int) string {
	return fmt.Sprintf("site/%d/dev/%d/%s", s, d, benchMetrics[m])
}

// benchFilter returns a filter of the mix: "exact" gives only topic names; "wild"
// gives 70% topic names, 20% with '+' (site/+/dev/{d}/{m} and site/{s}/dev/{d}/+)
// and 10% with '#' (site/{s}/dev/{d}/#).
func benchFilter(rng *rand.Rand, mix string) string {
	s, d, m := rng.IntN(benchSites), rng.IntN(benchDevices), rng.IntN(len(benchMetrics))
	if mix == "exact" {
		return benchTopic(s, d, m)
	}
	switch r := rng.IntN(100); {
	case r < 70:
		return benchTopic(s, d, m)
	case r < 80:
		return fmt.Sprintf("site/+/dev/%d/%s", d, benchMetrics[m])
	case r < 90:
		return fmt.Sprintf("site/%d/dev/%d/+", s, d)
	default:
		return fmt.Sprintf("site/%d/dev/%d/#", s, d)
	}
}

// benchTree is a tree of benchSubs subscriptions held by benchSubs/10 subscribers,
// and topic names that match at least one of them.
type benchTree struct {
	tree   *SubTree
	topics []string // 65536 topic names of exact subscriptions, in random order
}

var (
	benchTreesMu sync.Mutex
	benchTrees   = map[string]*benchTree{}
)

// getBenchTree builds a tree once per mix and cache size and keeps it for the
// benchmarks that follow.
func getBenchTree(b *testing.B, mix string, cacheSize int) *benchTree {
	benchTreesMu.Lock()
	defer benchTreesMu.Unlock()
	key := fmt.Sprintf("%s/%d", mix, cacheSize)
	if bt := benchTrees[key]; bt != nil {
		return bt
	}
	rng := rand.New(rand.NewPCG(42, uint64(len(mix))))
	bt := &benchTree{tree: NewSubTree(cacheSize)}
	for i := range benchSubs {
		f := benchFilter(rng, mix)
		if _, err := bt.tree.Subscribe(fmt.Sprintf("client-%d", i/10), f, SubscriptionOptions{QoS: 1}); err != nil {
			b.Fatal(err)
		}
		if len(bt.topics) < 1<<16 && !mqtt.HasWildcard(f) {
			bt.topics = append(bt.topics, f)
		}
	}
	rng.Shuffle(len(bt.topics), func(i, j int) { bt.topics[i], bt.topics[j] = bt.topics[j], bt.topics[i] })
	benchTrees[key] = bt
	return bt
}

// BenchmarkMatch matches topic names against 100,000 subscriptions: cache=warm
// rotates over 256 topics that stay in the cache, cache=miss over 65,536 topics,
// far more than the cache holds, and cache=off walks the tree every time.
func BenchmarkMatch(b *testing.B) {
	for _, mix := range []string{"exact", "wild"} {
		for _, c := range []struct {
			name   string
			size   int
			topics int
		}{
			{"warm", DefaultMatchCacheSize, 256},
			{"miss", DefaultMatchCacheSize, 1 << 16},
			{"off", 0, 1 << 16},
		} {
			b.Run(fmt.Sprintf("subs=100k/mix=%s/cache=%s", mix, c.name), func(b *testing.B) {
				bt := getBenchTree(b, mix, c.size)
				topics := bt.topics[:c.topics]
				var res MatchResult
				for _, topic := range topics[:min(len(topics), 1024)] {
					bt.tree.Match(topic, "", &res)
				}
				recipients := 0
				i := 0
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					bt.tree.Match(topics[i&(len(topics)-1)], "", &res)
					recipients += len(res.Recipients)
					i++
				}
				b.ReportMetric(float64(recipients)/float64(b.N), "recipients/op")
			})
		}
	}
}

// BenchmarkMatchParallel is BenchmarkMatch with every goroutine matching at once,
// each with its own MatchResult.
func BenchmarkMatchParallel(b *testing.B) {
	for _, c := range []struct {
		name   string
		size   int
		topics int
	}{
		{"warm", DefaultMatchCacheSize, 256},
		{"miss", DefaultMatchCacheSize, 1 << 16},
		{"off", 0, 1 << 16},
	} {
		b.Run(fmt.Sprintf("subs=100k/mix=wild/cache=%s", c.name), func(b *testing.B) {
			bt := getBenchTree(b, "wild", c.size)
			topics := bt.topics[:c.topics]
			var res MatchResult
			for _, topic := range topics[:min(len(topics), 1024)] {
				bt.tree.Match(topic, "", &res)
			}
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var res MatchResult
				i := int(seed.Add(1) * 7919)
				for pb.Next() {
					bt.tree.Match(topics[i&(len(topics)-1)], "", &res)
					i++
				}
			})
		})
	}
}

// BenchmarkChurn subscribes and unsubscribes one filter per operation next to
// 100,000 subscriptions, the match cache filled before timing begins; a filter
// with a wildcard scans the cache to drop the topics it matches.
func BenchmarkChurn(b *testing.B) {
	for _, mix := range []string{"exact", "wild"} {
		b.Run(fmt.Sprintf("subs=100k/mix=%s", mix), func(b *testing.B) {
			bt := getBenchTree(b, mix, DefaultMatchCacheSize)
			rng := rand.New(rand.NewPCG(7, 7))
			filters := make([]string, 4096)
			for i := range filters {
				filters[i] = benchFilter(rng, mix)
			}
			var res MatchResult
			for _, topic := range bt.topics[:DefaultMatchCacheSize] {
				bt.tree.Match(topic, "", &res)
			}
			opts := SubscriptionOptions{QoS: 1}
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f := filters[i&(len(filters)-1)]
				if _, err := bt.tree.Subscribe("churner", f, opts); err != nil {
					b.Fatal(err)
				}
				if !bt.tree.Unsubscribe("churner", f) {
					b.Fatal("Unsubscribe = false")
				}
				i++
			}
		})
	}
}
