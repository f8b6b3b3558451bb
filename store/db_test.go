package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestScanOrderAndPrefix(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) store
	}{
		{"bunt", func(t *testing.T) store { return openT(t, t.TempDir(), Never) }},
		{"mem", func(*testing.T) store { return NewMem() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			for _, k := range []string{"b/2", "a", "a/10", "b/1", "a/", "a/2", "a0", "a/1", "`"} {
				s.Set(k, []byte("v"+k))
			}
			s.Delete("a/2")
			s.Delete("missing") // not an error
			if err := barrier(t, s); err != nil {
				t.Fatalf("barrier: %v", err)
			}
			equalPairs(t, `Scan("a/")`, scanAll(t, s, "a/"), []kvPair{
				{"a/", "va/"}, {"a/1", "va/1"}, {"a/10", "va/10"},
			})
			equalPairs(t, `Scan("b")`, scanAll(t, s, "b"), []kvPair{{"b/1", "vb/1"}, {"b/2", "vb/2"}})
			equalPairs(t, `Scan("c")`, scanAll(t, s, "c"), nil)
			all := scanAll(t, s, "")
			var keys []string
			for _, p := range all {
				keys = append(keys, p.key)
			}
			if got, want := strings.Join(keys, " "), "` a a/ a/1 a/10 a0 b/1 b/2"; got != want {
				t.Fatalf(`Scan("") keys = %q, want %q`, got, want)
			}

			stop := errors.New("stop")
			n := 0
			err := s.Scan("", func(string, []byte) error {
				n++
				if n == 3 {
					return stop
				}
				return nil
			})
			if err != stop || n != 3 {
				t.Fatalf("Scan stopping at the 3rd key: err %v after %d calls, want %v after 3", err, n, stop)
			}
		})
	}
}

// TestScanChunks scans more keys than one read transaction copies out, with
// keys around the prefix's bounds, and changes the store from fn.
func TestScanChunks(t *testing.T) {
	db := openT(t, t.TempDir(), Never)
	const n = 3*scanChunk + 7
	for i := range n {
		db.Set(key("p/", i), []byte(fmt.Sprint(i)))
	}
	db.Set("p", []byte("below"))
	db.Set("p0", []byte("above"))
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}
	i := 0
	err := db.Scan("p/", func(k string, v []byte) error {
		if want := key("p/", i); k != want || string(v) != fmt.Sprint(i) {
			return fmt.Errorf("record %d is %q=%q, want %q=%q", i, k, v, want, fmt.Sprint(i))
		}
		db.Delete(k) // queued; fn runs without the DB's lock
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("scanned %d records, want %d", i, n)
	}
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}
	equalPairs(t, "after deleting while scanning", scanAll(t, db, "p"), []kvPair{{"p", "below"}, {"p0", "above"}})
}

// TestScanValueIsCopy checks that a value handed to fn may be modified without
// changing the store.
func TestScanValueIsCopy(t *testing.T) {
	for _, s := range []store{openT(t, t.TempDir(), Never), NewMem()} {
		s.Set("k", []byte("value"))
		if err := barrier(t, s); err != nil {
			t.Fatal(err)
		}
		_ = s.Scan("k", func(_ string, v []byte) error {
			copy(v, "XXXXX")
			return nil
		})
		equalPairs(t, fmt.Sprintf("%T after fn wrote to value", s), scanAll(t, s, ""), []kvPair{{"k", "value"}})
	}
}

// TestBatchOrder checks that the changes of one batch are applied in the order
// they were made, for Set then Delete of a key and Delete then Set, and that
// the result survives reopening.
func TestBatchOrder(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Always)
	db.Set("gone", []byte("x"))
	db.Set("back", []byte("old"))
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, db)
	before := db.Stats().Batches
	db.Set("set-del", []byte("1"))
	db.Delete("set-del")
	db.Delete("gone")
	db.Set("gone", []byte("again"))
	db.Delete("back")
	db.Set("back", []byte("new"))
	db.Set("twice", []byte("first"))
	db.Set("twice", []byte("second"))
	db.Delete("never-set")
	db.Set("never-set", []byte("now"))
	db.Delete("never-set")
	ch := make(chan error, 1)
	db.Barrier(func(err error) { ch <- err })
	release()
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if got := db.Stats().Batches - before; got != 1 {
		t.Fatalf("the changes took %d batches, want 1", got)
	}
	want := []kvPair{{"back", "new"}, {"gone", "again"}, {"twice", "second"}}
	equalPairs(t, "after one batch", scanAll(t, db, ""), want)
	closeT(t, db)
	equalPairs(t, "after reopening", scanAll(t, openT(t, dir, Always), ""), want)
}

// TestBarrierDurable checks, for each policy, that what a barrier covered is
// there after Close and Open.
func TestBarrierDurable(t *testing.T) {
	for _, fsync := range policies {
		t.Run("fsync="+fsync.String(), func(t *testing.T) {
			dir := t.TempDir()
			db := openT(t, dir, fsync)
			want := make(map[string]string)
			for i := range 300 {
				k, v := key("k/", i), strings.Repeat(fmt.Sprint(i%10), i%50)
				db.Set(k, []byte(v))
				want[k] = v
				if i%3 == 0 {
					db.Delete(k)
					delete(want, k)
				}
				if i%50 == 0 {
					if err := barrier(t, db); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := barrier(t, db); err != nil {
				t.Fatal(err)
			}
			if got := scanMap(t, db, ""); !mapsEqual(got, want) {
				t.Fatalf("before Close: %d records, want %d", len(got), len(want))
			}
			st := db.Stats()
			if st.Changes != 400 || st.FileSize == 0 || st.BytesWritten == 0 || st.Batches == 0 {
				t.Fatalf("Stats = %+v, want 400 changes and nonzero batches, bytes and file size", st)
			}
			closeT(t, db)
			if got := scanMap(t, openT(t, dir, fsync), ""); !mapsEqual(got, want) {
				t.Fatalf("after reopening: %d records, want %d", len(got), len(want))
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestConcurrentWriters runs writers that each wait on some of their barriers
// and not others, through a small queue and small batches, and checks that
// every callback is called exactly once, in order per writer, after its
// changes are visible.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	db := openOpts(t, Options{Dir: dir, Fsync: Always, QueueSize: 64, MaxBatch: 16})
	const writers, perWriter = 8, 400
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var mu sync.Mutex
			next := 0 // the index of the barrier expected next; guarded by mu
			var last chan struct{}
			for i := range perWriter {
				k := key(fmt.Sprintf("w%d/", w), i)
				db.Set(k, []byte(k))
				done := make(chan struct{})
				db.Barrier(func(err error) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						errs <- fmt.Errorf("writer %d barrier %d: %v", w, i, err)
					case i != next:
						errs <- fmt.Errorf("writer %d: barrier %d called when %d was due", w, i, next)
					}
					next = i + 1
					close(done) // a second call panics
				})
				last = done
				if i%10 == 0 {
					<-done
					if got := scanAll(t, db, k); len(got) != 1 || got[0].val != k {
						errs <- fmt.Errorf("writer %d: %q not visible after its barrier: %v", w, k, got)
					}
				}
			}
			<-last
			mu.Lock()
			if next != perWriter {
				errs <- fmt.Errorf("writer %d: %d barriers called, want %d", w, next, perWriter)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := db.Stats()
	if st.Changes != writers*perWriter || st.Barriers != writers*perWriter {
		t.Fatalf("Stats = %+v, want %d changes and barriers", st, writers*perWriter)
	}
	if st.Batches >= st.Changes {
		t.Errorf("%d batches for %d changes: no group commit", st.Batches, st.Changes)
	}
	t.Logf("%d changes in %d batches, %d waits for room", st.Changes, st.Batches, st.Blocked)
	closeT(t, db)
	if got := len(scanAll(t, openT(t, dir, Always), "w")); got != writers*perWriter {
		t.Fatalf("after reopening: %d records, want %d", got, writers*perWriter)
	}
}

// TestMaxBatch checks that a batch holds at most MaxBatch changes, and that
// the barriers right after the last change are called with it.
func TestMaxBatch(t *testing.T) {
	db := openOpts(t, Options{Dir: t.TempDir(), Fsync: Never, MaxBatch: 10})
	release := holdWriter(t, db)
	before := db.Stats().Batches
	var calls []int64 // the batch count at each callback; only the writer appends
	for i := range 25 {
		db.Set(key("k", i), nil)
		if i == 9 || i == 24 {
			db.Barrier(func(error) { calls = append(calls, db.Stats().Batches-before) })
		}
	}
	release()
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats().Batches - before; got != 3 {
		t.Fatalf("25 changes took %d batches with MaxBatch 10, want 3", got)
	}
	if len(calls) != 2 || calls[0] != 1 || calls[1] != 3 {
		t.Fatalf("barriers called after batches %v, want [1 3]", calls)
	}
}

// TestQueueFullBlocks checks that Set blocks while the queue is full, and goes
// on once the writer takes a batch.
func TestQueueFullBlocks(t *testing.T) {
	db := openOpts(t, Options{Dir: t.TempDir(), Fsync: Never, QueueSize: 4})
	release := holdWriter(t, db)
	defer release()
	for i := range 4 {
		db.Set(key("k", i), nil)
	}
	returned := make(chan struct{})
	go func() {
		db.Set("fifth", nil)
		close(returned)
	}()
	waitFor(t, "Set to block on the full queue", func() bool { return db.Stats().Blocked == 1 })
	select {
	case <-returned:
		t.Fatal("Set returned while the queue was full")
	default:
	}
	release()
	<-returned
	if err := barrier(t, db); err != nil {
		t.Fatal(err)
	}
	if got := len(scanAll(t, db, "")); got != 5 {
		t.Fatalf("%d records, want 5", got)
	}
}

// TestCloseDrains checks that Close writes everything queued before it and
// calls the pending barriers with nil.
func TestCloseDrains(t *testing.T) {
	for _, fsync := range policies {
		t.Run("fsync="+fsync.String(), func(t *testing.T) {
			dir := t.TempDir()
			db := openOpts(t, Options{Dir: dir, Fsync: fsync, MaxBatch: 7})
			release := holdWriter(t, db)
			const n = 100
			var called []error // appended by the writer, read after Close
			for i := range n {
				db.Set(key("k", i), []byte{byte(i)})
				db.Barrier(func(err error) { called = append(called, err) })
			}
			closed := make(chan error, 1)
			go func() { closed <- db.Close() }()
			waitFor(t, "Close to begin", func() bool { return isClosing(db.closing) })
			db.Set("late", nil)
			if db.Stats().Rejected != 1 {
				t.Fatal("Set during Close was not rejected")
			}
			release()
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}
			if len(called) != n {
				t.Fatalf("%d barriers called by Close, want %d", len(called), n)
			}
			for i, err := range called {
				if err != nil {
					t.Fatalf("barrier %d: %v", i, err)
				}
			}
			got := scanAll(t, openT(t, dir, fsync), "")
			if len(got) != n {
				t.Fatalf("after reopening: %d records, want %d", len(got), n)
			}
			for i, p := range got {
				if p.key != key("k", i) || p.val != string([]byte{byte(i)}) {
					t.Fatalf("record %d is %q=%q", i, p.key, p.val)
				}
			}
		})
	}
}

// TestAfterClose checks that nothing blocks or panics once the DB is closed.
func TestAfterClose(t *testing.T) {
	db := openOpts(t, Options{Dir: t.TempDir(), QueueSize: 1})
	closeT(t, db)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 { // more than the queue holds
			db.Set("k", []byte("v"))
			db.Delete("k")
		}
		var mu sync.Mutex // held while calling Barrier and taken by fn
		got := make(chan error, 2)
		mu.Lock()
		db.Barrier(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			got <- err
		})
		mu.Unlock()
		if err := <-got; !errors.Is(err, ErrClosed) {
			t.Errorf("Barrier after Close called fn with %v, want ErrClosed", err)
		}
		if err := db.Scan("", func(string, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Scan after Close = %v, want ErrClosed", err)
		}
		if err := db.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close = %v, want ErrClosed", err)
		}
		r := db.Retained()
		if err := r.Delete("t"); !errors.Is(err, ErrClosed) {
			t.Errorf("Retained().Delete after Close = %v, want ErrClosed", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("calls after Close blocked")
	}
	if st := db.Stats(); st.Rejected != 7 {
		t.Fatalf("Stats.Rejected = %d, want 7", st.Rejected)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Never)
	if db2, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		if db2 != nil {
			_ = db2.Close()
		}
		t.Fatalf("second Open of one directory = %v, want ErrLocked", err)
	}
	closeT(t, db)
	closeT(t, openT(t, dir, Never))
}

func TestOpenOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: t.TempDir(), Fsync: 4},
		{Dir: t.TempDir(), ShrinkPercentage: -1},
		{Dir: t.TempDir(), QueueSize: -1},
	} {
		if db, err := Open(o); err == nil {
			_ = db.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	closeT(t, openT(t, dir, 0))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestFsyncNames(t *testing.T) {
	for _, f := range policies {
		got, err := ParseFsync(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFsync(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFsync("sometimes"); err == nil {
		t.Error(`ParseFsync("sometimes") succeeded`)
	}
	if s := Fsync(0).String(); s != "Fsync(0)" {
		t.Errorf("Fsync(0).String() = %q", s)
	}
}

// TestOpenCorrupt checks that Open refuses a file that is not BuntDB's, names
// it in the error, and leaves it as it was.
func TestOpenCorrupt(t *testing.T) {
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	const rec = "*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	for _, tc := range []struct {
		name string
		data string
	}{
		{"garbage in a record", "*3\r\n$3\r\nset\r\n$1\r\na\r\nGARBAGE"},
		{"garbage line in a record", "*3\r\n$3\r\nset\r\n$1\r\na\r\nGARBAGE\r\n"},
		{"garbage without a line feed", "GARBAGE"},
		{"garbage after a record", rec + "GARBAGE"},
		{"random bytes", string(random)},
		{"random bytes after a record", rec + string(random)},
		{"bad length", "*3\r\n$3\r\nset\r\n$x1\r\n"},
		{"missing CR LF after data", "*3\r\n$3\r\nsetXY"},
		{"too many digits", "*12345678901\r\n"},
		{"unknown command", "*2\r\n$3\r\nget\r\n$1\r\na\r\n"},
		{"set without a value", "*2\r\n$3\r\nset\r\n$1\r\na\r\n"},
		{"NUL bytes between records", rec + "\x00\x00" + rec},
		{"NUL bytes before a record", "\x00" + rec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(Options{Dir: dir})
			if err == nil {
				_ = db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), "store: open "+path+": ") {
				t.Fatalf("error %q does not name %s", err, path)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, []byte(tc.data)) {
				t.Fatalf("the file was changed to %q", got)
			}
			// The lock was let go: a fixed file opens.
			if err := os.WriteFile(path, []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
			equalPairs(t, "after repair", scanAll(t, openT(t, dir, Never), ""), []kvPair{{"a", "1"}})
		})
	}
}

// TestOpenTornRecord checks that a last record cut short, as by a crash in the
// middle of a write, is dropped and the rest kept.
func TestOpenTornRecord(t *testing.T) {
	const rec = "*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	full := "*3\r\n$3\r\nset\r\n$1\r\nb\r\n$5\r\nhello\r\n"
	for n := 1; n < len(full); n++ {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, []byte(rec+"\x00\x00"+full[:n]), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("torn at %d: Open: %v", n, err)
		}
		equalPairs(t, fmt.Sprintf("torn at %d", n), scanAll(t, db, ""), []kvPair{{"a", "1"}})
		db.Set("c", []byte("3"))
		closeT(t, db)
		equalPairs(t, fmt.Sprintf("torn at %d, written and reopened", n),
			scanAll(t, openT(t, dir, Never), ""), []kvPair{{"a", "1"}, {"c", "3"}})
	}
}

// TestOpenZeroedTail checks that NUL bytes at the end of the file, as a crash
// can leave, are skipped and then written over.
func TestOpenZeroedTail(t *testing.T) {
	const rec = "*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(rec+strings.Repeat("\x00", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	db := openT(t, dir, Never)
	db.Set("b", []byte("2"))
	closeT(t, db)
	db = openT(t, dir, Never)
	db.Set("c", []byte("3"))
	closeT(t, db)
	equalPairs(t, "after writing over the zeroed tail twice", scanAll(t, openT(t, dir, Never), ""),
		[]kvPair{{"a", "1"}, {"b", "2"}, {"c", "3"}})
}

func TestOpenUnreadable(t *testing.T) {
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		db, err := Open(Options{Dir: dir})
		if err == nil {
			_ = db.Close()
			t.Fatal("Open succeeded")
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name %s", err, path)
		}
	})
	t.Run("no permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, []byte("*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"), 0o000); err != nil {
			t.Fatal(err)
		}
		db, err := Open(Options{Dir: dir})
		if err == nil {
			_ = db.Close()
			t.Fatal("Open succeeded")
		}
		if !strings.Contains(err.Error(), "store: open "+path+": ") || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("error %q does not name %s and a permission error", err, path)
		}
	})
}

// TestShrink writes enough to make BuntDB rewrite the file in the background,
// keeps writing while it does, and checks that nothing is lost, that the file
// shrank, and that no descriptor keeps the old file open.
func TestShrink(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for BuntDB's background rewrite")
	}
	for _, fsync := range []Fsync{Always, Never} {
		t.Run("fsync="+fsync.String(), func(t *testing.T) {
			dir := t.TempDir()
			db := openOpts(t, Options{Dir: dir, Fsync: fsync, ShrinkMinSize: 64 << 10, ShrinkPercentage: 50})
			want := make(map[string]string)
			set := func(k, v string) {
				db.Set(k, []byte(v))
				want[k] = v
			}
			for round := range 30 {
				for i := range 100 {
					set(key("k", i), fmt.Sprintf("%0100d", round))
				}
				if err := barrier(t, db); err != nil {
					t.Fatal(err)
				}
			}
			big := db.Stats().FileSize
			n := 0
			step := func() {
				set(key("k", n%100), fmt.Sprintf("%0100d", 1000+n))
				n++
				if err := barrier(t, db); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			waitFor(t, "the file to shrink", func() bool {
				step()
				return db.Stats().FileSize < big/2
			})
			t.Logf("file shrank from %d to %d bytes", big, db.Stats().FileSize)
			for start := time.Now(); time.Since(start) < 1200*time.Millisecond; {
				step()
			}
			if fds := deletedDescriptors(t, filepath.Join(dir, FileName)); len(fds) > 0 {
				t.Errorf("descriptors of the rewritten-away file still open: %v", fds)
			}
			closeT(t, db)
			if got := scanMap(t, openT(t, dir, fsync), ""); !mapsEqual(got, want) {
				t.Fatalf("after the rewrite and reopening: %d records, not the %d written", len(got), len(want))
			}
		})
	}
}

// deletedDescriptors lists this process's descriptors of a file once at path
// and since removed, where /proc shows them.
func deletedDescriptors(t *testing.T, path string) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Logf("not checking descriptors: %v", err)
		return nil
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && target == path+" (deleted)" {
			out = append(out, e.Name())
		}
	}
	return out
}
