package auth

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

const testACL = `# Anonymous clients: the lines before any user line.
topic read public/#
topic read $SYS/#

user alice
topic readwrite home/alice/#
topic deny home/alice/secret
topic write cmd/+/set
topic read	weather
topic read my topic/x

user bob
topic home/bob/#
topic read home/+/status
topic readwrite +/private

# Every client.
pattern write devices/%c/status
pattern read users/%u/inbox/#
pattern deny %c/private
pattern readwrite own/%u/%c/#
pattern readwrite %c/feed
`

type op int

const (
	pub op = iota + 1
	sub
	recv
)

func (o op) String() string { return [...]string{"", "publish", "subscribe", "receive"}[o] }

func TestACL(t *testing.T) {
	path := writeFile(t, t.TempDir(), "acl", testACL)
	a, err := LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		op           op
		client, user string
		topic        string
		want         bool
		why          string
	}{
		// Anonymous rules apply to clients without a username, and only to them.
		{recv, "d1", "", "public/news", true, "anonymous read"},
		{pub, "d1", "", "public/news", false, "read is not write"},
		{sub, "d1", "", "public/#", true, "anonymous read"},
		{sub, "d1", "", "public/+/x", true, "a/# covers a/+/x"},
		{sub, "d1", "", "#", false, "no rule covers #"},
		{sub, "d1", "", "$share/g/public/#", true, "shared: the filter without $share"},
		{recv, "d1", "alice", "public/news", false, "anonymous rules are not alice's"},
		// $SYS.
		{recv, "d1", "", "$SYS/broker/uptime", true, "$SYS/# read"},
		{sub, "d1", "", "$SYS/#", true, "$SYS/# read"},
		{sub, "d1", "", "$SYS/broker/+", true, "$SYS/# covers it"},
		{pub, "d1", "", "$SYS/broker/uptime", false, "read only"},
		{recv, "d1", "alice", "$SYS/broker/uptime", false, "not alice's rule"},
		// User rules; deny wins.
		{pub, "a1", "alice", "home/alice/lamp", true, "readwrite"},
		{recv, "a1", "alice", "home/alice/lamp", true, "readwrite"},
		{pub, "a1", "alice", "home/alice/secret", false, "deny wins"},
		{recv, "a1", "alice", "home/alice/secret", false, "deny wins"},
		{sub, "a1", "alice", "home/alice/secret", false, "deny covers it"},
		{sub, "a1", "alice", "home/alice/#", true, "deny only overlaps; receive filters"},
		{sub, "a1", "alice", "home/alice/+", true, "deny only overlaps"},
		{recv, "a1", "alice", "home/alice/secret/x", true, "deny is exact"},
		{pub, "a1", "alice", "cmd/kitchen/set", true, "write"},
		{recv, "a1", "alice", "cmd/kitchen/set", false, "write is not read"},
		{sub, "a1", "alice", "cmd/+/set", false, "write is not read"},
		{recv, "a1", "alice", "weather", true, "tab-separated rule"},
		{pub, "a1", "alice", "weather", false, "read only"},
		{recv, "a1", "alice", "my topic/x", true, "filter with a space"},
		{pub, "a1", "alice", "home/bob/lamp", false, "bob's"},
		{pub, "b1", "bob", "home/bob/lamp", true, "access defaults to readwrite"},
		{recv, "b1", "bob", "home/alice/status", true, "home/+/status"},
		{sub, "b1", "bob", "home/+/status", true, "equal filter"},
		{sub, "b1", "bob", "home/#", false, "home/# is more than bob has"},
		{sub, "b1", "bob", "home/bob/#", true, "readwrite covers it"},
		// Patterns: %c and %u.
		{pub, "d1", "", "devices/d1/status", true, "%c, anonymous too"},
		{pub, "d1", "", "devices/d2/status", false, "not its id"},
		{recv, "d1", "", "devices/d1/status", false, "write only"},
		{pub, "a/b", "", "devices/a/b/status", true, "an id with '/' spans levels, as substitution does"},
		{recv, "c1", "carol", "users/carol/inbox/1", true, "%u for a user with no user lines"},
		{sub, "c1", "carol", "users/carol/inbox/#", true, "%u"},
		{sub, "c1", "carol", "users/+/inbox/#", false, "wider than %u"},
		{recv, "c1", "carol", "users/alice/inbox/1", false, "not her name"},
		{recv, "c1", "", "users//inbox/1", false, "%u does not apply without a username"},
		{pub, "c1", "carol", "own/carol/c1/x", true, "%u and %c"},
		{pub, "c2", "carol", "own/carol/c1/x", false, "another client id"},
		{sub, "c1", "carol", "own/carol/c1/#", true, "%u and %c"},
		{pub, "b1", "bob", "x/private", true, "+/private"},
		{pub, "b1", "bob", "b1/private", false, "deny pattern %c/private"},
		{recv, "b1", "bob", "b1/private", false, "deny pattern"},
		{sub, "b1", "bob", "+/private", true, "deny only overlaps"},
		{sub, "b1", "bob", "b1/private", false, "deny pattern covers it"},
		// Client ids that could widen a pattern.
		{pub, "x+", "", "public/x", false, "'+' in the id: deny patterns refuse all"},
		{recv, "x#", "", "public/x", false, "'#' in the id: deny patterns refuse all"},
		{recv, "x+", "carol", "users/carol/inbox/1", false, "deny patterns refuse all"},
		{pub, "$SYS", "", "$SYS/feed", false, "an id beginning with $ where the pattern begins"},
		{recv, "$x", "", "public/a", false, "and a deny pattern beginning with %c refuses all"},
		{pub, "d$", "", "d$/feed", true, "'$' elsewhere is text"},
		{pub, "", "", "/feed", false, "%c does not apply to an empty id"},
	}
	for _, tt := range tests {
		var got bool
		switch tt.op {
		case pub:
			got = a.CanPublish(tt.client, tt.user, tt.topic)
		case sub:
			got = a.CanSubscribe(tt.client, tt.user, tt.topic)
		case recv:
			got = a.CanReceive(tt.client, tt.user, tt.topic)
		}
		if got != tt.want {
			t.Errorf("%v client %q user %q %q = %v, want %v (%s)", tt.op, tt.client, tt.user, tt.topic, got, tt.want, tt.why)
		}
	}
}

func TestNilACL(t *testing.T) {
	var a *ACL
	if !a.CanPublish("c", "u", "a/b") || !a.CanSubscribe("c", "", "#") || !a.CanReceive("c", "", "$SYS/x") {
		t.Fatal("a nil ACL refused")
	}
}

func TestLoadACLErrors(t *testing.T) {
	tests := []struct {
		content string
		want    string // after the file name
	}{
		{"# c\n\nuser\n", `:3: user without a username`},
		{"topic\n", `:1: topic without a topic filter`},
		{"user a\n  topic read  \n", `:2: "read" without a topic filter`},
		{"pattern deny\n", `:1: "deny" without a topic filter`},
		{"topic read a/#/b\n", `:1: topic filter "a/#/b"`},
		{"topic a/b+\n", `:1: topic filter "a/b+"`},
		{"pattern write devices/%c+\n", `:1: topic filter "devices/%c+"`},
		{"topic read $share/g/a\n", `:1: topic filter "$share/g/a": a rule names the filter without $share/{group}/`},
		{"topic read a\r\ntopix a\n", `:2: unknown keyword "topix" (want user, topic or pattern)`},
		{"user a\nTopic a\n", `:2: unknown keyword "Topic"`},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		path := writeFile(t, dir, fmt.Sprintf("acl%d", i), tt.content)
		_, err := LoadACL(path)
		if err == nil || !strings.Contains(err.Error(), path+tt.want) {
			t.Errorf("%q: %v, want %q", tt.content, err, path+tt.want)
		}
	}
	if _, err := LoadACL(dir + "/missing"); err == nil || !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestACLReloadAndWatch(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "acl", "topic read a/#\n")
	a, err := LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.CanReceive("c", "", "a/x") || a.CanReceive("c", "", "b/x") {
		t.Fatal("first rules")
	}
	writeFile(t, dir, "acl", "topic read b/#\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.CanReceive("c", "", "a/x") || !a.CanReceive("c", "", "b/x") {
		t.Fatal("Reload did not replace the rules")
	}
	writeFile(t, dir, "acl", "topic read b/#\nbogus\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if !a.CanReceive("c", "", "b/x") {
		t.Fatal("a failed reload changed the rules")
	}

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Watch(ctx, 5*time.Millisecond, func(err error) { errs <- err })
	}()
	defer func() {
		cancel()
		<-done
	}()
	// The watcher starts from the loaded version, not the broken file, and
	// reports it once.
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), path+":2:") {
			t.Fatalf("reported %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broken file was not reported")
	}
	if err := fileutil.WriteAtomic(path, []byte("topic read c/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return a.CanReceive("c", "", "c/x") })
	for i := range 20 { // checks run while rules are replaced
		if err := fileutil.WriteAtomic(path, fmt.Appendf(nil, "topic read c/#\ntopic read d/%d\n", i), 0o600); err != nil {
			t.Fatal(err)
		}
		if !a.CanReceive("c", "", "c/x") {
			t.Fatal("rule lost during a reload")
		}
		time.Sleep(time.Millisecond)
	}
	if len(errs) != 0 {
		t.Fatalf("unexpected error: %v", <-errs)
	}
}

func TestACLChecksDoNotAllocate(t *testing.T) {
	a, err := LoadACL(writeFile(t, t.TempDir(), "acl", testACL))
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		a.CanPublish("a1", "alice", "home/alice/lamp")
		a.CanPublish("c1", "carol", "own/carol/c1/x")
		a.CanSubscribe("c1", "carol", "users/carol/inbox/#")
		a.CanReceive("b1", "bob", "b1/private")
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
