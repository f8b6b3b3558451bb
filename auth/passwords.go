package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

// Errors of Passwords' methods, for errors.Is.
var (
	ErrUserExists    = errors.New("user exists")
	ErrEmptyPassword = errors.New("empty password")
	ErrNoFile        = errors.New("no password file: the set was not loaded from one")
)

// Passwords is a set of users and their password hashes, as a password file
// holds it. It is safe for concurrent use: Check runs concurrently with itself,
// with changes and with Reload, and sees the set before or after each of them.
type Passwords struct {
	path   string     // the file Reload reads; "" for NewPasswords. Set once.
	reload sync.Mutex // serializes Reload, so an older read never replaces a newer

	mu    sync.RWMutex
	users map[string]*hash // guarded by mu; replaced whole by a reload
	dummy *hash            // guarded by mu; verified for unknown users
	stamp fileutil.Stamp   // guarded by mu; the file version loaded last
}

// NewPasswords returns an empty set, not tied to a file: Reload and Watch
// fail with ErrNoFile.
func NewPasswords() *Passwords {
	p := &Passwords{users: map[string]*hash{}}
	p.dummy = dummyFor(p.users)
	return p
}

// LoadPasswords reads a password file. Errors in the file name it and the
// line; an error for a missing file wraps fs.ErrNotExist.
func LoadPasswords(path string) (*Passwords, error) {
	p := &Passwords{path: path}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the file again and replaces the set with its contents. When the
// file cannot be read or holds an error, the set is left as it was and the error
// is returned. The command calls it on SIGHUP; Watch calls it when the file
// changes.
func (p *Passwords) Reload() error {
	if p.path == "" {
		return ErrNoFile
	}
	p.reload.Lock()
	defer p.reload.Unlock()
	data, st, err := fileutil.ReadFile(p.path, 0)
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	users, err := parsePasswords(p.path, data)
	if err != nil {
		return err
	}
	d := dummyFor(users)
	p.mu.Lock()
	p.users, p.dummy, p.stamp = users, d, st
	p.mu.Unlock()
	return nil
}

// Watch polls the file's identity, size and modification time every interval
// (a second if interval is not positive) and calls Reload when they have
// changed and then stayed the same for one interval, so a file being written in
// place is not read half done; it runs until ctx is done, so run it on a
// goroutine the caller waits for. A failed reload keeps the previous set and is
// passed to onError (which may be nil) once per change of the file. Polling
// needs no file system notification: it works the same on every platform and
// through bind mounts.
func (p *Passwords) Watch(ctx context.Context, interval time.Duration, onError func(error)) {
	if p.path == "" {
		if onError != nil {
			onError(ErrNoFile)
		}
		return
	}
	fileutil.Watch(ctx, []string{p.path}, interval, p.currentStamps, p.Reload, onError)
}

func (p *Passwords) currentStamps() []fileutil.Stamp {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return []fileutil.Stamp{p.stamp}
}

// Check reports whether password is username's. The hash comparison takes
// constant time, and for a user that does not exist Check verifies a dummy hash
// of the same cost as the file's, so the time taken does not tell which users
// exist. At most GOMAXPROCS hashes are computed at once; Check waits for its
// turn, which bounds the memory a burst of CONNECTs takes.
func (p *Passwords) Check(username string, password []byte) bool {
	p.mu.RLock()
	h, ok := p.users[username]
	d := p.dummy
	p.mu.RUnlock()
	if !ok {
		d.verify(password)
		return false
	}
	return h.verify(password)
}

// Add adds a user with password, hashed with argon2id. It fails with
// ErrUserExists if the user exists.
func (p *Passwords) Add(username string, password []byte) error {
	return p.set(username, password, false)
}

// Set sets the password of a user, adding the user if absent.
func (p *Passwords) Set(username string, password []byte) error {
	return p.set(username, password, true)
}

func (p *Passwords) set(username string, password []byte, replace bool) error {
	if err := ValidUsername(username); err != nil {
		return err
	}
	if len(password) == 0 {
		return ErrEmptyPassword
	}
	exists := func() bool {
		_, ok := p.users[username]
		return ok && !replace
	}
	p.mu.RLock()
	e := exists()
	p.mu.RUnlock()
	if e {
		return fmt.Errorf("user %q: %w", username, ErrUserExists)
	}
	h, err := newHash(password) // slow: outside the lock
	if err != nil {
		return fmt.Errorf("user %q: %w", username, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if exists() {
		return fmt.Errorf("user %q: %w", username, ErrUserExists)
	}
	p.users[username] = h
	p.dummy = dummyFor(p.users)
	return nil
}

// Delete removes a user and reports whether it was there.
func (p *Passwords) Delete(username string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.users[username]; !ok {
		return false
	}
	delete(p.users, username)
	p.dummy = dummyFor(p.users)
	return true
}

// Users returns the usernames, sorted.
func (p *Passwords) Users() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Sorted(maps.Keys(p.users))
}

// Save writes the set to path, one user a line in username order after a
// comment line; comments of the file it was loaded from are not kept. The
// file is written atomically: to a temporary file in the same directory,
// synced, then renamed over path, so a reader (the broker, Watch) sees the old
// file or the new one, never a part. Its mode is 0600. When path is a symbolic
// link, the file it points to is replaced. Two processes saving the same file
// at once do not corrupt it, but the last one's set wins.
func (p *Passwords) Save(path string) error {
	var b bytes.Buffer
	b.WriteString("# avocet password file: username:hash, one a line; manage with `avocet passwd`\n")
	p.mu.RLock()
	for _, u := range slices.Sorted(maps.Keys(p.users)) {
		b.WriteString(u)
		b.WriteByte(':')
		b.WriteString(p.users[u].encode())
		b.WriteByte('\n')
	}
	p.mu.RUnlock()
	return fileutil.WriteAtomic(path, b.Bytes(), 0o600)
}

// ValidUsername checks a username for a password file: not empty, valid
// UTF-8, no ':' and no control character (newlines included), no white space
// at either end, and no '#' first (the line would be a comment).
func ValidUsername(username string) error {
	bad := func(why string) error { return fmt.Errorf("username %q: %s", username, why) }
	switch {
	case username == "":
		return errors.New("empty username")
	case !utf8.ValidString(username):
		return bad("not valid UTF-8")
	case strings.ContainsRune(username, ':'):
		return bad("holds ':'")
	case strings.ContainsFunc(username, unicode.IsControl):
		return bad("holds a control character")
	case username[0] == '#':
		return bad("begins with '#'")
	case strings.TrimSpace(username) != username:
		return bad("begins or ends with white space")
	}
	return nil
}

// parsePasswords parses a password file's contents; name is the file's name
// for errors.
func parsePasswords(name string, data []byte) (map[string]*hash, error) {
	users := map[string]*hash{}
	lineOf := map[string]int{}
	for n, line := range lines(data) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		user, enc, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want username:hash", name, n)
		}
		user = strings.TrimSpace(user)
		if err := ValidUsername(user); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if first, dup := lineOf[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q again (first on line %d)", name, n, user, first)
		}
		h, err := parseHash(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w", name, n, user, err)
		}
		users[user], lineOf[user] = h, n
	}
	return users, nil
}

// lines yields the lines of data, numbered from 1, without their "\n" or
// "\r\n".
func lines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		s := string(data)
		for n := 1; s != ""; n++ {
			line, rest, _ := strings.Cut(s, "\n")
			if !yield(n, strings.TrimSuffix(line, "\r")) {
				return
			}
			s = rest
		}
	}
}

// dummyFor returns the hash an unknown user's Check verifies: one with the
// cost most of users' hashes have, or the cost of new hashes if there are none.
func dummyFor(users map[string]*hash) *hash {
	count := map[cost]int{}
	best, bestN := cost{params: hashParams}, 0
	for _, h := range users {
		c := h.cost()
		count[c]++
		if n := count[c]; n > bestN || (n == bestN && less(c, best)) {
			best, bestN = c, n
		}
	}
	return best.dummy()
}

// less orders costs so that dummyFor's choice does not depend on map order.
func less(a, b cost) bool {
	if a.bcryptCost != b.bcryptCost {
		return a.bcryptCost < b.bcryptCost
	}
	if a.params.memory != b.params.memory {
		return a.params.memory < b.params.memory
	}
	if a.params.time != b.params.time {
		return a.params.time < b.params.time
	}
	return a.params.threads < b.params.threads
}
