//go:build !linux

package broker

import (
	"errors"
	"syscall"
)

// poller parks connections only on Linux; elsewhere every reader blocks in a
// goroutine of its own.
type poller struct{}

func pollable(*conn) (syscall.RawConn, *poller) { return nil, nil }

func (*poller) arm(syscall.RawConn, int32, bool) error { return errors.ErrUnsupported }

func (*poller) forget(*conn) {}

func readNow(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
