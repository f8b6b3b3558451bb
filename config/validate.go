package config

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Validate checks every rule of the schema and returns nil, one *Error, or
// an errors.Join of *Error values, one per broken rule, in schema order.
// The errors carry the key path but no file or line; Load and Parse add them.
//
// A key of a feature this version lacks (see the package documentation) is
// an error, "not available in this version of avocet", when its value is not
// the default, and so is every entry of such an array of tables. Such errors
// are reported alone: the other rules are checked once no such key is set,
// since a rule about a feature that is not there would only add noise.
//
// Validate checks values, not the world: it does not open the files the
// configuration names, nor bind its addresses. It does not fill derived
// defaults either (an empty listener name, say) but checks the values they
// would take.
func (c *Config) Validate() error {
	return joinErrors(c.problems())
}

// checker collects the problems Validate finds.
type checker struct {
	errs []*Error
}

func (ck *checker) add(key, format string, args ...any) {
	ck.errs = append(ck.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (ck *checker) between(key string, v, lo, hi int) {
	if v < lo || v > hi {
		ck.add(key, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func (ck *checker) atLeast(key string, v, lo int) {
	if v < lo {
		ck.add(key, "must be at least %d, got %d", lo, v)
	}
}

func (ck *checker) notEmpty(key, v string) {
	if v == "" {
		ck.add(key, "must not be empty")
	}
}

func (ck *checker) duration(key string, d Duration, lo, hi time.Duration) {
	if time.Duration(d) < lo || time.Duration(d) > hi {
		ck.add(key, "must be between %s and %s, got %s", Duration(lo), Duration(hi), d)
	}
}

func oneOf[T ~string](ck *checker, key string, v T, allowed ...T) {
	if slices.Contains(allowed, v) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = strconv.Quote(string(a))
	}
	ck.add(key, "must be one of %s, got %q", strings.Join(names, ", "), string(v))
}

// hostPort checks a host:port address with a numeric port. The host may be
// empty (every interface) unless needHost is set.
func (ck *checker) hostPort(key, addr string, needHost bool) (host string, port int, ok bool) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		ck.add(key, "must be host:port, got %q", addr)
		return "", 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		ck.add(key, "port must be a number from 0 to 65535, got %q", p)
		return "", 0, false
	}
	if needHost && h == "" {
		ck.add(key, "must name a host, got %q", addr)
		return "", 0, false
	}
	return h, n, true
}

func (c *Config) problems() []*Error {
	if errs := c.unavailableProblems(); len(errs) > 0 {
		return errs
	}
	ck := &checker{}
	ck.notEmpty("node.name", c.Node.Name)

	oneOf(ck, "log.level", c.Log.Level, LevelDebug, LevelInfo, LevelWarn, LevelError)
	oneOf(ck, "log.format", c.Log.Format, FormatText, FormatJSON)

	ck.notEmpty("store.dir", c.Store.Dir)
	oneOf(ck, "store.fsync", c.Store.Fsync, FsyncAlways, FsyncEverySec, FsyncNever)
	ck.atLeast("store.shrink_percentage", c.Store.ShrinkPercentage, 0)
	ck.atLeast("store.shrink_min_size", int(c.Store.ShrinkMinSize), 0)

	c.checkListeners(ck)

	if c.Admin.Address != "" {
		ck.hostPort("admin.address", c.Admin.Address, false)
	}

	c.checkMQTT(ck)
	c.checkBridges(ck)
	c.checkWebhooks(ck)
	c.checkCluster(ck)
	return ck.errs
}

func (c *Config) checkListeners(ck *checker) {
	if len(c.Listeners) == 0 {
		ck.add("listener", "at least one listener is required")
	}
	type bound struct {
		host  string
		index int
	}
	ports := map[int][]bound{}
	names := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		key := indexKey("listener", i)
		name := l.effectiveName()
		if j, dup := names[name]; dup {
			ck.add(key+".name", "%q is already the name of listener[%d]", name, j)
		} else {
			names[name] = i
		}
		oneOf(ck, key+".kind", l.Kind, KindTCP, KindTLS, KindWS, KindWSS)
		if host, port, ok := ck.hostPort(key+".address", l.Address, false); ok && port != 0 {
			// Port 0 asks for a free port, so it never conflicts. A wildcard
			// host conflicts with every host on the same port.
			for _, other := range ports[port] {
				if other.host == host || isWildcard(other.host) || isWildcard(host) {
					ck.add(key+".address", "%q conflicts with listener[%d] address %q", l.Address, other.index, c.Listeners[other.index].Address)
					break
				}
			}
			ports[port] = append(ports[port], bound{host, i})
		}
		switch {
		case l.Kind.WebSocket():
			if p := l.effectivePath(); !strings.HasPrefix(p, "/") {
				ck.add(key+".path", "must begin with \"/\", got %q", p)
			}
		case l.Path != "":
			ck.add(key+".path", "applies only to ws and wss listeners, not %q", string(l.Kind))
		}
		if l.Kind.Secure() {
			if l.CertFile == "" {
				ck.add(key+".cert_file", "a %s listener needs cert_file", string(l.Kind))
			}
			if l.KeyFile == "" {
				ck.add(key+".key_file", "a %s listener needs key_file", string(l.Kind))
			}
			if l.RequireClientCert && l.CAFile == "" {
				ck.add(key+".ca_file", "require_client_cert needs ca_file to verify client certificates against")
			}
			if l.UseIdentityAsUsername && l.CAFile == "" {
				ck.add(key+".ca_file", "use_identity_as_username needs ca_file to verify client certificates against")
			}
		} else if l.Kind == KindTCP || l.Kind == KindWS {
			for _, f := range []struct {
				name string
				set  bool
			}{
				{"cert_file", l.CertFile != ""},
				{"key_file", l.KeyFile != ""},
				{"ca_file", l.CAFile != ""},
				{"require_client_cert", l.RequireClientCert},
				{"use_identity_as_username", l.UseIdentityAsUsername},
			} {
				if f.set {
					ck.add(key+"."+f.name, "applies only to tls and wss listeners, not %q", string(l.Kind))
				}
			}
		}
		ck.atLeast(key+".max_connections", l.MaxConnections, 0)
		ck.atLeast(key+".connection_rate", l.ConnectionRate, 0)
		if l.Kind.Secure() {
			if v := l.MinTLSVersion; v != "" && v != "1.2" && v != "1.3" {
				ck.add(key+".min_tls_version", "must be \"1.2\" or \"1.3\", got %q", v)
			}
			for _, name := range l.CipherSuites {
				if !knownCipherSuite(name) {
					ck.add(key+".cipher_suites", "unknown or insecure TLS 1.2 cipher suite %q (see crypto/tls.CipherSuites)", name)
				}
			}
		} else {
			if l.MinTLSVersion != "" {
				ck.add(key+".min_tls_version", "applies only to tls and wss listeners, not %q", string(l.Kind))
			}
			if len(l.CipherSuites) > 0 {
				ck.add(key+".cipher_suites", "applies only to tls and wss listeners, not %q", string(l.Kind))
			}
		}
	}
}

// knownCipherSuite reports whether name is one of Go's secure cipher suites.
func knownCipherSuite(name string) bool {
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name {
			return true
		}
	}
	return false
}

// webhookNames are the hooks a [[webhook]] may name.
var webhookNames = []string{"auth_on_register", "auth_on_subscribe", "auth_on_publish", "on_register",
	"on_subscribe", "on_unsubscribe", "on_deliver", "on_client_offline", "on_client_gone", "on_session_expired"}

func (c *Config) checkWebhooks(ck *checker) {
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		key := indexKey("webhook", i)
		oneOf(ck, key+".hook", w.Hook, webhookNames...)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ck.add(key+".url", "must be an http:// or https:// URL, got %q", w.URL)
		}
		ck.duration(key+".timeout", w.Timeout, time.Millisecond, time.Minute)
		oneOf(ck, key+".on_error", w.OnError, "deny", "allow")
	}
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func (c *Config) checkMQTT(ck *checker) {
	m := &c.MQTT
	ck.between("mqtt.max_keepalive", m.MaxKeepalive, 1, math.MaxUint16)
	ck.between("mqtt.server_keepalive", m.ServerKeepalive, 0, math.MaxUint16)
	ck.between("mqtt.max_packet_size", m.MaxPacketSize, 1, mqtt.MaxPacketSize)
	ck.between("mqtt.max_inflight", m.MaxInflight, 1, math.MaxUint16)
	// Receive Maximum zero is a protocol error [MQTT-3.2.2.3.3].
	ck.between("mqtt.receive_maximum", m.ReceiveMaximum, 1, math.MaxUint16)
	ck.atLeast("mqtt.max_queued_messages", m.MaxQueuedMessages, 0)
	oneOf(ck, "mqtt.queue_drop", m.QueueDrop, DropOldest, DropNewest)
	ck.atLeast("mqtt.max_connections", m.MaxConnections, 0)
	ck.atLeast("mqtt.max_topic_levels", m.MaxTopicLevels, 0)
	ck.atLeast("mqtt.max_subscriptions", m.MaxSubscriptions, 0)
	// A server must accept client identifiers of 1 to 23 bytes [MQTT-3.1.3-5],
	// and a UTF-8 string holds at most 65535.
	ck.between("mqtt.max_client_id_length", m.MaxClientIDLength, 23, math.MaxUint16)
	ck.duration("mqtt.connect_timeout", m.ConnectTimeout, time.Millisecond, time.Hour)
	ck.duration("mqtt.max_session_expiry", m.MaxSessionExpiry, 0, math.MaxUint32*time.Second)
	ck.between("mqtt.topic_alias_maximum", m.TopicAliasMaximum, 0, math.MaxUint16)
	oneOf(ck, "mqtt.shared_subscription_strategy", m.SharedSubscriptionStrategy, ShareRoundRobin, ShareRandom, ShareSticky)
	ck.atLeast("mqtt.max_retained_messages", m.MaxRetainedMessages, 0)
	ck.atLeast("mqtt.max_retained_bytes", int(m.MaxRetainedBytes), 0)
	if m.SysInterval != 0 {
		ck.duration("mqtt.sys_interval", m.SysInterval, time.Second, 24*time.Hour)
	}
	ck.atLeast("mqtt.max_publish_rate", m.MaxPublishRate, 0)
	ck.atLeast("mqtt.max_publish_bytes_rate", int(m.MaxPublishBytesRate), 0)
	ck.atLeast("mqtt.max_outbound_bytes", int(m.MaxOutboundBytes), 0)
}

// bridgeSchemes are the address schemes a bridge dials; the TLS ones first.
var bridgeSchemes = []string{"ssl", "tls", "wss", "tcp", "ws"}

func (c *Config) checkBridges(ck *checker) {
	names := map[string]int{}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		key := indexKey("bridge", i)
		if b.Name == "" {
			ck.add(key+".name", "must not be empty")
		} else if j, dup := names[b.Name]; dup {
			ck.add(key+".name", "%q is already the name of bridge[%d]", b.Name, j)
		} else {
			names[b.Name] = i
		}

		if len(b.Addresses) == 0 {
			ck.add(key+".address", "at least one address is required")
		}
		for j, a := range b.Addresses {
			akey := key + ".address"
			if len(b.Addresses) > 1 {
				akey = indexKey(akey, j)
			}
			checkBridgeAddress(ck, akey, a)
		}

		ck.between(key+".protocol_version", b.ProtocolVersion, 3, 5)
		id := b.effectiveClientID(c.Node.Name)
		if b.ProtocolVersion == 3 && len(id) > 23 {
			// MQTT 3.1 allows client identifiers of 1 to 23 characters.
			ck.add(key+".client_id", "%q is longer than the 23 characters MQTT 3.1 allows", id)
		} else if len(id) > math.MaxUint16 {
			ck.add(key+".client_id", "is longer than 65535 bytes")
		}
		if b.Password != "" && b.Username == "" && b.ProtocolVersion != 5 {
			// [MQTT-3.1.2-22]: no password without a user name before 5.0.
			ck.add(key+".password", "needs a username with protocol_version %d", b.ProtocolVersion)
		}
		if k := time.Duration(b.Keepalive); k%time.Second != 0 {
			ck.add(key+".keepalive", "must be a whole number of seconds, got %s", b.Keepalive)
		} else {
			ck.duration(key+".keepalive", b.Keepalive, 0, math.MaxUint16*time.Second)
		}
		if (b.CertFile == "") != (b.KeyFile == "") {
			if b.CertFile == "" {
				ck.add(key+".cert_file", "key_file needs cert_file")
			} else {
				ck.add(key+".key_file", "cert_file needs key_file")
			}
		}
		ck.atLeast(key+".queue_size", b.QueueSize, 1)
		oneOf(ck, key+".queue_overflow", b.QueueOverflow, OverflowDropOldest, OverflowDropNewest)
		ck.duration(key+".reconnect_min", b.ReconnectMin, time.Millisecond, 24*time.Hour)
		if b.ReconnectMax < b.ReconnectMin {
			ck.add(key+".reconnect_max", "must be at least reconnect_min (%s), got %s", b.ReconnectMin, b.ReconnectMax)
		} else {
			ck.duration(key+".reconnect_max", b.ReconnectMax, time.Millisecond, 24*time.Hour)
		}

		if len(b.Topics) == 0 {
			ck.add(key+".topic", "at least one [[bridge.topic]] is required")
		}
		for j := range b.Topics {
			checkBridgeTopic(ck, indexKey(key+".topic", j), &b.Topics[j])
		}
	}
}

func checkBridgeAddress(ck *checker, key, addr string) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" || u.Host == "" {
		ck.add(key, "must be a URL such as \"tcp://host:1883\", got %q", addr)
		return
	}
	if !slices.Contains(bridgeSchemes, u.Scheme) {
		ck.add(key, "scheme must be tcp, ssl, tls, ws or wss, got %q", u.Scheme)
		return
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		if u.Port() == "" {
			ck.add(key, "must give a port, as in %q", u.Scheme+"://"+u.Host+":1883")
		} else if u.Path != "" && u.Path != "/" {
			ck.add(key, "a %s address takes no path, got %q", u.Scheme, u.Path)
		}
	}
}

func checkBridgeTopic(ck *checker, key string, t *BridgeTopic) {
	if err := mqtt.ValidTopicFilter(t.Pattern); err != nil {
		ck.add(key+".pattern", "%q is not a valid topic filter: %v", t.Pattern, err)
	}
	oneOf(ck, key+".direction", t.Direction, DirectionIn, DirectionOut, DirectionBoth)
	ck.between(key+".qos", t.QoS, 0, 2)
	for _, p := range []struct{ name, v string }{{"local_prefix", t.LocalPrefix}, {"remote_prefix", t.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#\x00") {
			ck.add(key+"."+p.name, "must not hold a wildcard or U+0000, got %q", p.v)
		}
	}
}

func (c *Config) checkCluster(ck *checker) {
	cl := &c.Cluster
	if cl.Enabled && c.Node.Name == defaults().Node.Name {
		// Nodes tell each other apart by name: two nodes left with the
		// default would take each other's place in the membership. The
		// error names the key that turned the cluster on, which the file
		// or the environment sets, so that it has a line or a variable.
		ck.add("cluster.enabled", "a clustered node needs [node] name set to a name unique in the cluster, not the default %q", c.Node.Name)
	}
	gossip, link := cl.GossipAddress, cl.LinkAddress
	if cl.Enabled || gossip != "" {
		ck.hostPort("cluster.gossip_address", gossip, false)
	}
	if cl.Enabled || link != "" {
		ck.hostPort("cluster.link_address", link, false)
	}
	if gossip != "" && gossip == link {
		ck.add("cluster.link_address", "must differ from gossip_address %q", gossip)
	}
	if cl.AdvertiseAddress != "" {
		if host, _, ok := ck.hostPort("cluster.advertise_address", cl.AdvertiseAddress, true); ok && isWildcard(host) {
			ck.add("cluster.advertise_address", "must name a host others can reach, got %q", cl.AdvertiseAddress)
		}
	}
	for i, s := range cl.Seeds {
		ck.hostPort(indexKey("cluster.seeds", i), s, true)
	}
	if _, err := cl.SecretKey(); err != nil {
		ck.add("cluster.secret", "%v", err)
	}
	ck.duration("cluster.dead_node_grace", cl.DeadNodeGrace, 0, 365*24*time.Hour)
	if (cl.LinkTLSCert == "") != (cl.LinkTLSKey == "") {
		if cl.LinkTLSCert == "" {
			ck.add("cluster.link_tls_cert", "link_tls_key needs link_tls_cert")
		} else {
			ck.add("cluster.link_tls_key", "link_tls_cert needs link_tls_key")
		}
	}
	if cl.LinkTLSCert != "" && cl.LinkTLSKey != "" && cl.LinkTLSCA == "" {
		ck.add("cluster.link_tls_ca", "link TLS needs link_tls_ca to verify the peers' certificates against")
	}
	if cl.LinkTLSCA != "" && cl.LinkTLSCert == "" && cl.LinkTLSKey == "" {
		ck.add("cluster.link_tls_ca", "applies only with link_tls_cert and link_tls_key")
	}
	ck.duration("cluster.register_timeout", cl.RegisterTimeout, time.Millisecond, time.Hour)
	ck.atLeast("cluster.link_queue", cl.LinkQueue, 1)
	ck.duration("cluster.tombstone_ttl", cl.TombstoneTTL, time.Second, 365*24*time.Hour)
}

// SecretKey returns the gossip encryption key that Secret gives: nil when
// Secret is empty; the decoded bytes when Secret is standard base64 of 16, 24
// or 32 bytes (AES-128, -192 or -256); else Secret's own bytes when there are
// 16, 24 or 32 of them. Base64 is tried first, so a 32-character secret that
// is valid base64 of 24 bytes means those 24 bytes. The error never holds the
// secret.
func (cl Cluster) SecretKey() ([]byte, error) {
	if cl.Secret == "" {
		return nil, nil
	}
	if key, err := base64.StdEncoding.DecodeString(cl.Secret); err == nil && validKeyLen(len(key)) {
		return key, nil
	}
	if validKeyLen(len(cl.Secret)) {
		return []byte(cl.Secret), nil
	}
	return nil, fmt.Errorf("must be 16, 24 or 32 bytes, raw or base64-encoded; got %d bytes", len(cl.Secret))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
