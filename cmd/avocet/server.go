package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// listener is one bound socket and the kind of traffic it takes.
type listener struct {
	kind string
	ln   net.Listener
}

// server binds the configured listeners. Until the broker lands it answers
// every connection with a polite refusal instead of pretending to serve.
type server struct {
	log       *slog.Logger
	version   string
	listeners []listener
	wg        sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// listen binds every non-empty address and starts accepting on it.
func (s *server) listen(mqttAddr, wsAddr string) error {
	s.conns = make(map[net.Conn]struct{})
	for _, spec := range []struct{ kind, addr string }{{"tcp", mqttAddr}, {"ws", wsAddr}} {
		if spec.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", spec.addr)
		if err != nil {
			s.close()
			return fmt.Errorf("listener %s %s: %w", spec.kind, spec.addr, err)
		}
		s.listeners = append(s.listeners, listener{kind: spec.kind, ln: ln})
	}
	for _, l := range s.listeners {
		s.wg.Add(1)
		go s.accept(l)
	}
	return nil
}

func (s *server) accept(l listener) {
	defer s.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "listener", l.kind, "err", err)
			}
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refuse(l.kind, c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// refuse closes a connection without serving it.
func (s *server) refuse(kind string, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	s.log.Info("connection refused: broker not enabled", "listener", kind, "remote", c.RemoteAddr().String())
}

// close stops every listener and open connection and waits for their goroutines.
func (s *server) close() {
	for _, l := range s.listeners {
		_ = l.ln.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
