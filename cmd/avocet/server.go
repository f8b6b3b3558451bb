package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// connectTimeout bounds the wait for a client's CONNECT.
const connectTimeout = 10 * time.Second

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
	httpSrv   *http.Server // serves the ws listener; set before any goroutine starts
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
	s.httpSrv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.log.Info("connection refused: the broker is not enabled in this build", "listener", "ws", "remote", r.RemoteAddr)
			http.Error(w, "avocet: MQTT over WebSocket is not served yet", http.StatusServiceUnavailable)
		}),
		ReadHeaderTimeout: connectTimeout,
	}
	for _, l := range s.listeners {
		s.wg.Add(1)
		if l.kind == "ws" {
			go s.serveHTTP(l)
		} else {
			go s.accept(l)
		}
	}
	return nil
}

// serveHTTP answers WebSocket upgrade requests with 503 until the broker lands.
func (s *server) serveHTTP(l listener) {
	defer s.wg.Done()
	if err := s.httpSrv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("serve", "listener", l.kind, "err", err)
	}
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

// refuse reads a client's CONNECT and answers it with CONNACK "server unavailable"
// in the client's protocol version (return code 3 for 3.x, reason 0x88 for 5.0),
// then closes the connection. Anything that is not a valid CONNECT is closed at once.
func (s *server) refuse(kind string, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connectTimeout))
	log := s.log.With("listener", kind, "remote", c.RemoteAddr().String())
	r := mqtt.NewReader(bufio.NewReaderSize(c, 512))
	r.MaxPacketSize = 64 << 10
	p, err := r.ReadPacket()
	if err != nil {
		log.Info("connection closed before a valid CONNECT", "err", err)
		return
	}
	conn, ok := p.(*mqtt.Connect)
	if !ok { // [MQTT-3.1.0-1] the first packet must be CONNECT
		log.Info("first packet is not CONNECT", "type", p.Type().String())
		return
	}
	ack := mqtt.Connack{ReasonCode: mqtt.ServerUnavailable}
	out, err := ack.Encode(nil, conn.Version)
	if err == nil {
		_, err = c.Write(out)
	}
	log.Info("connection refused: the broker is not enabled in this build", "client_id", conn.ClientID,
		"version", conn.Version.String(), "write_err", err)
}

// close stops every listener and open connection and waits for their goroutines.
func (s *server) close() {
	for _, l := range s.listeners {
		_ = l.ln.Close()
	}
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
