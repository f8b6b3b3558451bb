package store

import (
	"sync"
	"testing"
)

// TestMemBarriers checks that a Mem calls barrier callbacks in order, once
// each, never on the calling goroutine, and after the changes made before them.
func TestMemBarriers(t *testing.T) {
	m := NewMem()
	var mu sync.Mutex // held while calling Barrier, and taken by the callbacks
	var got []int
	done := make(chan struct{})
	const n = 1000
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n / 4 {
				k := key("k", g*n+i)
				mu.Lock()
				m.Set(k, []byte(k))
				m.Barrier(func(err error) {
					if v, ok := m.Get(k); err != nil || !ok || string(v) != k {
						t.Errorf("barrier after %s: err %v, value %q", k, err, v)
					}
					mu.Lock()
					got = append(got, g*n+i)
					if len(got) == n {
						close(done)
					}
					mu.Unlock()
				})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-done
	last := map[int]int{}
	for _, v := range got {
		g := v / n
		if prev, ok := last[g]; ok && v <= prev {
			t.Fatalf("goroutine %d: callback %d after %d", g, v, prev)
		}
		last[g] = v
	}
	if keys := m.Keys(); len(keys) != n {
		t.Fatalf("%d keys, want %d", len(keys), n)
	}
}
