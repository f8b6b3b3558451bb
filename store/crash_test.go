package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const (
	crashChildEnv = "AVOCET_STORE_CHILD"
	crashDirEnv   = "AVOCET_STORE_DIR"
)

// crashValue is the value the child writes under key.
func crashValue(key string) string { return key + strings.Repeat(".", 150) }

// TestCrashChild is the child process of TestCrash: it writes keys from
// several goroutines, without waiting, under fsync "always", and prints
// "ack KEY" once the barrier after KEY has been called, until it is killed.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("run by TestCrash")
	}
	db, err := Open(Options{Dir: os.Getenv(crashDirEnv), Fsync: Always, QueueSize: 256})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	acked := make(chan string, 1<<16)
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("c/%d/%08d", g, i)
				db.Set(k, []byte(crashValue(k)))
				db.Barrier(func(err error) {
					if err == nil {
						acked <- k
					}
				})
			}
		}()
	}
	w := bufio.NewWriter(os.Stdout)
	for k := range acked {
		fmt.Fprintln(w, "ack", k)
		if len(acked) == 0 {
			if err := w.Flush(); err != nil {
				os.Exit(3)
			}
		}
	}
}

// TestCrash kills a process writing under fsync "always" with SIGKILL and
// checks that every key it acknowledged is in the file. The kill points are
// counts of acknowledged keys.
func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		t.Skip("in the child")
	}
	for _, killAfter := range []int{1, 300, 5000} {
		t.Run(fmt.Sprintf("after=%d", killAfter), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashDirEnv+"="+dir)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var acked []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				k, ok := strings.CutPrefix(sc.Text(), "ack ")
				if !ok {
					continue // the test framework's own lines
				}
				acked = append(acked, k)
				if len(acked) == killAfter {
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = cmd.Wait()
			if len(acked) < killAfter {
				t.Fatalf("the child acknowledged %d keys and exited (%v) before the kill", len(acked), err)
			}
			db := openT(t, dir, Always)
			got := scanMap(t, db, "c/")
			for _, k := range acked {
				if v, ok := got[k]; !ok || v != crashValue(k) {
					t.Fatalf("acknowledged key %s lost (present %v) of %d acknowledged, %d in the file", k, ok, len(acked), len(got))
				}
			}
			t.Logf("killed after %d acknowledged keys (%d read); %d keys in the file, all acknowledged ones among them",
				killAfter, len(acked), len(got))
		})
	}
}
