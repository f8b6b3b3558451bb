package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// ACL is an access control list in Mosquitto's acl_file syntax. It is safe for
// concurrent use; checks take no lock and do not allocate, and a Reload
// replaces the rules at once, so a check sees the old rules or the new ones.
//
// A nil *ACL allows everything.
type ACL struct {
	path string // set once

	reload sync.Mutex // serializes Reload
	rules  atomic.Pointer[ruleSet]
}

// ruleSet is a parsed ACL file. It is immutable.
type ruleSet struct {
	anon     *ruleList            // topic lines before any user line
	users    map[string]*ruleList // topic lines under a user line
	patterns ruleList             // pattern lines
	stamp    fileutil.Stamp       // the file version parsed
}

// ruleList holds rules sorted by what they do, so a check reads only the
// rules about its operation.
type ruleList struct {
	read, write perm
}

func (l *ruleList) perm(write bool) *perm {
	if write {
		return &l.write
	}
	return &l.read
}

// perm holds the rules that grant an operation and those that deny it.
type perm struct {
	allow, deny []*filter
}

// LoadACL reads an ACL file. Errors in the file name it and the line.
func LoadACL(path string) (*ACL, error) {
	a := &ACL{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again and replaces the rules with its. When the file
// cannot be read or holds an error, the rules are left as they were and the
// error is returned. The command calls it on SIGHUP; Watch calls it when the
// file changes.
func (a *ACL) Reload() error {
	a.reload.Lock()
	defer a.reload.Unlock()
	data, st, err := fileutil.ReadFile(a.path, 0)
	if err != nil {
		return fmt.Errorf("acl file: %w", err)
	}
	rs, err := parseACL(a.path, data)
	if err != nil {
		return err
	}
	rs.stamp = st
	a.rules.Store(rs)
	return nil
}

// Watch polls the file every interval and calls Reload when it changes, until
// ctx is done, as Passwords.Watch does.
func (a *ACL) Watch(ctx context.Context, interval time.Duration, onError func(error)) {
	fileutil.Watch(ctx, []string{a.path}, interval, func() []fileutil.Stamp { return []fileutil.Stamp{a.rules.Load().stamp} }, a.Reload, onError)
}

// CanPublish reports whether the client may publish to topic: whether a rule
// that applies to it grants write and no deny rule that applies matches topic.
func (a *ACL) CanPublish(clientID, username, topic string) bool {
	if a == nil {
		return true
	}
	return a.rules.Load().allowed(true, clientID, username, topic)
}

// CanReceive reports whether the client may receive a message published to
// topic (retained ones included): whether a rule that applies to it grants read
// and no deny rule that applies matches topic.
func (a *ACL) CanReceive(clientID, username, topic string) bool {
	if a == nil {
		return true
	}
	return a.rules.Load().allowed(false, clientID, username, topic)
}

// CanSubscribe reports whether the client may subscribe to filter: whether the
// filter of a rule that grants read covers it (every topic filter matches, the
// rule's does too) and no deny rule's filter covers it. A deny rule that only
// overlaps filter does not refuse the subscription; CanReceive keeps the
// messages it denies from the client. A shared subscription's filter is taken
// without $share/{group}/.
func (a *ACL) CanSubscribe(clientID, username, filter string) bool {
	if a == nil {
		return true
	}
	if _, f, ok := mqtt.SplitShared(filter); ok {
		filter = f
	}
	return a.rules.Load().allowed(false, clientID, username, filter)
}

// value states of a client id or username for a pattern.
const (
	valueOK        = iota
	valueAbsent    // empty: patterns using it do not apply
	valueDangerous // holds '+' or '#': patterns using it grant nothing and deny all
)

func valueState(s string) int {
	switch {
	case s == "":
		return valueAbsent
	case strings.ContainsAny(s, "+#"):
		return valueDangerous
	}
	return valueOK
}

// allowed decides a request: write for publish, read for receive and subscribe;
// f is the topic, or the filter of a subscription.
func (s *ruleSet) allowed(write bool, clientID, username, f string) bool {
	own := s.anon
	if username != "" {
		own = s.users[username]
	}
	pat := s.patterns.perm(write)
	cs, us := valueOK, valueOK
	if len(pat.allow)+len(pat.deny) > 0 {
		cs, us = valueState(clientID), valueState(username)
	}
	if own != nil {
		for _, r := range own.perm(write).deny {
			if r.covers(f, "", "") {
				return false
			}
		}
	}
	for _, r := range pat.deny {
		switch applies(r, clientID, username, cs, us) {
		case valueDangerous:
			return false
		case valueOK:
			if r.covers(f, clientID, username) {
				return false
			}
		}
	}
	if own != nil {
		for _, r := range own.perm(write).allow {
			if r.covers(f, "", "") {
				return true
			}
		}
	}
	for _, r := range pat.allow {
		if applies(r, clientID, username, cs, us) == valueOK && r.covers(f, clientID, username) {
			return true
		}
	}
	return false
}

// applies says whether a pattern applies to a client: valueOK, valueAbsent (it
// does not apply) or valueDangerous (a value it uses could widen it: a grant
// does not apply and a deny refuses everything). A value that begins the
// filter must not begin with '$', or "%c/#" would open $SYS to a client that
// calls itself "$SYS".
func applies(r *filter, clientID, username string, cs, us int) int {
	state := valueOK
	if r.usesC {
		state = max(state, cs)
		if r.leadC && cs == valueOK && clientID[0] == '$' {
			state = valueDangerous
		}
	}
	if r.usesU {
		if us == valueAbsent {
			return valueAbsent
		}
		state = max(state, us)
		if r.leadU && us == valueOK && username[0] == '$' {
			state = valueDangerous
		}
	}
	return state
}

// parseACL parses an ACL file's contents; name is the file's name for errors.
func parseACL(name string, data []byte) (*ruleSet, error) {
	rs := &ruleSet{anon: &ruleList{}, users: map[string]*ruleList{}}
	cur := rs.anon
	for n, line := range lines(data) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		keyword, rest := cutWord(line)
		switch keyword {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("%s:%d: user without a username", name, n)
			}
			if rs.users[rest] == nil {
				rs.users[rest] = &ruleList{}
			}
			cur = rs.users[rest]
		case "topic", "pattern":
			read, write, deny, src, err := parseRule(rest)
			if err == nil && src == "" {
				err = fmt.Errorf("%s without a topic filter", keyword)
			}
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			f, err := compileFilter(src, keyword == "pattern")
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			l := cur
			if keyword == "pattern" {
				l = &rs.patterns
			}
			switch {
			case deny:
				l.read.deny = append(l.read.deny, f)
				l.write.deny = append(l.write.deny, f)
			default:
				if read {
					l.read.allow = append(l.read.allow, f)
				}
				if write {
					l.write.allow = append(l.write.allow, f)
				}
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown keyword %q (want user, topic or pattern)", name, n, keyword)
		}
	}
	return rs, nil
}

// parseRule parses what follows topic or pattern: an optional access word,
// then the filter, which is the rest of the line and may hold spaces.
func parseRule(rest string) (read, write, deny bool, filter string, err error) {
	word, after := cutWord(rest)
	switch word {
	case "read":
		read = true
	case "write":
		write = true
	case "readwrite":
		read, write = true, true
	case "deny":
		deny = true
	default:
		return true, true, false, rest, nil
	}
	if after == "" {
		return false, false, false, "", fmt.Errorf("%q without a topic filter after it", word)
	}
	return read, write, deny, after, nil
}

// cutWord splits s at its first space or tab and trims what follows.
func cutWord(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}
