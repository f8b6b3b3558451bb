package retain

import (
	"fmt"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// benchTree returns a tree holding sites*devices messages with 64-byte payloads,
// at topics site/{s}/device/{d}/temp.
func benchTree(b *testing.B, store Store, sites, devices int) *Tree {
	b.Helper()
	tr := newTree(b, store, Options{})
	payload := make([]byte, 64)
	for s := range sites {
		for d := range devices {
			topic := fmt.Sprintf("site/%d/device/%d/temp", s, d)
			mustSet(b, tr, &mqtt.Message{Topic: topic, Payload: payload, Retain: true}, t0)
		}
	}
	return tr
}

func BenchmarkMatch(b *testing.B) {
	tr := benchTree(b, nil, 100, 1000)
	for _, c := range []struct {
		name, filter string
		want         int
	}{
		{"exact", "site/42/device/421/temp", 1},
		{"plus", "site/+/device/421/temp", 100},
		{"prefix", "site/42/#", 1000},
		{"hash", "#", 100_000},
	} {
		b.Run("retained=100k/filter="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = 0
				tr.Match(c.filter, t0, func(*mqtt.Message) bool {
					n++
					return true
				})
			}
			if n != c.want {
				b.Fatalf("Match(%q) gave %d messages; want %d", c.filter, n, c.want)
			}
			b.ReportMetric(float64(n), "msgs/op")
		})
	}
}

// BenchmarkMatchParallel matches from every processor at once, as subscribing
// clients do.
func BenchmarkMatchParallel(b *testing.B) {
	tr := benchTree(b, nil, 100, 1000)
	for _, c := range []struct{ name, filter string }{
		{"exact", "site/42/device/421/temp"},
		{"prefix", "site/42/#"},
	} {
		b.Run("retained=100k/filter="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tr.Match(c.filter, t0, func(*mqtt.Message) bool { return true })
				}
			})
		})
	}
}

// BenchmarkSet replaces existing topics, and sets then clears a new one, with
// each store.
func BenchmarkSet(b *testing.B) {
	payload := make([]byte, 64)
	for _, s := range []struct {
		name  string
		store func() Store
	}{
		{"none", func() Store { return nil }},
		{"mem", func() Store { return &MemStore{} }},
	} {
		tr := benchTree(b, s.store(), 100, 1000)
		topics := make([]string, 1000)
		for i := range topics {
			topics[i] = fmt.Sprintf("site/%d/device/%d/temp", i%100, i)
		}
		msgs := make([]*mqtt.Message, len(topics))
		for i, topic := range topics {
			msgs[i] = &mqtt.Message{Topic: topic, Payload: payload, Retain: true}
		}
		b.Run("retained=100k/op=replace/store="+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(topics[0]) + len(payload)))
			i := 0
			for b.Loop() {
				if err := tr.Set(msgs[i%len(msgs)], t0); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		fresh := &mqtt.Message{Topic: "site/new/device/new/temp", Payload: payload, Retain: true}
		clear := &mqtt.Message{Topic: fresh.Topic, Retain: true}
		b.Run("retained=100k/op=add-clear/store="+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(fresh.Topic) + len(payload)))
			for b.Loop() {
				if err := tr.Set(fresh, t0); err != nil {
					b.Fatal(err)
				}
				if err := tr.Set(clear, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSweep removes expired messages from a tree of 100k that expire in
// turn, one expiry per second.
func BenchmarkSweep(b *testing.B) {
	tr := newTree(b, nil, Options{})
	payload := make([]byte, 64)
	const n = 100_000
	msgs := make([]*mqtt.Message, n)
	for i := range msgs {
		msgs[i] = &mqtt.Message{Topic: fmt.Sprintf("site/%d/device/%d/temp", i%100, i), Payload: payload}
	}
	b.Run("retained=100k/expired=1", func(b *testing.B) {
		b.ReportAllocs()
		for i := range msgs {
			m := *msgs[i]
			m.Expiry = t0.Add(time.Duration(i+1) * time.Second)
			mustSet(b, tr, &m, t0)
		}
		i := 0
		for b.Loop() {
			i++
			if i > n {
				b.StopTimer()
				i = 1
				for j := range msgs {
					m := *msgs[j]
					m.Expiry = t0.Add(time.Duration(j+1) * time.Second)
					mustSet(b, tr, &m, t0)
				}
				b.StartTimer()
			}
			if removed, err := tr.Sweep(t0.Add(time.Duration(i) * time.Second)); removed != 1 || err != nil {
				b.Fatalf("Sweep removed %d, %v; want 1", removed, err)
			}
		}
	})
}
