package store

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/avocet-mqtt/avocet/session"
)

// benchStore is one implementation of session.Store under benchmark.
type benchStore struct {
	name string
	open func(b *testing.B) session.Store
}

func benchStores() []benchStore {
	var out []benchStore
	for _, fsync := range policies {
		out = append(out, benchStore{"fsync=" + fsync.String(), func(b *testing.B) session.Store {
			return openT(b, b.TempDir(), fsync)
		}})
	}
	return append(out, benchStore{"mem", func(*testing.B) session.Store { return NewMem() }})
}

// benchKeys are the keys the benchmarks cycle through, so that the file is
// rewritten from time to time as it would be in use.
var benchKeys = func() []string {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = key("q/client\x00", i)
	}
	return keys
}()

// reportChanges reports changes/s, and for a DB the average batch size.
func reportChanges(b *testing.B, s session.Store, changes int64) {
	b.ReportMetric(float64(changes)/b.Elapsed().Seconds(), "changes/s")
	if db, ok := s.(*DB); ok {
		if st := db.Stats(); st.Batches > 0 {
			b.ReportMetric(float64(st.Changes)/float64(st.Batches), "changes/batch")
		}
	}
}

// BenchmarkSetBarrier sets a 100-byte value and, every N sets, waits for a
// barrier: one publisher awaiting an acknowledgement every N messages.
func BenchmarkSetBarrier(b *testing.B) {
	val := bytes.Repeat([]byte("v"), 100)
	for _, st := range benchStores() {
		for _, every := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/every=%d", st.name, every), func(b *testing.B) {
				s := st.open(b)
				done := make(chan error, 1)
				callback := func(err error) { done <- err }
				b.ReportAllocs()
				b.SetBytes(int64(len(val)))
				n := 0
				for b.Loop() {
					s.Set(benchKeys[n%len(benchKeys)], val)
					n++
					if n%every == 0 {
						s.Barrier(callback)
						if err := <-done; err != nil {
							b.Fatal(err)
						}
					}
				}
				s.Barrier(callback)
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				reportChanges(b, s, int64(n))
			})
		}
	}
}

// BenchmarkSetBarrierParallel has many goroutines each set a 100-byte value
// and wait for its own barrier, as many publishers awaiting PUBACK do: group
// commit lets them share each write and fsync.
func BenchmarkSetBarrierParallel(b *testing.B) {
	val := bytes.Repeat([]byte("v"), 100)
	for _, st := range benchStores() {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				done := make(chan error, 1)
				callback := func(err error) { done <- err }
				for pb.Next() {
					s.Set(benchKeys[int(next.Add(1))%len(benchKeys)], val)
					s.Barrier(callback)
					if err := <-done; err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportChanges(b, s, int64(b.N))
		})
	}
}
