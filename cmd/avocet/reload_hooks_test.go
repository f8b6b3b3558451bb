package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// TestSIGHUPReloadsWebhooks: the auth_on_publish endpoint changes on SIGHUP.
func TestSIGHUPReloadsWebhooks(t *testing.T) {
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"result":{"error":"not_allowed"}}`)
	}))
	defer deny.Close()
	allow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"result":"ok"}`)
	}))
	defer allow.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "avocet.toml")
	write := func(url string) {
		cfg := withStore(testConfig, dir) + fmt.Sprintf("\n[[webhook]]\nhook = \"auth_on_publish\"\nurl = %q\n", url)
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(deny.URL)
	cmd, addrs := startAvocetFile(t, file)
	publish := func() mqtt.ReasonCode {
		nc, err := net.Dial("tcp", addrs["tcp"])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c := newClient(t, nc, mqtt.Version5, "hooked-pub")
		c.send(&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "x", Payload: []byte("p")})
		return c.read().(*mqtt.Puback).ReasonCode
	}
	if code := publish(); code != mqtt.NotAuthorized {
		t.Fatalf("with the denying endpoint: %v", code)
	}
	write(allow.URL)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for publish().IsError() {
		if time.Now().After(deadline) {
			t.Fatal("the new endpoint was not used after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
