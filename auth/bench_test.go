package auth

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

// benchACL writes and loads an ACL of users × rules topic lines, each user's
// last rule granting u<i>/r<rules-1>/#, and patterns pattern lines with %c and
// %u, the last granting p<patterns-1>/%u/%c/#.
func benchACL(b *testing.B, users, rules, patterns int) *ACL {
	var s strings.Builder
	for u := range users {
		fmt.Fprintf(&s, "user u%d\n", u)
		fmt.Fprintf(&s, "topic deny u%d/secret/#\n", u)
		for r := range rules - 1 {
			fmt.Fprintf(&s, "topic readwrite u%d/r%d/#\n", u, r)
		}
	}
	for p := range patterns {
		fmt.Fprintf(&s, "pattern readwrite p%d/%%u/%%c/#\n", p)
	}
	path := filepath.Join(b.TempDir(), "acl")
	if err := fileutil.WriteAtomic(path, []byte(s.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := LoadACL(path)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkCanPublish(b *testing.B) {
	cases := []struct {
		name                   string
		users, rules, patterns int
		client, user, topic    string
		want                   bool
	}{
		// The user's last rule grants; the rules before it are tried first.
		{"users=100/rules=10/last", 100, 10, 0, "c50", "u50", "u50/r8/sensors/temp", true},
		{"users=100/rules=10/refused", 100, 10, 0, "c50", "u50", "u49/r8/sensors/temp", false},
		{"users=100/rules=10/denied", 100, 10, 0, "c50", "u50", "u50/secret/x", false},
		// Patterns with %u and %c; the last grants.
		{"patterns=10/last", 0, 0, 10, "c50", "u50", "p9/u50/c50/sensors/temp", true},
		{"patterns=10/refused", 0, 0, 10, "c50", "u50", "p9/u50/c49/sensors/temp", false},
		{"users=100/rules=10/patterns=10/last", 100, 10, 10, "c50", "u50", "p9/u50/c50/sensors/temp", true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			a := benchACL(b, c.users, c.rules, c.patterns)
			if got := a.CanPublish(c.client, c.user, c.topic); got != c.want {
				b.Fatalf("CanPublish = %v", got)
			}
			b.ReportAllocs()
			for b.Loop() {
				a.CanPublish(c.client, c.user, c.topic)
			}
		})
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	a := benchACL(b, 100, 10, 10)
	for _, f := range []string{"u50/r8/+/temp", "p9/u50/c50/#"} {
		b.Run("filter="+f, func(b *testing.B) {
			if !a.CanSubscribe("c50", "u50", f) {
				b.Fatal("refused")
			}
			b.ReportAllocs()
			for b.Loop() {
				a.CanSubscribe("c50", "u50", f)
			}
		})
	}
}

// BenchmarkCheck times one password check with the parameters new hashes get.
func BenchmarkCheck(b *testing.B) {
	hashParams = recommendedParams
	defer func() { hashParams = cheapParams }()
	p := NewPasswords()
	if err := p.Set("alice", []byte("correct horse")); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, user, pw string }{
		{"right", "alice", "correct horse"},
		{"wrong", "alice", "battery staple"},
		{"unknown", "mallory", "correct horse"},
	} {
		b.Run("user="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Check(c.user, []byte(c.pw))
			}
		})
	}
}
