package fileutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkFor polls cond until it holds or d has passed.
func checkFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := WriteAtomic(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// watched is what a Watch caller keeps: the stamps of the files as last
// loaded, and counts of reloads and reported errors.
type watched struct {
	paths []string

	mu        sync.Mutex
	stamps    []Stamp  // guarded by mu
	reloads   int      // guarded by mu
	errs      []error  // guarded by mu
	contents  []string // guarded by mu; of the first path, per reload
	reloadErr error    // guarded by mu; returned by reload instead of loading
}

func newWatched(t *testing.T, paths ...string) *watched {
	t.Helper()
	w := &watched{paths: paths}
	if err := w.load(); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *watched) load() error {
	st := make([]Stamp, len(w.paths))
	var first string
	for i, p := range w.paths {
		b, s, err := ReadFile(p, 0)
		if err != nil {
			return err
		}
		if i == 0 {
			first = string(b)
		}
		st[i] = s
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stamps = st
	w.contents = append(w.contents, first)
	return nil
}

func (w *watched) current() []Stamp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stamps
}

func (w *watched) reload() error {
	w.mu.Lock()
	w.reloads++
	err := w.reloadErr
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.load()
}

func (w *watched) onError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

func (w *watched) counts() (reloads, errs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reloads, len(w.errs)
}

// start runs Watch on w until the test ends.
func (w *watched) start(t *testing.T, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, w.paths, interval, w.current, w.reload, w.onError)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after its context was done")
		}
	})
}

func TestWatchReloadsOnceSettled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, "v0")
	w := newWatched(t, path)
	const interval = 100 * time.Millisecond
	w.start(t, interval)

	time.Sleep(3 * interval)
	if r, e := w.counts(); r != 0 || e != 0 {
		t.Fatalf("unchanged file: %d reloads, %d errors; want none", r, e)
	}

	// A file that changes more often than every interval is not reloaded:
	// no two polls see the same version.
	stop := time.Now().Add(6 * interval)
	for i := 1; time.Now().Before(stop); i++ {
		write(t, path, fmt.Sprintf("v%d", i))
		time.Sleep(2 * time.Millisecond)
	}
	if r, _ := w.counts(); r != 0 {
		t.Fatalf("file still changing: %d reloads, want 0", r)
	}
	write(t, path, "last")

	// Once it has stayed the same for an interval, it is reloaded once.
	checkFor(t, 5*time.Second, "no reload after the file settled", func() bool {
		r, _ := w.counts()
		return r > 0
	})
	time.Sleep(4 * interval)
	r, e := w.counts()
	if r != 1 || e != 0 {
		t.Fatalf("%d reloads, %d errors; want 1 reload, no error", r, e)
	}
	w.mu.Lock()
	got := w.contents[len(w.contents)-1]
	w.mu.Unlock()
	if got != "last" {
		t.Fatalf("reloaded %q, want %q", got, "last")
	}
}

func TestWatchAnyOfSeveralPaths(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a")
	write(t, b, "b")
	w := newWatched(t, a, b)
	w.start(t, 20*time.Millisecond)
	write(t, b, "b2")
	checkFor(t, 5*time.Second, "no reload after the second file changed", func() bool {
		r, _ := w.counts()
		return r == 1
	})
	if got := w.current(); !SameStamps(got, mustStat(t, a, b)) {
		t.Fatal("current stamps are not those of the files after the reload")
	}
}

func TestWatchReloadErrorReportedOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, "v0")
	w := newWatched(t, path)
	errBad := errors.New("bad file")
	w.reloadErr = errBad
	const interval = 20 * time.Millisecond
	w.start(t, interval)

	write(t, path, "v1")
	checkFor(t, 5*time.Second, "the failed reload was not reported", func() bool {
		_, e := w.counts()
		return e == 1
	})
	time.Sleep(10 * interval)
	if r, e := w.counts(); r != 1 || e != 1 {
		t.Fatalf("after a failed reload: %d reloads, %d errors; want 1 and 1 (no retry until a change)", r, e)
	}
	w.mu.Lock()
	if !errors.Is(w.errs[0], errBad) {
		t.Errorf("reported %v, want %v", w.errs[0], errBad)
	}
	w.mu.Unlock()

	// A new change is tried, and its failure reported, again.
	write(t, path, "v2")
	checkFor(t, 5*time.Second, "the second failed reload was not reported", func() bool {
		r, e := w.counts()
		return r == 2 && e == 2
	})
}

func TestWatchStatErrorReportedOnce(t *testing.T) {
	dir := t.TempDir()
	present, missing := filepath.Join(dir, "present"), filepath.Join(dir, "missing")
	write(t, present, "p")
	w := &watched{paths: []string{present, missing}}
	const interval = 20 * time.Millisecond
	w.start(t, interval)

	checkFor(t, 5*time.Second, "the failed stat was not reported", func() bool {
		_, e := w.counts()
		return e == 1
	})
	time.Sleep(10 * interval)
	r, e := w.counts()
	if r != 0 || e != 1 {
		t.Fatalf("missing file: %d reloads, %d errors; want 0 and 1", r, e)
	}
	w.mu.Lock()
	if !errors.Is(w.errs[0], fs.ErrNotExist) {
		t.Errorf("reported %v, want an error wrapping fs.ErrNotExist", w.errs[0])
	}
	w.mu.Unlock()

	// The file appears: a stat succeeds and the files are loaded once.
	write(t, missing, "m")
	checkFor(t, 5*time.Second, "no reload after the missing file appeared", func() bool {
		r, _ := w.counts()
		return r == 1
	})
	// It goes again: the failure is reported again, once.
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "the second failed stat was not reported", func() bool {
		_, e := w.counts()
		return e == 2
	})
	time.Sleep(10 * interval)
	if _, e := w.counts(); e != 2 {
		t.Fatalf("%d errors, want 2", e)
	}
}

func TestWatchNilOnErrorAndDefaultInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, []string{filepath.Join(t.TempDir(), "missing")}, 0,
			func() []Stamp { return nil }, func() error { return nil }, nil)
	}()
	time.Sleep(1500 * time.Millisecond) // a poll at the default second, reporting to nil
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context was done")
	}
}

func mustStat(t *testing.T, paths ...string) []Stamp {
	t.Helper()
	st, err := Stat(paths)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStampsAndStat(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a")
	write(t, b, "b")

	if !(Stamp{}).Same(Stamp{}) {
		t.Error("zero stamps differ")
	}
	sa := mustStat(t, a)[0]
	if sa.Same(Stamp{}) || (Stamp{}).Same(sa) {
		t.Error("a file's stamp is the same as the zero stamp")
	}
	_, read, err := ReadFile(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !read.Same(sa) {
		t.Error("ReadFile's stamp differs from Stat's for an unchanged file")
	}
	if sa.Same(mustStat(t, b)[0]) {
		t.Error("two files have the same stamp")
	}
	write(t, a, "a") // same size and contents, but a new file
	if mustStat(t, a)[0].Same(sa) {
		t.Error("a replaced file has its old stamp")
	}

	ab := mustStat(t, a, b)
	switch {
	case !SameStamps(ab, mustStat(t, a, b)):
		t.Error("SameStamps: unchanged files differ")
	case SameStamps(ab, ab[:1]):
		t.Error("SameStamps: different lengths are the same")
	case SameStamps(ab, mustStat(t, b, a)):
		t.Error("SameStamps: order is ignored")
	case !SameStamps(nil, []Stamp{}):
		t.Error("SameStamps: nil and empty differ")
	}

	if _, err := Stat([]string{a, filepath.Join(dir, "missing")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte("x"), 100)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{0, -1, 100, 1000} {
		b, st, err := ReadFile(path, max)
		if err != nil || !bytes.Equal(b, data) || st.Same(Stamp{}) {
			t.Errorf("max %d: %d bytes, %v; want the file", max, len(b), err)
		}
	}
	for _, max := range []int64{1, 99} {
		b, st, err := ReadFile(path, max)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != path || !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", max)) {
			t.Errorf("max %d: error %v, want a PathError naming the file and the limit", max, err)
		}
		if b != nil || !st.Same(Stamp{}) {
			t.Errorf("max %d: contents or stamp returned with an error", max)
		}
	}

	if _, _, err := ReadFile(dir, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v, want not a regular file", err)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "missing"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// noTemp fails if dir holds anything but names.
func noTemp(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestWriteAtomicPermsAndReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	check := func(content string, perm fs.FileMode) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("contents %q, %v; want %q", b, err, content)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
		}
	}

	if err := WriteAtomic(path, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("one", 0o644)
	before := mustStat(t, path)[0]
	if err := WriteAtomic(path, []byte("two, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("two, longer", 0o600)
	if mustStat(t, path)[0].Same(before) {
		t.Error("the file was not replaced")
	}
	if err := WriteAtomic(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	check("", 0o640)
	noTemp(t, dir, "f")
}

func TestWriteAtomicRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := WriteAtomic("f", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "x" {
		t.Fatalf("contents %q, %v", b, err)
	}
	noTemp(t, dir, "f")
}

func TestWriteAtomicThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	target, link := filepath.Join(sub, "target"), filepath.Join(dir, "link")
	write(t, target, "old")
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symbolic links:", err)
	}
	if err := WriteAtomic(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "new" {
		t.Fatalf("target holds %q, %v; want new", b, err)
	}
	noTemp(t, dir, "link", "sub")
	noTemp(t, sub, "target")

	// A link to a file that does not exist yet is replaced by a file.
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(dangling, []byte("d"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dangling); err != nil || string(b) != "d" {
		t.Fatalf("contents %q, %v", b, err)
	}
}

func TestWriteAtomicFailures(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("no error writing into a missing directory")
	}
	// Renaming over a directory fails; the temporary file goes.
	target := filepath.Join(dir, "d")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(target, []byte("x"), 0o600); err == nil {
		t.Error("no error replacing a non-empty directory")
	}
	noTemp(t, dir, "d")
	// A symbolic link loop is an error, not followed forever.
	loop := filepath.Join(dir, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Skip("no symbolic links:", err)
	}
	if err := WriteAtomic(loop, []byte("x"), 0o600); err == nil {
		t.Error("no error writing through a symbolic link loop")
	}
}
