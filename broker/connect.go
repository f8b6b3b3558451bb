package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// clientSession is a session as the broker keeps it: the session's state, the
// connection it is on (nil while offline) and what happens when it ends.
type clientSession struct {
	id   string
	s    *session.Session
	conn atomic.Pointer[conn] // nil while offline

	// Guarded by Broker.mu.
	gen         uint64                 // incremented on every connection, so that stale timers do nothing
	username    atomic.Pointer[string] // of the last connection, for authorization; nil before the first
	will        *mqtt.Message          // armed will message; nil when none
	willDelay   uint32                 // seconds
	willTimer   *time.Timer
	expiryTimer *time.Timer
}

// user returns the username of the session's last connection.
func (cs *clientSession) user() string {
	if p := cs.username.Load(); p != nil {
		return *p
	}
	return ""
}

// deliver queues m for the session. A message of QoS 0 for an offline session is
// dropped: only QoS 1 and 2 messages are kept for later (MQTT 5.0 section 3.1.2.4).
// stored reports whether the session's store was written.
func (cs *clientSession) deliver(b *Broker, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string, ref MsgRef) (ok, stored bool) {
	ok, stored, err := cs.enqueue(b, m, qos, retain, ids, group, cs.s.Enqueue)
	if errors.Is(err, session.ErrEnded) {
		// The session ended after the message was matched. When it moved to
		// another node the message follows it there.
		if cl := b.clusterOf(); cl != nil {
			st := cl.Relay(cs.id, m, qos, retain, ids, group, ref)
			return st || cl.Relaying(cs.id), st
		}
	}
	return ok, stored
}

// enqueue is deliver with the session's enqueue method of choice.
func (cs *clientSession) enqueue(b *Broker, m *mqtt.Message, qos mqtt.QoS, retain bool, ids []uint32, group string,
	enqueue func(session.Delivery) (*session.Delivery, bool, error)) (ok, stored bool, err error) {
	if qos == mqtt.AtMostOnce && cs.conn.Load() == nil {
		b.stats.drop(&b.stats.DroppedOffline)
		return false, false, nil
	}
	// The ACL's read rules apply to every delivery: a subscription may be allowed
	// while a deny rule covers part of what it matches.
	if az := b.opts.Authorizer; az != nil && !az.CanReceive(cs.id, cs.user(), m.Topic) {
		b.stats.drop(&b.stats.DroppedNotAuthorized)
		return false, false, nil
	}
	// The match result's storage is reused: keep a copy, or for one identifier
	// subIDs' shared slice.
	switch len(ids) {
	case 0:
	case 1:
		ids = subIDs(ids[0])
	default:
		ids = slices.Clone(ids)
	}
	dropped, stored, err := enqueue(session.Delivery{Msg: m, QoS: qos, Retain: retain, SubscriptionIDs: ids, Group: group})
	if err != nil && !errors.Is(err, session.ErrEnded) || dropped != nil {
		b.stats.drop(&b.stats.DroppedQueueFull)
	}
	return err == nil, stored, err
}

// connect reads and answers CONNECT. It returns true when the client is connected.
func (c *conn) connect(r *mqtt.Reader) bool {
	b := c.b
	_ = c.nc.SetReadDeadline(time.Now().Add(b.opts.ConnectTimeout))
	p, err := r.ReadPacket()
	if err != nil {
		var pe *mqtt.Error
		if errors.As(err, &pe) {
			b.stats.ProtocolErrors.Add(1)
			c.log.Info("CONNECT refused: protocol violation", "err", err)
			// 5.0 answers a bad CONNECT with its reason code; 3.x has a return code
			// only for an unacceptable version and otherwise closes without CONNACK
			// [MQTT-4.8.0-1] (3.1.1).
			if cp, ok := p.(*mqtt.Connect); ok && cp.Version == mqtt.Version5 {
				c.refuse(cp.Version, pe.Code)
			} else if pe.Code == mqtt.UnsupportedProtocolVersion {
				c.refuse(mqtt.Version311, pe.Code) // [MQTT-3.1.2-2] return code 0x01
			}
		} else {
			c.log.Debug("connection closed before CONNECT", "err", err)
		}
		return false
	}
	b.stats.PacketsReceived[p.Type()].Add(1)
	cp, ok := p.(*mqtt.Connect)
	if !ok { // [MQTT-3.1.0-1]
		b.stats.ProtocolErrors.Add(1)
		c.log.Info("first packet is not CONNECT", "type", p.Type().String())
		return false
	}
	c.version = cp.Version
	v := cp.Version

	// Client identifier rules: [MQTT-3.1.3-6] [MQTT-3.1.3-7] (5.0), [MQTT-3.1.3-8] (3.1.1).
	id := cp.ClientID
	assigned := false
	if id == "" {
		if v == mqtt.Version31 || !b.opts.AllowEmptyClientID || (v == mqtt.Version311 && !cp.CleanStart) {
			c.refuse(v, mqtt.ClientIdentifierNotValid)
			return false
		}
		id = newClientID()
		assigned = true
	}
	if len(id) > b.opts.MaxClientIDLength {
		c.refuse(v, mqtt.ClientIdentifierNotValid)
		return false
	}
	c.clientID = id
	c.username = cp.Username
	b.traceIn(c, cp) // tracers see the password field: they must hide it
	c.log = c.log.With("client_id", id)

	if b.draining.Load() {
		c.refuse(v, mqtt.ServerUnavailable)
		return false
	}
	if cp.Properties.Has(mqtt.PropAuthMethod) { // enhanced authentication is not offered (section 4.12)
		c.refuse(v, mqtt.BadAuthenticationMethod)
		return false
	}
	lim := b.limits.Load()
	if max := lim.MaxConnections; max > 0 && b.stats.ClientsConnected.Load() >= int64(max) {
		c.refuse(v, mqtt.ServerBusy)
		return false
	}
	if code := c.authenticate(cp); code != mqtt.Success {
		c.refuse(v, code)
		return false
	}

	// Session expiry: 3.x Clean Session 0 keeps the session for ever.
	expiry := uint32(0)
	if v == mqtt.Version5 {
		expiry = b.capExpiry(cp.Properties.SessionExpiry)
	} else if !cp.CleanStart {
		expiry = session.NeverExpire
	}
	c.connectExpiry = cp.Properties.SessionExpiry

	keepAlive := cp.KeepAlive
	if lim.ServerKeepAlive > 0 {
		keepAlive = lim.ServerKeepAlive
	} else if keepAlive > lim.MaxKeepAlive || keepAlive == 0 && lim.MaxKeepAlive < 65535 {
		keepAlive = lim.MaxKeepAlive
	}
	c.keepAlive = time.Duration(keepAlive) * time.Second

	c.window = b.opts.MaxInflight
	if v == mqtt.Version5 {
		c.window = min(c.window, int(cp.Properties.ReceiveMax()))
		c.maxOut = int(cp.Properties.MaximumPacketSize)
		c.aliasMaxOut = cp.Properties.TopicAliasMaximum
		c.problemInfo = cp.Properties.ProblemInfo()
	}

	if cl := b.clusterOf(); cl != nil {
		records, err := cl.Register(id, cp.CleanStart)
		if err == nil && records != nil {
			if _, err = b.ImportSession(records); err == nil {
				cl.Imported(id)
			}
		}
		if err != nil {
			c.log.Warn("CONNECT refused: cluster registration", "err", err)
			c.refuse(v, mqtt.ServerUnavailable)
			return false
		}
	}

	will := willMessage(cp, id)
	c.connectedAt = time.Now()
	present := b.attach(c, cp.CleanStart, expiry, will, cp.WillProperties.WillDelay)

	ack := &mqtt.Connack{SessionPresent: present, ReasonCode: mqtt.Success}
	if v == mqtt.Version5 {
		ap := &ack.Properties
		if expiry != cp.Properties.SessionExpiry && cp.Properties.Has(mqtt.PropSessionExpiry) {
			ap.SessionExpiry = expiry // [MQTT-3.2.2-?] the server's value when it differs
			ap.Set(mqtt.PropSessionExpiry)
		}
		if assigned { // [MQTT-3.2.2-16]
			ap.AssignedClientID = id
			ap.Set(mqtt.PropAssignedClientID)
		}
		if keepAlive != cp.KeepAlive { // [MQTT-3.2.2-21]
			ap.ServerKeepAlive = keepAlive
			ap.Set(mqtt.PropServerKeepAlive)
		}
		ap.ReceiveMaximum = uint16(b.opts.ReceiveMaximum)
		ap.Set(mqtt.PropReceiveMaximum)
		if b.opts.MaxPacketSize < mqtt.MaxPacketSize {
			ap.MaximumPacketSize = uint32(b.opts.MaxPacketSize)
			ap.Set(mqtt.PropMaximumPacketSize)
		}
		if b.opts.TopicAliasMaximum > 0 {
			ap.TopicAliasMaximum = b.opts.TopicAliasMaximum
			ap.Set(mqtt.PropTopicAliasMaximum)
		}
		for _, f := range []struct {
			on bool
			id mqtt.PropertyID
			p  *byte
		}{
			{b.opts.RetainAvailable, mqtt.PropRetainAvailable, &ap.RetainAvailable},
			{b.opts.WildcardSubs, mqtt.PropWildcardSubAvailable, &ap.WildcardSubAvailable},
			{b.opts.SubscriptionIDs, mqtt.PropSubIDAvailable, &ap.SubIDAvailable},
			{b.opts.SharedSubs, mqtt.PropSharedSubAvailable, &ap.SharedSubAvailable},
		} {
			if !f.on {
				*f.p = 0
				ap.Set(f.id)
			}
		}
		if cp.Properties.RequestResponseInfo == 1 {
			ap.ResponseInfo = "response/" + id
			ap.Set(mqtt.PropResponseInfo)
		}
	}
	c.queue(ctrl{t: mqtt.CONNACK, pkt: ack})
	c.limiter = newLimiter(lim)
	if hk := b.opts.Hooks; hk != nil {
		hk.OnRegister(c.info())
	}
	b.stats.ClientsConnected.Add(1)
	c.log.Info("client connected", "version", v.String(), "clean_start", cp.CleanStart,
		"session_present", present, "keep_alive", keepAlive)
	return true
}

// refuse answers CONNECT with a refusal and leaves the connection to be closed
// [MQTT-3.2.2-7] (3.1.1: [MQTT-3.2.2-5]).
func (c *conn) refuse(v mqtt.Version, code mqtt.ReasonCode) {
	c.b.stats.ConnectsRefused.Add(1)
	c.b.stats.RefusedBy[code].Add(1)
	c.log.Info("CONNECT refused", "reason", code.String())
	buf, err := (&mqtt.Connack{ReasonCode: code}).Encode(nil, v)
	if err == nil {
		c.b.stats.PacketsSent[mqtt.CONNACK].Add(1)
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(buf)
	}
}

func (c *conn) authenticate(cp *mqtt.Connect) mqtt.ReasonCode {
	b := c.b
	if b.opts.Authenticator == nil {
		if !b.opts.AllowAnonymous && !cp.UsernameFlag {
			return mqtt.NotAuthorized
		}
		return mqtt.Success
	}
	info := &ConnectInfo{ClientID: c.clientID, Username: cp.Username, HasUser: cp.UsernameFlag, Version: cp.Version,
		Listener: c.listener, RemoteAddr: c.nc.RemoteAddr(), TLS: c.tlsState()}
	if cp.PasswordFlag {
		info.Password = cp.Password
	}
	code, user := b.opts.Authenticator.Authenticate(info)
	if user != "" {
		c.username = user
	}
	return code
}

// capExpiry applies the configured maximum session expiry interval.
func (b *Broker) capExpiry(sec uint32) uint32 {
	if max := b.opts.MaxSessionExpiry; max > 0 && sec > max {
		return max
	}
	return sec
}

// newClientID makes a client identifier for a client that sent none.
func newClientID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return "avocet-" + hex.EncodeToString(r[:])
}

// willMessage returns the will of a CONNECT as a message, or nil.
func willMessage(cp *mqtt.Connect, id string) *mqtt.Message {
	if !cp.WillFlag {
		return nil
	}
	p := &mqtt.Publish{QoS: cp.WillQoS, Retain: cp.WillRetain, Topic: cp.WillTopic, Payload: cp.WillPayload}
	p.Properties = cp.WillProperties
	return mqtt.NewMessage(p, id, time.Now())
}

// attach binds a connected client to its session, taking over any connection
// that holds it, and reports whether an existing session was resumed.
func (b *Broker) attach(c *conn, cleanStart bool, expiry uint32, will *mqtt.Message, willDelay uint32) bool {
	for {
		b.mu.Lock()
		cs := b.sessions[c.clientID]
		if cs != nil {
			if old := cs.conn.Load(); old != nil {
				b.mu.Unlock()
				// [MQTT-3.1.4-3] take over: the older connection goes (5.0: reason 0x8E)
				// and settles its session before this one proceeds.
				old.takeOver()
				continue
			}
		}
		present := cs != nil && !cleanStart
		if cs != nil && cleanStart {
			b.endSessionLocked(cs, false)
			cs = nil
		}
		if cs == nil {
			cs = b.newSession(c.clientID)
			b.sessions[c.clientID] = cs
		}
		cs.gen++
		stopTimer(&cs.expiryTimer)
		if cs.willTimer != nil { // [MQTT-3.1.3-9] a delayed will is not sent when the session resumes
			stopTimer(&cs.willTimer)
			cs.will = nil
		}
		cs.will, cs.willDelay = will, willDelay
		user := c.username
		cs.username.Store(&user)
		cs.s.SetUsername(user)
		cs.s.SetExpiry(expiry)
		cs.s.SaveMeta(time.Time{})
		c.cs = cs
		cs.conn.Store(c)
		cs.s.SetWaker(c.wakeWriter)
		b.mu.Unlock()
		return present
	}
}

// takeOver closes the connection for a newer one of its client (5.0: reason
// 0x8E) and waits until its session is settled.
func (c *conn) takeOver() {
	c.kick(mqtt.SessionTakenOver)
	select {
	case <-c.settled():
	case <-time.After(5 * time.Second):
		c.shutdown()
		<-c.settled()
	}
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// settled returns a channel closed once the connection's session is settled after
// it ended. Only valid for connections past CONNECT.
func (c *conn) settled() <-chan struct{} { return c.settledC }

// disconnected settles the session of a connection that ended: the will, the
// session's expiry, and shared subscription messages the client did not take.
func (b *Broker) disconnected(c *conn, err error) {
	defer close(c.settledC)
	cs := c.cs
	if c.kicked.Load() == int32(mqtt.SessionTakenOver)+1 {
		c.log.Info("client taken over")
	} else {
		c.log.Info("client disconnected", "graceful", c.graceful.Load(), "err", err)
	}
	cs.s.Unsent()
	b.mu.Lock()
	if cs.conn.Load() != c {
		b.mu.Unlock()
		return
	}
	cs.conn.Store(nil)
	cs.s.SetWaker(nil)
	cs.s.SaveMeta(time.Now())
	// The will: sent on every end but a DISCONNECT without reason 0x04 [MQTT-3.1.2-8] [MQTT-3.1.2-10].
	if c.graceful.Load() && !c.sendWill.Load() {
		cs.will = nil
	}
	expiry := cs.s.Expiry()
	if cs.will != nil {
		if cs.willDelay == 0 || expiry == 0 {
			b.publishWillLocked(cs)
		} else {
			gen := cs.gen
			delay := time.Duration(min(cs.willDelay, expiry)) * time.Second // [MQTT-3.1.3-9] whichever comes first
			cs.willTimer = time.AfterFunc(delay, func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				if cs.gen == gen && cs.conn.Load() == nil && !b.closing {
					b.publishWillLocked(cs)
				}
			})
		}
	}
	switch expiry {
	case 0:
		b.endSessionLocked(cs, true)
	case session.NeverExpire:
	default:
		b.expireLocked(cs, time.Duration(expiry)*time.Second)
	}
	b.mu.Unlock()
	if hk := b.opts.Hooks; hk != nil {
		if expiry == 0 {
			hk.OnClientGone(c.info())
		} else {
			hk.OnClientOffline(c.info())
		}
	}
	// QoS 0 messages queued for the connection that just ended are not kept.
	for range cs.s.DropQoS0() {
		b.stats.drop(&b.stats.DroppedOffline)
	}
	b.redistribute(cs)
}

// expireLocked ends the offline session cs after d, publishing its will if it is
// still pending. Called with b.mu held.
func (b *Broker) expireLocked(cs *clientSession, d time.Duration) {
	gen := cs.gen
	cs.expiryTimer = time.AfterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if cs.gen == gen && cs.conn.Load() == nil && b.sessions[cs.id] == cs && !b.closing {
			if cs.will != nil {
				b.publishWillLocked(cs)
			}
			b.endSessionLocked(cs, true)
			if hk := b.opts.Hooks; hk != nil {
				hk.OnSessionExpired(cs.id)
			}
		}
	})
}

// sessionLimits are the limits every session gets.
func (b *Broker) sessionLimits() session.Limits {
	return session.Limits{MaxQueued: b.opts.MaxQueued, Drop: b.opts.QueueDrop, Budget: b.budget}
}

// newSession makes the broker's record of a new session, writing to the session
// store when there is one.
func (b *Broker) newSession(id string) *clientSession {
	s := session.New(id, b.sessionLimits())
	if b.opts.SessionStore != nil {
		s.AttachStore(b.opts.SessionStore)
	}
	return &clientSession{id: id, s: s}
}

// publishWillLocked publishes the session's will once. Called with b.mu held; the
// message is routed by another goroutine, as routing takes b.mu itself.
func (b *Broker) publishWillLocked(cs *clientSession) {
	m := cs.will
	cs.will = nil
	stopTimer(&cs.willTimer)
	if m == nil || b.closing {
		return
	}
	if az := b.opts.Authorizer; az != nil && !az.CanPublish(cs.id, cs.user(), m.Topic) {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.Publish(m)
	}()
}

// endSessionLocked forgets a session: its subscriptions and queued messages.
// Called with b.mu held.
func (b *Broker) endSessionLocked(cs *clientSession, expired bool) {
	b.dropSessionLocked(cs)
	if expired {
		b.log.Debug("session ended", "client_id", cs.id)
	}
	if b.closing {
		cs.s.Free()
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.redistribute(cs)
		cs.s.Free()
	}()
}

// dropSessionLocked removes a session from the broker, its timers stopped,
// and from the store with its subscriptions; the session's messages are still
// in memory. Called with b.mu held.
func (b *Broker) dropSessionLocked(cs *clientSession) {
	stopTimer(&cs.expiryTimer)
	stopTimer(&cs.willTimer)
	delete(b.sessions, cs.id)
	for _, sub := range b.tree.Subscriptions(cs.id) {
		cs.s.DeleteSubscription(sub.Filter)
	}
	b.tree.UnsubscribeAll(cs.id)
	cs.s.Purge()
	cs.gen++
}

// redistribute offers the shared subscription messages a departed client did not
// take to the other members of their groups (MQTT 5.0 section 4.8.2).
func (b *Broker) redistribute(cs *clientSession) {
	for _, d := range cs.s.TakeShared() {
		_, filter, _ := mqtt.SplitShared(d.Group)
		res := b.matchPool.Get().(*MatchResult)
		b.tree.Match(d.Msg.Topic, "", res)
		delivered := false
		for i := range res.Groups {
			g := &res.Groups[i]
			if mqtt.SharePrefix+g.Group+"/"+g.Filter != d.Group || g.Filter != filter {
				continue
			}
			for _, m := range g.Members {
				if m.Subscriber != cs.id && b.online(m.Subscriber) {
					delivered, _ = b.deliver(m.Subscriber, d.Msg, min(d.Msg.QoS, m.Options.QoS), d.Retain, subIDs(m.Options.SubscriptionID), d.Group, MsgRef{}, nil)
					break
				}
			}
		}
		b.matchPool.Put(res)
		if !delivered && b.sessionLive(cs) {
			// Nobody else can take it: keep it for the client's return.
			_, _, _ = cs.s.Enqueue(d)
		}
	}
}

// sessionLive reports whether cs is still the broker's session for its client id.
func (b *Broker) sessionLive(cs *clientSession) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sessions[cs.id] == cs
}
