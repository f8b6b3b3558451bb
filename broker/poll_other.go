//go:build !linux

package broker

import (
	"errors"
	"net"
	"syscall"
)

// poller parks connections only on Linux; elsewhere every reader blocks in a
// goroutine of its own.
type poller struct{}

func pollable(net.Conn) (syscall.RawConn, *poller) { return nil, nil }

func (*poller) register(*conn) error { return errors.ErrUnsupported }

func (*poller) forget(*conn) {}

func readNow(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
