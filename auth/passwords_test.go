package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
	"golang.org/x/crypto/bcrypt"
)

// writeFile writes a test file and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// encoded returns password hashed as the file stores it.
func encoded(t testing.TB, password string) string {
	t.Helper()
	h, err := newHash([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return h.encode()
}

func TestLoadPasswordsErrors(t *testing.T) {
	good := encoded(t, "pw")
	tests := []struct {
		name    string
		content string
		want    string // in the error, after "file:"
	}{
		{"no colon", "# users\n\nalice\n", ":3: want username:hash"},
		{"empty user", "alice:" + good + "\n:" + good + "\n", ":2: empty username"},
		{"bad utf8", "\xff:" + good + "\n", `:1: username "\xff": not valid UTF-8`},
		{"control", "al\x00ice:" + good + "\n", ":1: username"},
		{"duplicate", "alice:" + good + "\nbob:" + good + "\r\n  alice:" + good + "\n", `:3: user "alice" again (first on line 1)`},
		{"no hash", "\n\nalice:\n", `:3: user "alice": missing hash`},
		{"bad hash", "alice:" + good + "\nbob:$argon2id$v=19$m=64,t=1,p=1$xx$yy\n", `:2: user "bob": bad argon2id hash`},
		{"unknown scheme", "alice:$1$abc$def\n", `:1: user "alice": unsupported hash scheme "1"`},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("pw%d", i), tt.content)
			_, err := LoadPasswords(path)
			if err == nil || !strings.Contains(err.Error(), path+tt.want) {
				t.Fatalf("LoadPasswords: %v, want %q", err, path+tt.want)
			}
			if strings.Contains(err.Error(), good) {
				t.Fatalf("the error shows a hash: %v", err)
			}
		})
	}
	_, err := LoadPasswords(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestPasswordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	bc, err := bcrypt.GenerateFromPassword([]byte("from-htpasswd"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, dir, "passwd", "# made elsewhere\r\n\r\n   \ncarol:"+string(bc)+"  \r\n\tdave:"+encoded(t, "dave-pw")+"\n")
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add("alice", []byte("alice-pw")); err != nil {
		t.Fatal(err)
	}
	if err := p.Add("alice", []byte("other")); !errors.Is(err, ErrUserExists) {
		t.Fatalf("Add of an existing user: %v", err)
	}
	if err := p.Set("bob", []byte("bob-pw")); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("bob", []byte("bob-pw2")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a:b", "a\nb", "#a", " a", "a ", "\xfe"} {
		if err := p.Set(bad, []byte("x")); err == nil {
			t.Errorf("Set(%q) succeeded", bad)
		}
	}
	if err := p.Set("eve", nil); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("empty password: %v", err)
	}
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".passwd*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}

	q, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Users(), []string{"alice", "bob", "carol", "dave"}; !slices.Equal(got, want) {
		t.Fatalf("Users() = %q, want %q", got, want)
	}
	checks := []struct {
		user, pw string
		want     bool
	}{
		{"alice", "alice-pw", true},
		{"alice", "alice-pw\n", false},
		{"alice", "", false},
		{"bob", "bob-pw2", true},
		{"bob", "bob-pw", false},
		{"carol", "from-htpasswd", true}, // bcrypt kept as it was
		{"carol", "From-htpasswd", false},
		{"dave", "dave-pw", true},
		{"mallory", "alice-pw", false}, // unknown user
		{"", "", false},
	}
	for _, c := range checks {
		if got := q.Check(c.user, []byte(c.pw)); got != c.want {
			t.Errorf("Check(%q, %q) = %v", c.user, c.pw, got)
		}
	}

	if !q.Delete("bob") || q.Delete("bob") {
		t.Fatal("Delete")
	}
	if err := q.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if p.Check("bob", []byte("bob-pw2")) || !p.Check("alice", []byte("alice-pw")) {
		t.Fatal("Reload did not take the saved file")
	}

	// A broken file leaves the loaded set in place.
	writeFile(t, dir, "passwd", "alice:"+encoded(t, "new")+"\nbroken\n")
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if !p.Check("alice", []byte("alice-pw")) {
		t.Fatal("a failed reload changed the set")
	}
	if err := NewPasswords().Reload(); !errors.Is(err, ErrNoFile) {
		t.Fatalf("Reload without a file: %v", err)
	}
}

func TestSaveThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := writeFile(t, dir, "real", "")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	p := NewPasswords()
	if err := p.Set("alice", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := p.Save(link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	q, err := LoadPasswords(target)
	if err != nil || !slices.Equal(q.Users(), []string{"alice"}) {
		t.Fatalf("target: %v %v", q, err)
	}
}

func TestUnknownUserCostsAHash(t *testing.T) {
	dir := t.TempDir()
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Most users are bcrypt: the dummy is bcrypt of the same cost.
	path := writeFile(t, dir, "passwd", fmt.Sprintf("a:%s\nb:%s\nc:%s\n", bc, bc, encoded(t, "x")))
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.dummy.cost(); got != (cost{bcryptCost: bcrypt.MinCost}) {
		t.Fatalf("dummy cost %+v", got)
	}
	if p.Check("nobody", []byte("pw")) {
		t.Fatal("unknown user accepted")
	}
	if got := NewPasswords().dummy.cost(); got != (cost{params: hashParams}) {
		t.Fatalf("empty set: dummy cost %+v", got)
	}
}

func TestCheckDuringReload(t *testing.T) {
	dir := t.TempDir()
	one := "alice:" + encoded(t, "one") + "\n"
	two := "alice:" + encoded(t, "two") + "\nbob:" + encoded(t, "bob") + "\n"
	path := writeFile(t, dir, "passwd", one)
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seenOne, seenTwo atomic.Bool
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if p.Check("alice", []byte("one")) {
					seenOne.Store(true)
				}
				if p.Check("alice", []byte("two")) {
					seenTwo.Store(true)
				}
				if p.Check("alice", []byte("bob")) || p.Check("bob", []byte("one")) {
					t.Error("a wrong password accepted")
				}
				p.Users()
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 50 || !seenOne.Load() || !seenTwo.Load(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the checks did not see both versions of the file")
		}
		content := one
		if i%2 == 1 {
			content = two
		}
		if err := fileutil.WriteAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := p.Set("carol", []byte("c")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestPasswordsWatch(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "passwd", "alice:"+encoded(t, "one")+"\n")
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Watch(ctx, 5*time.Millisecond, func(err error) { errs <- err })
	}()
	defer func() {
		cancel()
		<-done
	}()

	// The same size and, likely, the same modification time: the new inode
	// still shows the change.
	if err := fileutil.WriteAtomic(path, []byte("alice:"+encoded(t, "two")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Check("alice", []byte("two")) })

	// A broken file is reported once and the set stays.
	if err := fileutil.WriteAtomic(path, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), path+":1:") {
			t.Fatalf("reported %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no error reported")
	}
	time.Sleep(30 * time.Millisecond)
	if len(errs) != 0 {
		t.Fatalf("the error was reported again: %v", <-errs)
	}
	if !p.Check("alice", []byte("two")) {
		t.Fatal("a failed reload changed the set")
	}

	// A file edited in place is seen too.
	if err := os.WriteFile(path, []byte("bob:"+encoded(t, "three")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Check("bob", []byte("three")) })
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}
