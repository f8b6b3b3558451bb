package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envVar turns the tests of this package on when it is "1".
const envVar = "AVOCET_E2E"

// requireE2E skips t unless AVOCET_E2E=1. Every test of this package calls it first.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(envVar) != "1" {
		t.Skipf("end-to-end test: runs only with %s=1 (make e2e installs Mosquitto and Chromium and sets it)", envVar)
	}
}

// program returns the path of the first of names found on PATH. Once
// requireE2E has let the test run, a missing program is a failure, not a skip.
func program(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s=1 but program %s is not on PATH: install it (make e2e runs .ci/install-e2e for Mosquitto and Chromium)",
		envVar, strings.Join(names, " or "))
	return ""
}

// TestMain removes the avocet binary built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string // temporary directory of the binary; removed by TestMain
	binPath   string
	buildErr  error
)

// avocetBinary builds ./cmd/avocet with the race detector, once per package run.
func avocetBinary(t *testing.T) string {
	t.Helper()
	goCmd := program(t, "go")
	buildOnce.Do(func() {
		out, err := exec.Command(goCmd, "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			buildErr = fmt.Errorf("go list -m: %w", err)
			return
		}
		root := strings.TrimSpace(string(out))
		if binDir, err = os.MkdirTemp("", "avocet-e2e-bin"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "avocet")
		build := exec.Command(goCmd, "build", "-race", "-o", binPath, "./cmd/avocet")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/avocet in %s: %w\n%s", root, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// output collects what a child process writes, for polling and for failure messages.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lines returns the complete lines written so far, without their newlines.
func (o *output) lines() []string {
	s := o.String()
	end := strings.LastIndexByte(s, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(s[:end], "\n")
}

// process is a child process in a process group of its own, so that the
// children it starts (Chromium's) end with it.
type process struct {
	cmd    *exec.Cmd
	stdout output
	stderr output
	done   chan struct{} // closed once the process has exited and its output is read
	err    error         // what Wait returned; read after done is closed
}

// childEnv is the test's environment without its AVOCET_ variables: avocet takes
// every AVOCET_ variable for a configuration override and refuses unknown ones,
// such as AVOCET_E2E.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AVOCET_") {
			env = append(env, kv)
		}
	}
	return env
}

// startProcess starts name with args in dir (the current directory if empty)
// and kills its process group when t ends.
func startProcess(t *testing.T, dir, name string, args ...string) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = dir
	p.cmd.Env = childEnv()
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end and reports whether it
// did; p.err then holds what Wait returned.
func (p *process) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill ends the process group with SIGKILL and waits for the process.
func (p *process) kill() {
	// The group outlives its leader while a child of it runs.
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// poll calls cond every 10ms until it returns true or timeout passes, and
// reports whether it returned true.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// avocet is a running avocet process.
type avocet struct {
	tcp string // host:port of the MQTT listener
	ws  string // host:port of the WebSocket listener; its path is /mqtt
	p   *process
}

const avocetConfig = `
[log]
level = "debug"

[store]
dir = %q

[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[[listener]]
kind = "ws"
address = "127.0.0.1:0"
path = "/mqtt"

[admin]
address = ""

[mqtt]
sys_interval = "0s"
`

// startAvocet runs the avocet command with a tcp and a ws listener on loopback
// ports and stops it when t ends. At the end it fails t if avocet did not exit
// cleanly on SIGTERM or its race detector reported a race, and it logs
// avocet's log if t failed.
func startAvocet(t *testing.T) *avocet {
	t.Helper()
	dir := t.TempDir()
	a, addrs := runAvocet(t, dir, fmt.Appendf(nil, avocetConfig, filepath.Join(dir, "data")), "tcp", "ws")
	a.ws = addrs["ws"]
	return a
}

// runAvocet writes cfg to dir/avocet.toml, runs the avocet command with it as
// startAvocet does, and waits until it has printed "listening <kind> <addr>" for
// each of kinds. It returns the addresses by kind; a.tcp is set when "tcp" is
// among them.
func runAvocet(t *testing.T, dir string, cfg []byte, kinds ...string) (*avocet, map[string]string) {
	t.Helper()
	bin := avocetBinary(t)
	file := filepath.Join(dir, "avocet.toml")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, dir, bin, "--config", file)
	a := &avocet{p: p}
	t.Cleanup(func() { a.stop(t) })
	addrs := map[string]string{}
	all := func() bool {
		for _, k := range kinds {
			if addrs[k] == "" {
				return false
			}
		}
		return true
	}
	listening := func() bool {
		for _, l := range p.stdout.lines() {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "listening" {
				addrs[f[1]] = f[2]
			}
		}
		return all() || p.exited()
	}
	if !poll(30*time.Second, listening) || !all() {
		t.Fatalf("avocet did not print its %s listeners within 30s\nstdout:\n%s\nstderr:\n%s",
			strings.Join(kinds, " and "), p.stdout.String(), p.stderr.String())
	}
	a.tcp = addrs["tcp"]
	return a, addrs
}

// stop sends SIGTERM and checks that avocet exits cleanly and raced nowhere.
func (a *avocet) stop(t *testing.T) {
	t.Helper()
	switch {
	case a.p.exited():
		t.Errorf("avocet exited with %v before the test ended", a.p.err)
	case a.p.cmd.Process.Signal(syscall.SIGTERM) != nil && !a.p.exited():
		t.Errorf("avocet: SIGTERM could not be sent")
	case !a.p.wait(15 * time.Second):
		t.Errorf("avocet did not exit within 15s of SIGTERM")
	case a.p.err != nil:
		t.Errorf("avocet exited with %v after SIGTERM, want status 0", a.p.err)
	}
	log := a.p.stderr.String()
	if strings.Contains(log, "WARNING: DATA RACE") {
		t.Errorf("avocet's race detector reported a data race")
	}
	if t.Failed() {
		t.Logf("avocet's log:\n%s", log)
	}
}
