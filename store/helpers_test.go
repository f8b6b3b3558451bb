package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/retain"
	"github.com/avocet-mqtt/avocet/session"
)

var (
	_ session.Store = (*DB)(nil)
	_ session.Store = (*Mem)(nil)
	_ retain.Store  = retained{}
)

var policies = []Fsync{Always, EverySec, Never}

// openT opens a DB in dir with the given policy and closes it at the end of the
// test if the test has not.
func openT(t testing.TB, dir string, fsync Fsync) *DB {
	t.Helper()
	return openOpts(t, Options{Dir: dir, Fsync: fsync})
}

func openOpts(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func closeT(t testing.TB, db *DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// store is what the tests run against both a DB and a Mem.
type store interface {
	session.Store
	Retained() retain.Store
}

// barrier queues a barrier and waits for its callback.
func barrier(t testing.TB, s session.Store) error {
	t.Helper()
	ch := make(chan error, 1)
	s.Barrier(func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("barrier callback not called within 10s")
		return nil
	}
}

// kvPair is one record as Scan gives it.
type kvPair struct{ key, val string }

func scanAll(t testing.TB, s session.Store, prefix string) []kvPair {
	t.Helper()
	var out []kvPair
	err := s.Scan(prefix, func(key string, value []byte) error {
		out = append(out, kvPair{key, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return out
}

func scanMap(t testing.TB, s session.Store, prefix string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, p := range scanAll(t, s, prefix) {
		m[p.key] = p.val
	}
	return m
}

func equalPairs(t testing.TB, what string, got, want []kvPair) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// holdWriter queues a barrier whose callback blocks the writer goroutine until
// the returned function is called, and waits until the writer is inside it, so
// that what is queued meanwhile makes up the next batch.
func holdWriter(t testing.TB, db *DB) (release func()) {
	t.Helper()
	inside, release1 := make(chan struct{}), make(chan struct{})
	db.Barrier(func(error) {
		close(inside)
		<-release1
	})
	select {
	case <-inside:
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not reach the holding barrier")
	}
	var done bool
	return func() {
		if !done {
			done = true
			close(release1)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func key(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i) }
