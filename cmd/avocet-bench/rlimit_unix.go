//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseNofile raises the soft limit of open files to need, or to the hard limit
// when that is lower (a privileged process raises the hard limit too). It returns
// the soft limit in effect.
func raiseNofile(need uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("open file limit: %w", err)
	}
	if rl.Cur >= need {
		return rl.Cur, nil
	}
	if rl.Max < need {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: need}); err == nil {
			return need, nil
		}
	}
	want := syscall.Rlimit{Cur: min(need, rl.Max), Max: rl.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return rl.Cur, fmt.Errorf("open file limit: raise to %d: %w", want.Cur, err)
	}
	return want.Cur, nil
}
