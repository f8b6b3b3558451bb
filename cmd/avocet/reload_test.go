package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// subscribeTwo connects a 5.0 client and returns the SUBACK codes of two filters.
func subscribeTwo(t *testing.T, addr string) []mqtt.ReasonCode {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newClient(t, nc, mqtt.Version5, "limits-probe")
	c.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a"}, {Filter: "b"}}})
	return c.read().(*mqtt.Suback).ReasonCodes
}

func TestSIGHUPReloadsLimitsAndRefusesABadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "avocet.toml")
	base := withStore(testConfig, dir)
	write := func(extra string) {
		cfg := strings.Replace(base, "[mqtt]\n", "[mqtt]\n"+extra, 1)
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("max_subscriptions = 1\n")
	cmd, addrs := startAvocetFile(t, file)
	addr := addrs["tcp"]
	if codes := subscribeTwo(t, addr); codes[1] != mqtt.QuotaExceeded {
		t.Fatalf("with max_subscriptions = 1: %v", codes)
	}

	write("max_subscriptions = 5\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for subscribeTwo(t, addr)[1] != mqtt.GrantedQoS0 {
		if time.Now().After(deadline) {
			t.Fatal("the raised limit was not applied after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}

	write("max_subscriptions = -3\n") // invalid: refused, the running limit stays
	_ = cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond) // give a wrong reload the time to happen; nothing to poll for
	if codes := subscribeTwo(t, addr); codes[1] != mqtt.GrantedQoS0 {
		t.Fatalf("a bad config was applied: %v", codes)
	}
}
