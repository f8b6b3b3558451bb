//go:build linux

package store

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for a logger on another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWriteFailureRetried makes writes to the file fail with a file size limit
// (RLIMIT_FSIZE; write(2) then fails with EFBIG), and checks that the barriers
// of the failing batches get the error, that the failure is logged once, and
// that once the limit is lifted the changes are written after all.
func TestWriteFailureRetried(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	db := openOpts(t, Options{Dir: dir, Fsync: Always, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	db.Set("a", []byte("1"))
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := old
	limit.Cur = uint64(db.Stats().FileSize) + 100
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Skipf("cannot set RLIMIT_FSIZE: %v", err)
	}
	lifted := false
	lift := func() {
		if !lifted {
			lifted = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer lift()

	big := strings.Repeat("x", 1000)
	db.Set("big", []byte(big))
	if err := barrier(t, db); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("barrier after a write over the limit: %v, want EFBIG", err)
	}
	db.Set("b", []byte("2"))
	waitFor(t, "the batch to fail again", func() bool { return db.Stats().Failures >= 3 })
	lift()
	if err := barrier(t, db); err != nil {
		t.Fatalf("barrier after lifting the limit: %v", err)
	}
	st := db.Stats()
	closeT(t, db)

	want := []kvPair{{"a", "1"}, {"b", "2"}, {"big", big}}
	equalPairs(t, "after reopening", scanAll(t, openT(t, dir, Always), ""), want)
	out := logs.String()
	if n := strings.Count(out, "write failed"); n != 1 {
		t.Errorf("%d failures logged over %d failed batches, want 1:\n%s", n, st.Failures, out)
	}
	if !strings.Contains(out, "writes succeed again") {
		t.Errorf("recovery not logged:\n%s", out)
	}
}
