package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/auth"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// connectAs dials and sends a 3.1.1 CONNECT with a username and password.
func connectAs(t *testing.T, addr, id, user, pass string) (*mqttClient, mqtt.ReasonCode) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &mqttClient{t: t, nc: nc, r: mqtt.NewReader(bufio.NewReader(nc)), v: mqtt.Version5}
	c.r.Version = mqtt.Version5
	cp := &mqtt.Connect{Version: mqtt.Version5, CleanStart: true, ClientID: id}
	if user != "" {
		cp.UsernameFlag, cp.Username = true, user
		cp.PasswordFlag, cp.Password = true, []byte(pass)
	}
	c.send(cp)
	ack, ok := c.read().(*mqtt.Connack)
	if !ok {
		t.Fatal("no CONNACK")
	}
	return c, ack.ReasonCode
}

func TestPasswordFileACLAndReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	aclFile := filepath.Join(dir, "acl")
	pw := auth.NewPasswords()
	if err := pw.Set("alice", []byte("wonderland")); err != nil {
		t.Fatal(err)
	}
	if err := pw.Save(pwFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclFile, []byte("user alice\ntopic readwrite home/alice/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := withStore(testConfig, dir) + "[auth]\nallow_anonymous = false\npassword_file = \"" + pwFile + "\"\nacl_file = \"" + aclFile + "\"\n"
	cmd, addrs := startAvocet(t, cfg)
	addr := addrs["tcp"]

	if _, code := connectAs(t, addr, "anon", "", ""); code != mqtt.NotAuthorized {
		t.Fatalf("anonymous client: %v, want not authorized", code)
	}
	if _, code := connectAs(t, addr, "a1", "alice", "wrong"); code != mqtt.BadUserNameOrPassword {
		t.Fatalf("wrong password: %v", code)
	}
	alice, code := connectAs(t, addr, "a2", "alice", "wonderland")
	if code != mqtt.Success {
		t.Fatalf("right password: %v", code)
	}
	alice.send(&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "home/bob/door", Payload: []byte("x")})
	if ack := alice.read().(*mqtt.Puback); ack.ReasonCode != mqtt.NotAuthorized {
		t.Fatalf("publish outside the ACL: %v", ack.ReasonCode)
	}
	alice.send(&mqtt.Publish{QoS: 1, PacketID: 2, Topic: "home/alice/door", Payload: []byte("x")})
	if ack := alice.read().(*mqtt.Puback); ack.ReasonCode.IsError() {
		t.Fatalf("publish inside the ACL: %v", ack.ReasonCode)
	}

	// Bob is added to the file; SIGHUP makes the broker read it at once.
	pw2, err := auth.LoadPasswords(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw2.Set("bob", []byte("builder")); err != nil {
		t.Fatal(err)
	}
	if err := pw2.Save(pwFile); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, code := connectAs(t, addr, "b1", "bob", "builder")
		if code == mqtt.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob still refused after SIGHUP: %v", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPasswdCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	run := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(avocetBinary(t), append([]string{"passwd"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := run("s3cret\n", "add", file, "carol"); code != 0 {
		t.Fatalf("add: %d %s", code, out)
	}
	if out, _ := run("", "list", file); strings.TrimSpace(out) != "carol" {
		t.Fatalf("list: %q", out)
	}
	pw, err := auth.LoadPasswords(file)
	if err != nil || !pw.Check("carol", []byte("s3cret")) {
		t.Fatalf("the stored password does not check: %v", err)
	}
	if _, code := run("", "delete", file, "nobody"); code != 1 {
		t.Fatalf("delete of a missing user: exit %d, want 1", code)
	}
	if _, code := run("", "frobnicate"); code != 2 {
		t.Fatalf("usage error: exit %d, want 2", code)
	}
}
