//go:build linux

package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// poller waits, with one epoll instance for the process, for data on the sockets
// of parked connections, and starts their readers again. A socket is armed once
// per park (EPOLLONESHOT): the poller hears nothing of connections whose reader
// runs, which a busy connection's always does.
type poller struct {
	epfd  int
	mu    sync.Mutex
	conns map[int32]*conn // by file descriptor; guarded by mu
}

var (
	pollerOnce sync.Once
	thePoller  *poller
	pollerErr  error
)

// pollable returns the raw connection and the poller for c if it can park: a
// plain TCP connection on Linux. Others get nil and read blocking.
func pollable(c *conn) (syscall.RawConn, *poller) {
	sc, ok := c.inner.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	pollerOnce.Do(func() {
		thePoller, pollerErr = newPoller()
		if pollerErr != nil {
			slog.Warn("idle connections will hold a goroutine each", "err", pollerErr)
		}
	})
	if pollerErr != nil {
		return nil, nil
	}
	p := thePoller
	if err := raw.Control(func(fd uintptr) {
		c.pollKey = int32(fd)
		p.mu.Lock()
		p.conns[c.pollKey] = c
		p.mu.Unlock()
	}); err != nil {
		return nil, nil
	}
	return raw, p
}

// newPoller makes the epoll instance and starts its goroutine. The instance is
// itself waited for in the runtime's network poller, so that the goroutine holds
// no thread while nothing happens.
func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &poller{epfd: fd, conns: make(map[int32]*conn)}
	go p.run(f, raw)
	return p, nil
}

// run wakes the connections epoll reports, for the life of the process.
func (p *poller) run(f *os.File, raw syscall.RawConn) {
	defer f.Close() // never reached; keeps f, whose finalizer would close fd
	events := make([]syscall.EpollEvent, 256)
	var ready []*conn
	for {
		var n int
		var werr error
		err := raw.Read(func(fd uintptr) bool {
			for {
				n, werr = syscall.EpollWait(int(fd), events, 0)
				if werr != syscall.EINTR {
					return n > 0 || werr != nil // nothing yet: wait until epoll is readable
				}
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			// Not expected on a valid epoll descriptor; parked readers would
			// never wake.
			panic(fmt.Sprintf("broker: epoll_wait: %v", err))
		}
		p.mu.Lock()
		for i := range n {
			if c := p.conns[events[i].Fd]; c != nil {
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for i, c := range ready {
			c.unpark()
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// arm makes the poller wake the connection on socket fd once (EPOLLONESHOT)
// when the socket has data, is closed by the peer or fails; first is true on the
// connection's first park. Arming checks the socket at once, so data that came
// after the reader last looked wakes it too.
func (p *poller) arm(raw syscall.RawConn, fd int32, first bool) error {
	var err error
	cerr := raw.Control(func(uintptr) { // keeps fd from being closed and reused meanwhile
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd}
		op := syscall.EPOLL_CTL_MOD
		if first {
			op = syscall.EPOLL_CTL_ADD
		}
		err = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
		switch {
		case op == syscall.EPOLL_CTL_ADD && errors.Is(err, syscall.EEXIST):
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		case op == syscall.EPOLL_CTL_MOD && errors.Is(err, syscall.ENOENT):
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// forget drops c, whose reader ended; closing the socket takes it out of epoll.
func (p *poller) forget(c *conn) {
	p.mu.Lock()
	if p.conns[c.pollKey] == c {
		delete(p.conns, c.pollKey)
	}
	p.mu.Unlock()
}

// readNow reads what the socket holds without waiting: errWouldBlock when it
// holds nothing, io.EOF when the peer closed it.
func readNow(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var err error
	cerr := raw.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), p)
			if err != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err == syscall.EAGAIN:
		return 0, errWouldBlock
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
