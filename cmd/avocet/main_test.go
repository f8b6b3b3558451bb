package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// startAvocet builds the command, starts it on loopback ports and returns the
// process with the address of each listener kind it printed.
func startAvocet(t *testing.T) (*exec.Cmd, map[string]string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "avocet")
	build := exec.Command("go", "build", "-race", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-mqtt", "127.0.0.1:0", "-ws", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addrs := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(addrs) < 2 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "listening" {
			addrs[f[1]] = f[2]
		}
	}
	if len(addrs) < 2 {
		t.Fatalf("avocet printed listeners %v", addrs)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, addrs
}

func TestCommandRefusesPolitelyAndStopsOnSIGTERM(t *testing.T) {
	cmd, addrs := startAvocet(t)

	for _, v := range []mqtt.Version{mqtt.Version31, mqtt.Version311, mqtt.Version5} {
		c, err := net.Dial("tcp", addrs["tcp"])
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		out, _ := (&mqtt.Connect{Version: v, CleanStart: true, ClientID: "probe"}).Encode(nil, v)
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		r := mqtt.NewReader(bufio.NewReader(c))
		r.Version = v
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("v%s: reading CONNACK: %v", v, err)
		}
		ack, ok := p.(*mqtt.Connack)
		if !ok || ack.ReasonCode != mqtt.ServerUnavailable || ack.SessionPresent {
			t.Fatalf("v%s: got %#v, want CONNACK server unavailable", v, p)
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Fatalf("v%s: after CONNACK got %v, want the connection closed", v, err)
		}
		c.Close()
	}

	resp, err := http.Get("http://" + addrs["ws"] + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ws listener answered %s, want 503", resp.Status)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("avocet exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("avocet did not stop within 20s of SIGTERM")
	}
}

func TestVersionFlag(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.HasPrefix(out.String(), "avocet ") {
		t.Fatalf("printed %q", out.String())
	}
}

func TestBadFlag(t *testing.T) {
	if code := run([]string{"-no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}
