package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// KeyPrefix is the start of every store key a bridge writes; a bridge's own
// keys are KeyPrefix + name + "\x00" + a 16-digit hexadecimal sequence number.
const KeyPrefix = "b/"

// connectTimeout bounds one connection attempt, TLS handshake and CONNACK included.
const connectTimeout = 10 * time.Second

// Status is a bridge's state and counters, as Status returns them.
type Status struct {
	Name         string `json:"name"`
	Connected    bool   `json:"connected"`
	Address      string `json:"address"` // the remote address in use; empty when not connected
	Queued       int    `json:"queued"`  // outbound messages waiting for the remote's acknowledgement
	ForwardedIn  int64  `json:"forwarded_in"`
	ForwardedOut int64  `json:"forwarded_out"`
	Dropped      int64  `json:"dropped"`    // outbound messages a full queue dropped
	Denied       int64  `json:"denied"`     // inbound messages the Authorizer refused
	Reconnects   int64  `json:"reconnects"` // connections made after the first
}

// entry is one queued outbound message, already mapped to its remote topic,
// with its QoS and RETAIN flag as they will be sent.
type entry struct {
	seq uint64
	m   *mqtt.Message
}

// conn is one connection to the remote broker.
type conn struct {
	client paho.Client
	addr   string
	lost   chan struct{} // closed when paho reports the connection lost
}

// Bridge is one bridge to a remote broker. Its methods may be called from any
// goroutine.
type Bridge struct {
	cfg    config.Bridge
	b      *broker.Broker
	st     session.Store
	log    *slog.Logger
	id     string // receiver id, Origin of inbound messages, ACL client id and username
	prefix string // store key prefix of this bridge
	tls    *tls.Config
	proto  uint

	mu      sync.Mutex
	queue   []entry // guarded by mu; oldest first
	nextSeq uint64  // guarded by mu
	closed  bool    // guarded by mu; set by Stop: Deliver drops from then on
	conn    *conn   // guarded by mu; nil while disconnected
	started bool    // guarded by mu

	wake chan struct{} // capacity 1: the sender has work or a new connection

	echoMu sync.Mutex
	echoes map[string]*echo // guarded by echoMu

	forwardedIn, forwardedOut, dropped, denied, reconnects atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes the bridge cfg describes for broker b, loading the outbound
// messages that st holds for it from an earlier run. It neither connects nor
// subscribes: Start does. st must not be written by the bridge of the same
// name elsewhere.
func New(cfg config.Bridge, b *broker.Broker, st session.Store, log *slog.Logger) (*Bridge, error) {
	if cfg.Name == "" {
		return nil, errors.New("bridge: empty name")
	}
	if len(cfg.Addresses) == 0 {
		return nil, fmt.Errorf("bridge %q: no address", cfg.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("bridge", cfg.Name)
	br := &Bridge{
		cfg:    cfg,
		b:      b,
		st:     st,
		log:    log,
		id:     "bridge:" + cfg.Name,
		prefix: KeyPrefix + cfg.Name + "\x00",
		wake:   make(chan struct{}, 1),
		echoes: map[string]*echo{},
	}
	if br.cfg.QueueSize < 1 {
		br.cfg.QueueSize = 1
	}
	if br.cfg.ReconnectMin <= 0 {
		br.cfg.ReconnectMin = config.Duration(time.Second)
	}
	if br.cfg.ReconnectMax < br.cfg.ReconnectMin {
		br.cfg.ReconnectMax = br.cfg.ReconnectMin
	}
	switch cfg.ProtocolVersion {
	case 3:
		br.proto = 3
	case 5:
		log.Warn("bridge protocol_version 5 is not supported by its client: connecting with MQTT 3.1.1")
		br.proto = 4
	default:
		br.proto = 4
	}
	for i := range cfg.Topics {
		if err := mqtt.ValidTopicFilter(cfg.Topics[i].Pattern); err != nil {
			return nil, fmt.Errorf("bridge %q: topic %q: %w", cfg.Name, cfg.Topics[i].Pattern, err)
		}
	}
	var err error
	if br.tls, err = tlsConfig(&cfg); err != nil {
		return nil, fmt.Errorf("bridge %q: %w", cfg.Name, err)
	}
	if cfg.InsecureSkipVerify {
		log.Warn("BRIDGE TLS CERTIFICATE VERIFICATION IS OFF (insecure_skip_verify = true): " +
			"anyone on the path can read and change the bridged messages")
	}
	if err := br.load(); err != nil {
		return nil, fmt.Errorf("bridge %q: load queue: %w", cfg.Name, err)
	}
	return br, nil
}

// load reads the queue an earlier run left in the store.
func (br *Bridge) load() error {
	err := br.st.Scan(br.prefix, func(key string, value []byte) error {
		seq, err := strconv.ParseUint(key[len(br.prefix):], 16, 64)
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		m, err := mqtt.UnmarshalMessage(value)
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		br.queue = append(br.queue, entry{seq: seq, m: m})
		br.nextSeq = seq + 1
		return nil
	})
	if err == nil && len(br.queue) > 0 {
		br.log.Info("bridge queue loaded", "messages", len(br.queue))
	}
	return err
}

// tlsConfig is the TLS configuration of cfg, or nil when no address needs TLS
// and no TLS key is set.
func tlsConfig(cfg *config.Bridge) (*tls.Config, error) {
	need := cfg.CAFile != "" || cfg.CertFile != "" || cfg.ServerName != "" || cfg.InsecureSkipVerify
	for _, a := range cfg.Addresses {
		if u, err := url.Parse(a); err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "wss" || u.Scheme == "mqtts") {
			need = true
		}
	}
	if !need {
		return nil, nil
	}
	tc := &tls.Config{ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ID is the bridge's receiver id in the broker: "bridge:<name>".
func (br *Bridge) ID() string { return br.id }

// Name is the bridge's name.
func (br *Bridge) Name() string { return br.cfg.Name }

// Config is the configuration the bridge was made with.
func (br *Bridge) Config() config.Bridge { return br.cfg }

// Start subscribes the outbound rules locally and starts connecting to the
// remote broker. It returns at once; a bridge starts once.
func (br *Bridge) Start() error {
	br.mu.Lock()
	if br.started || br.closed {
		br.mu.Unlock()
		return fmt.Errorf("bridge %q: already started", br.cfg.Name)
	}
	br.started = true
	br.mu.Unlock()
	br.ctx, br.cancel = context.WithCancel(context.Background())
	br.b.AttachReceiver(br.id, br)
	for i := range br.cfg.Topics {
		t := &br.cfg.Topics[i]
		if t.Direction == config.DirectionIn {
			continue
		}
		opts := broker.SubscriptionOptions{QoS: mqtt.QoS(t.QoS), NoLocal: true, RetainAsPublished: true}
		if _, err := br.b.Subscribe(br.id, t.LocalPrefix+t.Pattern, opts); err != nil {
			br.b.DetachReceiver(br.id)
			br.cancel()
			return fmt.Errorf("bridge %q: subscribe %q: %w", br.cfg.Name, t.LocalPrefix+t.Pattern, err)
		}
	}
	br.wg.Add(2)
	go br.run()
	go br.send()
	br.signal()
	return nil
}

// Stop unsubscribes the bridge, disconnects it from the remote broker, waits
// for its goroutines and for the store to apply its writes. Queued messages
// stay in the store for the next run. After Stop the store may be closed.
// Stopping a stopped bridge does nothing.
func (br *Bridge) Stop(ctx context.Context) error {
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return nil
	}
	started := br.started
	br.closed = true
	br.mu.Unlock()
	if started {
		br.b.DetachReceiver(br.id)
		br.cancel()
		done := make(chan struct{})
		go func() { br.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("bridge %q: stop: %w", br.cfg.Name, ctx.Err())
		}
	}
	synced := make(chan error, 1)
	br.st.Barrier(func(err error) { synced <- err })
	select {
	case err := <-synced:
		if err != nil {
			return fmt.Errorf("bridge %q: store: %w", br.cfg.Name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bridge %q: stop: store: %w", br.cfg.Name, ctx.Err())
	}
}

// Status returns the bridge's state and counters.
func (br *Bridge) Status() Status {
	br.mu.Lock()
	s := Status{Name: br.cfg.Name, Queued: len(br.queue)}
	if br.conn != nil {
		s.Connected, s.Address = true, br.conn.addr
	}
	br.mu.Unlock()
	s.ForwardedIn = br.forwardedIn.Load()
	s.ForwardedOut = br.forwardedOut.Load()
	s.Dropped = br.dropped.Load()
	s.Denied = br.denied.Load()
	s.Reconnects = br.reconnects.Load()
	return s
}

// signal wakes the sender without blocking.
func (br *Bridge) signal() {
	select {
	case br.wake <- struct{}{}:
	default:
	}
}

// key is the store key of sequence number seq.
func (br *Bridge) key(seq uint64) string {
	return br.prefix + fmt.Sprintf("%016x", seq)
}

// Deliver queues a local message for the remote broker. It implements
// broker.Receiver: called from publishers' goroutines, it never waits for the
// network; it holds the bridge's lock while the store queues the write. It
// reports whether it queued the message, and so wrote the store: the local
// publisher's acknowledgement then waits until the write is durable.
func (br *Bridge) Deliver(m *mqtt.Message, _ mqtt.QoS, _ bool, _ []uint32) (stored bool) {
	rule := br.outRule(m.Topic)
	if rule == nil {
		return false
	}
	rest, ok := strings.CutPrefix(m.Topic, rule.LocalPrefix)
	if !ok || rest == "" {
		return false // a parent level that "prefix/#" matches but that has no remote name
	}
	out := &mqtt.Message{
		Topic:   rule.RemotePrefix + rest,
		Payload: m.Payload,
		QoS:     min(m.QoS, mqtt.QoS(rule.QoS)),
		Retain:  m.Retain && rule.Retain,
		Expiry:  m.Expiry,
	}
	val, err := out.AppendBinary(nil)
	if err != nil {
		br.log.Warn("bridge message not queued", "topic", m.Topic, "err", err)
		return false
	}
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return false
	}
	if len(br.queue) >= br.cfg.QueueSize {
		br.dropped.Add(1)
		if br.cfg.QueueOverflow == config.OverflowDropNewest {
			br.mu.Unlock()
			return false
		}
		old := br.queue[0]
		br.queue[0] = entry{}
		br.queue = br.queue[1:]
		br.st.Delete(br.key(old.seq))
	}
	seq := br.nextSeq
	br.nextSeq++
	br.queue = append(br.queue, entry{seq: seq, m: out})
	br.st.Set(br.key(seq), val)
	br.mu.Unlock()
	br.signal()
	return true
}

// outRule is the first outbound rule whose local filter matches topic.
func (br *Bridge) outRule(topic string) *config.BridgeTopic {
	for i := range br.cfg.Topics {
		t := &br.cfg.Topics[i]
		if t.Direction != config.DirectionIn && mqtt.Match(t.LocalPrefix+t.Pattern, topic) {
			return t
		}
	}
	return nil
}

// inRule is the first inbound rule whose remote filter matches topic.
func (br *Bridge) inRule(topic string) *config.BridgeTopic {
	for i := range br.cfg.Topics {
		t := &br.cfg.Topics[i]
		if t.Direction != config.DirectionOut && mqtt.Match(t.RemotePrefix+t.Pattern, topic) {
			return t
		}
	}
	return nil
}

// run connects, and connects again whenever the connection is lost, until Stop.
func (br *Bridge) run() {
	defer br.wg.Done()
	minDelay, maxDelay := br.cfg.ReconnectMin.Std(), br.cfg.ReconnectMax.Std()
	delay := minDelay
	attempt := 0
	connected := false
	for br.ctx.Err() == nil {
		addr := br.cfg.Addresses[attempt%len(br.cfg.Addresses)]
		attempt++
		c, err := br.connect(addr)
		if err != nil {
			wait := minDelay + rand.N(delay-minDelay+1)
			br.log.Warn("bridge connect failed", "address", addr, "attempt", attempt, "err", err, "retry_in", wait.Round(time.Millisecond))
			delay = min(delay*2, maxDelay)
			select {
			case <-time.After(wait):
			case <-br.ctx.Done():
			}
			continue
		}
		if connected {
			br.reconnects.Add(1)
		}
		connected = true
		br.log.Info("bridge connected", "address", addr, "attempt", attempt, "client_id", br.cfg.ClientID)
		delay, attempt = minDelay, 0
		br.mu.Lock()
		br.conn = c
		br.mu.Unlock()
		br.signal()
		select {
		case <-c.lost:
			br.log.Warn("bridge connection lost", "address", addr)
		case <-br.ctx.Done():
		}
		br.mu.Lock()
		br.conn = nil
		br.mu.Unlock()
		c.client.Disconnect(100)
	}
}

// connect makes one connection to addr and subscribes the inbound rules.
func (br *Bridge) connect(addr string) (*conn, error) {
	c := &conn{addr: addr, lost: make(chan struct{})}
	var once sync.Once
	o := paho.NewClientOptions().
		AddBroker(addr).
		SetClientID(br.cfg.ClientID).
		SetCleanSession(br.cfg.CleanSession).
		SetKeepAlive(br.cfg.Keepalive.Std()).
		SetProtocolVersion(br.proto).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetOrderMatters(true).
		SetDefaultPublishHandler(br.inbound).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			once.Do(func() { close(c.lost) })
		})
	if br.cfg.Username != "" {
		o.SetUsername(br.cfg.Username)
	}
	if br.cfg.Password != "" {
		o.SetPassword(br.cfg.Password)
	}
	if br.tls != nil {
		o.SetTLSConfig(br.tls)
	}
	c.client = paho.NewClient(o)
	if err := br.await(c, c.client.Connect()); err != nil {
		c.client.Disconnect(0)
		return nil, err
	}
	for i := range br.cfg.Topics {
		t := &br.cfg.Topics[i]
		if t.Direction == config.DirectionOut {
			continue
		}
		filter := t.RemotePrefix + t.Pattern
		if err := br.await(c, c.client.Subscribe(filter, byte(t.QoS), nil)); err != nil {
			c.client.Disconnect(0)
			return nil, fmt.Errorf("subscribe %q: %w", filter, err)
		}
	}
	return c, nil
}

var (
	errLost    = errors.New("connection lost")
	errStopped = errors.New("bridge stopped")
)

// await waits for tok, or for c to be lost or the bridge stopped.
func (br *Bridge) await(c *conn, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-c.lost:
		return errLost
	case <-br.ctx.Done():
		return errStopped
	}
}

// send publishes the queue to the remote broker in order, one message at a
// time, while a connection is up.
func (br *Bridge) send() {
	defer br.wg.Done()
	for {
		br.mu.Lock()
		c := br.conn
		var e entry
		ok := len(br.queue) > 0
		if ok {
			e = br.queue[0]
		}
		br.mu.Unlock()
		if !ok || c == nil {
			select {
			case <-br.wake:
				continue
			case <-br.ctx.Done():
				return
			}
		}
		if !e.m.Expired(time.Now()) {
			br.noteEcho(e.m)
			err := br.await(c, c.client.Publish(e.m.Topic, byte(e.m.QoS), e.m.Retain, e.m.Payload))
			switch {
			case errors.Is(err, errStopped):
				return
			case errors.Is(err, errLost):
				br.forgetEcho(e.m)
				continue
			case err != nil:
				br.log.Debug("bridge publish failed", "topic", e.m.Topic, "err", err)
				br.forgetEcho(e.m)
				select {
				case <-c.lost:
				case <-time.After(br.cfg.ReconnectMin.Std()):
				case <-br.ctx.Done():
					return
				}
				continue
			}
			br.forwardedOut.Add(1)
		}
		br.mu.Lock()
		if len(br.queue) > 0 && br.queue[0].seq == e.seq {
			br.queue[0] = entry{}
			br.queue = br.queue[1:]
			br.st.Delete(br.key(e.seq))
		}
		br.mu.Unlock()
	}
}

// inbound publishes a message from the remote broker locally. paho calls it
// from its router goroutine, one message at a time, and acknowledges the
// message when it returns.
func (br *Bridge) inbound(_ paho.Client, pm paho.Message) {
	topic := pm.Topic()
	rule := br.inRule(topic)
	if rule == nil {
		return
	}
	if br.isEcho(topic, pm.Payload()) {
		return
	}
	rest, ok := strings.CutPrefix(topic, rule.RemotePrefix)
	if !ok || rest == "" {
		return
	}
	local := rule.LocalPrefix + rest
	if err := mqtt.ValidTopicName(local); err != nil {
		br.log.Debug("bridge inbound topic not valid here", "topic", local, "err", err)
		return
	}
	if az := br.b.Options().Authorizer; az != nil && !az.CanPublish(br.id, br.id, local) {
		br.denied.Add(1)
		br.log.Debug("bridge inbound publish denied", "topic", local)
		return
	}
	payload := pm.Payload()
	if len(payload) == 0 {
		payload = nil
	}
	m := &mqtt.Message{
		Topic:   local,
		Payload: payload,
		QoS:     min(mqtt.QoS(pm.Qos()), mqtt.QoS(rule.QoS)),
		Retain:  pm.Retained() && rule.Retain,
		Origin:  br.id,
	}
	br.b.Publish(m)
	br.forwardedIn.Add(1)
}
