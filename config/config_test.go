package config

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// errorsOf returns the *Error values in err, failing the test on any other kind.
func errorsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]*Error, 0, len(list))
	for _, e := range list {
		ce, ok := e.(*Error)
		if !ok {
			t.Fatalf("error %v is a %T, not a *Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// allFeatures empties unavailable for the rest of a test, so that the rules
// of features to come, kept in validate.go, stay tested.
func allFeatures(t *testing.T) {
	t.Helper()
	gate(t)
}

// gate makes unavailable list paths, and nothing else, for the rest of a
// test: the mechanism stays tested while no feature is missing.
func gate(t *testing.T, paths ...string) {
	t.Helper()
	saved := unavailable
	unavailable = map[string]bool{}
	for _, p := range paths {
		unavailable[p] = true
	}
	t.Cleanup(func() { unavailable = saved })
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "avocet.toml")
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	tests := []struct {
		key       string
		got, want any
	}{
		{"node.name", c.Node.Name, "avocet@127.0.0.1"},
		{"log.level", c.Log.Level, LevelInfo},
		{"log.format", c.Log.Format, FormatText},
		{"store.dir", c.Store.Dir, "./data"},
		{"store.fsync", c.Store.Fsync, FsyncEverySec},
		{"store.shrink_percentage", c.Store.ShrinkPercentage, 100},
		{"store.shrink_min_size", c.Store.ShrinkMinSize, ByteSize(32 << 20)},
		{"listener count", len(c.Listeners), 2},
		{"listener[0]", c.Listeners[0], Listener{Name: "tcp://0.0.0.0:1883", Kind: KindTCP, Address: "0.0.0.0:1883"}},
		{"listener[1]", c.Listeners[1], Listener{Name: "ws://0.0.0.0:8080", Kind: KindWS, Address: "0.0.0.0:8080", Path: "/mqtt"}},
		{"auth", c.Auth, Auth{AllowAnonymous: true}},
		{"admin", c.Admin, Admin{Address: "127.0.0.1:8888"}},
		{"mqtt.max_keepalive", c.MQTT.MaxKeepalive, 65535},
		{"mqtt.server_keepalive", c.MQTT.ServerKeepalive, 0},
		{"mqtt.max_packet_size", c.MQTT.MaxPacketSize, 268435455},
		{"mqtt.max_inflight", c.MQTT.MaxInflight, 100},
		{"mqtt.receive_maximum", c.MQTT.ReceiveMaximum, 100},
		{"mqtt.max_queued_messages", c.MQTT.MaxQueuedMessages, 1000},
		{"mqtt.queue_drop", c.MQTT.QueueDrop, DropOldest},
		{"mqtt.max_connections", c.MQTT.MaxConnections, 100000},
		{"mqtt.max_topic_levels", c.MQTT.MaxTopicLevels, 128},
		{"mqtt.max_subscriptions", c.MQTT.MaxSubscriptions, 0},
		{"mqtt.max_client_id_length", c.MQTT.MaxClientIDLength, 256},
		{"mqtt.connect_timeout", c.MQTT.ConnectTimeout, Duration(10 * time.Second)},
		{"mqtt.max_session_expiry", c.MQTT.MaxSessionExpiry, Duration(0)},
		{"mqtt.topic_alias_maximum", c.MQTT.TopicAliasMaximum, 64},
		{"mqtt.retain_available", c.MQTT.RetainAvailable, true},
		{"mqtt.wildcard_subscriptions", c.MQTT.WildcardSubscriptions, true},
		{"mqtt.shared_subscriptions", c.MQTT.SharedSubscriptions, true},
		{"mqtt.subscription_identifiers", c.MQTT.SubscriptionIdentifiers, true},
		{"mqtt.shared_subscription_strategy", c.MQTT.SharedSubscriptionStrategy, ShareRoundRobin},
		{"mqtt.max_retained_messages", c.MQTT.MaxRetainedMessages, 0},
		{"mqtt.max_retained_bytes", c.MQTT.MaxRetainedBytes, ByteSize(0)},
		{"mqtt.sys_interval", c.MQTT.SysInterval, Duration(10 * time.Second)},
		{"mqtt.allow_empty_client_id", c.MQTT.AllowEmptyClientID, true},
		{"mqtt.shared_prefer_local", c.MQTT.SharedPreferLocal, true},
		{"bridge", len(c.Bridges), 0},
		{"cluster", c.Cluster, Cluster{
			GossipAddress:    "127.0.0.1:7946",
			LinkAddress:      "127.0.0.1:7947",
			Seeds:            []string{},
			NetsplitPublish:  false,
			NetsplitRegister: false,
			DeadNodeGrace:    Duration(30 * time.Second),
			RegisterTimeout:  Duration(3 * time.Second),
			LinkQueue:        10000,
			TombstoneTTL:     Duration(24 * time.Hour),
		}},
		{"bridge entry", defaultBridge(), Bridge{
			CleanSession:    true,
			Keepalive:       Duration(time.Minute),
			ProtocolVersion: 4,
			QueueSize:       10000,
			QueueOverflow:   OverflowDropOldest,
			ReconnectMin:    Duration(time.Second),
			ReconnectMax:    Duration(time.Minute),
		}},
		{"bridge.topic entry", defaultBridgeTopic(), BridgeTopic{Direction: DirectionOut, Retain: true}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.key, tt.got, tt.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	c.MQTT.MaxInflight = 7
	c.Listeners[0].Address = "changed"
	if d := Default(); d.MQTT.MaxInflight != 100 || d.Listeners[0].Address != "0.0.0.0:1883" {
		t.Error("Default returns values that share state")
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, doc := range []string{
		"",
		"# nothing but a comment\n",
		"\n\r\n\n",
		"[node]\n[log]\n[store]\n[auth]\n[admin]\n[mqtt]\n[cluster]\n",
		"\ufeff[mqtt]\n",
	} {
		c := mustParse(t, doc)
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Parse(%q) =\n%+v\nwant the defaults\n%+v", doc, c, Default())
		}
	}
}

const fullFile = `
[node]
name = "avocet@10.0.0.1"

[log]
level = "debug"
format = "json"

[store]
dir = "/var/lib/avocet"
fsync = "always"
shrink_percentage = 50
shrink_min_size = "64MiB"

[[listener]]
name = "plain"
kind = "tcp"
address = "10.0.0.1:1883"
max_connections = 5000
proxy_protocol = true

[[listener]]
kind = "wss"
address = ":8443"
cert_file = "server.pem"
key_file = "server.key"
ca_file = "ca.pem"
require_client_cert = true
use_identity_as_username = true

[[listener]]
kind = "ws"
address = "[::1]:8080"
path = "/ws"

[auth]
allow_anonymous = false
password_file = "/etc/avocet/passwd"
acl_file = "/etc/avocet/acl"

[admin]
address = "0.0.0.0:9999"
token = "admin-token-value"

[mqtt]
max_keepalive = 600
server_keepalive = 30
max_packet_size = 1048576
max_inflight = 20
receive_maximum = 10
max_queued_messages = 0
queue_drop = "newest"
max_connections = 0
max_topic_levels = 0
max_subscriptions = 50
max_client_id_length = 64
connect_timeout = "5s"
max_session_expiry = "24h"
topic_alias_maximum = 0
retain_available = false
wildcard_subscriptions = false
shared_subscriptions = false
subscription_identifiers = false
shared_subscription_strategy = "sticky"
max_retained_messages = 10000
max_retained_bytes = "1GiB"
sys_interval = "0s"
allow_empty_client_id = false
shared_prefer_local = false

[[bridge]]
name = "cloud"
address = ["ssl://a.example.com:8883", "ssl://b.example.com:8883"]
client_id = "edge-1"
clean_session = false
keepalive = 30
username = "edge"
password = "bridge-password-value"
protocol_version = 5
ca_file = "cloud-ca.pem"
cert_file = "edge.pem"
key_file = "edge.key"
server_name = "cloud.example.com"
insecure_skip_verify = true
queue_size = 100
queue_overflow = "drop_newest"
reconnect_min = "500ms"
reconnect_max = "2m"

[[bridge.topic]]
pattern = "sensors/#"
direction = "out"
qos = 1
remote_prefix = "edge1/"

[[bridge.topic]]
pattern = "commands/+"
direction = "in"
qos = 2
local_prefix = "cloud/"
retain = false

[[bridge]]
name = "backup"
address = "tcp://10.0.0.9:1883"

[[bridge.topic]]
pattern = "#"
direction = "both"

[cluster]
enabled = true
gossip_address = "0.0.0.0:7946"
link_address = "0.0.0.0:7947"
advertise_address = "10.0.0.1:7946"
seeds = ["10.0.0.2:7946", "10.0.0.3:7946"]
secret = "MDEyMzQ1Njc4OWFiY2RlZg=="
netsplit_publish = true
netsplit_register = true
dead_node_grace = "2m"
link_tls_cert = "node.pem"
link_tls_key = "node.key"
link_tls_ca = "cluster-ca.pem"
register_timeout = "500ms"
link_queue = 500
tombstone_ttl = "1h"
`

func fullConfig() *Config {
	return &Config{
		Node:  Node{Name: "avocet@10.0.0.1"},
		Log:   Log{Level: LevelDebug, Format: FormatJSON},
		Store: Store{Dir: "/var/lib/avocet", Fsync: FsyncAlways, ShrinkPercentage: 50, ShrinkMinSize: 64 * MiB},
		Listeners: []Listener{
			{Name: "plain", Kind: KindTCP, Address: "10.0.0.1:1883", MaxConnections: 5000, ProxyProtocol: true},
			{Name: "wss://:8443", Kind: KindWSS, Address: ":8443", Path: "/mqtt", CertFile: "server.pem", KeyFile: "server.key",
				CAFile: "ca.pem", RequireClientCert: true, UseIdentityAsUsername: true},
			{Name: "ws://[::1]:8080", Kind: KindWS, Address: "[::1]:8080", Path: "/ws"},
		},
		Auth:  Auth{PasswordFile: "/etc/avocet/passwd", ACLFile: "/etc/avocet/acl"},
		Admin: Admin{Address: "0.0.0.0:9999", Token: "admin-token-value"},
		MQTT: MQTT{
			MaxKeepalive:               600,
			ServerKeepalive:            30,
			MaxPacketSize:              1048576,
			MaxInflight:                20,
			ReceiveMaximum:             10,
			QueueDrop:                  DropNewest,
			MaxSubscriptions:           50,
			MaxClientIDLength:          64,
			ConnectTimeout:             Duration(5 * time.Second),
			MaxSessionExpiry:           Duration(24 * time.Hour),
			SharedSubscriptionStrategy: ShareSticky,
			MaxRetainedMessages:        10000,
			MaxRetainedBytes:           GiB,
			MaxOutboundBytes:           GiB,
		},
		Bridges: []Bridge{
			{
				Name:               "cloud",
				Addresses:          StringList{"ssl://a.example.com:8883", "ssl://b.example.com:8883"},
				ClientID:           "edge-1",
				Keepalive:          Duration(30 * time.Second),
				Username:           "edge",
				Password:           "bridge-password-value",
				ProtocolVersion:    5,
				CAFile:             "cloud-ca.pem",
				CertFile:           "edge.pem",
				KeyFile:            "edge.key",
				ServerName:         "cloud.example.com",
				InsecureSkipVerify: true,
				QueueSize:          100,
				QueueOverflow:      OverflowDropNewest,
				ReconnectMin:       Duration(500 * time.Millisecond),
				ReconnectMax:       Duration(2 * time.Minute),
				Topics: []BridgeTopic{
					{Pattern: "sensors/#", Direction: DirectionOut, QoS: 1, RemotePrefix: "edge1/", Retain: true},
					{Pattern: "commands/+", Direction: DirectionIn, QoS: 2, LocalPrefix: "cloud/"},
				},
			},
			{
				Name:            "backup",
				Addresses:       StringList{"tcp://10.0.0.9:1883"},
				ClientID:        "avocet@10.0.0.1:backup",
				CleanSession:    true,
				Keepalive:       Duration(time.Minute),
				ProtocolVersion: 4,
				QueueSize:       10000,
				QueueOverflow:   OverflowDropOldest,
				ReconnectMin:    Duration(time.Second),
				ReconnectMax:    Duration(time.Minute),
				Topics:          []BridgeTopic{{Pattern: "#", Direction: DirectionBoth, Retain: true}},
			},
		},
		Cluster: Cluster{
			Enabled:          true,
			GossipAddress:    "0.0.0.0:7946",
			LinkAddress:      "0.0.0.0:7947",
			AdvertiseAddress: "10.0.0.1:7946",
			Seeds:            []string{"10.0.0.2:7946", "10.0.0.3:7946"},
			Secret:           "MDEyMzQ1Njc4OWFiY2RlZg==",
			NetsplitPublish:  true,
			NetsplitRegister: true,
			DeadNodeGrace:    Duration(2 * time.Minute),
			LinkTLSCert:      "node.pem",
			LinkTLSKey:       "node.key",
			LinkTLSCA:        "cluster-ca.pem",
			RegisterTimeout:  Duration(500 * time.Millisecond),
			LinkQueue:        500,
			TombstoneTTL:     Duration(time.Hour),
		},
	}
}

func TestParseFull(t *testing.T) {
	allFeatures(t)
	got := mustParse(t, fullFile)
	want := fullConfig()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(fullFile) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "avocet.toml")
	if err := os.WriteFile(path, []byte("[mqtt]\nmax_inflight = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.MaxInflight != 7 {
		t.Errorf("max_inflight = %d, want 7", c.MQTT.MaxInflight)
	}

	if err := os.WriteFile(path, []byte("[mqtt]\nmax_inflight = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + ":2: mqtt.max_inflight: must be between 1 and 65535, got 0"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// bridge is a valid one-bridge file; rows add lines to it.
const bridge = `[[bridge]]
name = "b"
address = "tcp://h:1883"
[[bridge.topic]]
pattern = "a/#"
`

// bridgeWith adds lines to the [[bridge]] table of bridge, from line 4 on.
func bridgeWith(lines string) string {
	i := strings.Index(bridge, "[[bridge.topic]]")
	return bridge[:i] + lines + bridge[i:]
}

// TestValidationErrors has a row per rule: the one problem expected, with
// its key and line.
func TestValidationErrors(t *testing.T) {
	allFeatures(t)
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		msg  string
	}{
		{"node name empty", "[node]\nname = \"\"", "node.name", 2, "must not be empty"},
		{"log level", "[log]\nlevel = \"verbose\"", "log.level", 2, `must be one of "debug", "info", "warn", "error", got "verbose"`},
		{"log format", "[log]\n\nformat = \"xml\"", "log.format", 3, `"text", "json"`},
		{"store dir", "[store]\ndir = \"\"", "store.dir", 2, "must not be empty"},
		{"store fsync", "[store]\nfsync = \"sometimes\"", "store.fsync", 2, `"always", "everysec", "never"`},
		{"store shrink percentage", "[store]\nshrink_percentage = -1", "store.shrink_percentage", 2, "at least 0"},

		{"listener kind", "[[listener]]\nkind = \"udp\"\naddress = \":1883\"", "listener[0].kind", 2, `got "udp"`},
		{"tls needs cert_file", "[[listener]]\naddress = \":1883\"\n[[listener]]\nkind = \"tls\"\naddress = \":8883\"\nkey_file = \"k\"",
			"listener[1].cert_file", 3, "a tls listener needs cert_file"},
		{"wss needs key_file", "[[listener]]\nkind = \"wss\"\naddress = \":8443\"\ncert_file = \"c\"",
			"listener[0].key_file", 1, "a wss listener needs key_file"},
		{"require_client_cert needs ca_file", "[[listener]]\nkind = \"tls\"\naddress = \":8883\"\ncert_file = \"c\"\nkey_file = \"k\"\nrequire_client_cert = true",
			"listener[0].ca_file", 1, "require_client_cert needs ca_file"},
		{"use_identity_as_username needs ca_file", "[[listener]]\nkind = \"tls\"\naddress = \":8883\"\ncert_file = \"c\"\nkey_file = \"k\"\nuse_identity_as_username = true",
			"listener[0].ca_file", 1, "use_identity_as_username needs ca_file"},
		{"tls key on tcp", "[[listener]]\naddress = \":1883\"\ncert_file = \"c\"", "listener[0].cert_file", 3, `applies only to tls and wss listeners, not "tcp"`},
		{"address without port", "[[listener]]\naddress = \"1883\"", "listener[0].address", 2, `must be host:port, got "1883"`},
		{"address port range", "[[listener]]\naddress = \":70000\"", "listener[0].address", 2, "port must be a number from 0 to 65535"},
		{"address port name", "[[listener]]\naddress = \"localhost:mqtt\"", "listener[0].address", 2, "port must be a number"},
		{"duplicate address", "[[listener]]\naddress = \"0.0.0.0:1883\"\n[[listener]]\nkind = \"ws\"\naddress = \"0.0.0.0:1883\"",
			"listener[1].address", 5, `conflicts with listener[0] address "0.0.0.0:1883"`},
		{"wildcard conflicts with host", "[[listener]]\naddress = \"127.0.0.1:1883\"\n[[listener]]\naddress = \":1883\"",
			"listener[1].address", 4, "conflicts with listener[0]"},
		{"duplicate name", "[[listener]]\nname = \"x\"\naddress = \":1\"\n[[listener]]\nname = \"x\"\naddress = \":2\"",
			"listener[1].name", 5, `"x" is already the name of listener[0]`},
		{"path on tcp", "[[listener]]\naddress = \":1883\"\npath = \"/mqtt\"", "listener[0].path", 3, "applies only to ws and wss"},
		{"ws path without slash", "[[listener]]\nkind = \"ws\"\naddress = \":80\"\npath = \"mqtt\"", "listener[0].path", 4, `must begin with "/"`},
		{"listener max_connections", "[[listener]]\naddress = \":1\"\nmax_connections = -1", "listener[0].max_connections", 3, "at least 0"},
		{"no listeners", "listener = []", "listener", 1, "at least one listener"},

		{"admin address", "[admin]\naddress = \"localhost\"", "admin.address", 2, "must be host:port"},

		{"max_keepalive", "[mqtt]\nmax_keepalive = 0", "mqtt.max_keepalive", 2, "must be between 1 and 65535, got 0"},
		{"server_keepalive", "[mqtt]\nserver_keepalive = 65536", "mqtt.server_keepalive", 2, "between 0 and 65535"},
		{"max_packet_size zero", "[mqtt]\nmax_packet_size = 0", "mqtt.max_packet_size", 2, "must be between 1 and 268435460, got 0"},
		{"max_packet_size large", "[mqtt]\nmax_packet_size = 268435461", "mqtt.max_packet_size", 2, "got 268435461"},
		{"max_inflight", "[mqtt]\n\n\nmax_inflight = 0", "mqtt.max_inflight", 4, "must be between 1 and 65535, got 0"},
		{"receive_maximum", "[mqtt]\nreceive_maximum = 65536", "mqtt.receive_maximum", 2, "between 1 and 65535"},
		{"max_queued_messages", "[mqtt]\nmax_queued_messages = -1", "mqtt.max_queued_messages", 2, "at least 0"},
		{"queue_drop", "[mqtt]\nqueue_drop = \"middle\"", "mqtt.queue_drop", 2, `"oldest", "newest"`},
		{"max_connections", "[mqtt]\nmax_connections = -5", "mqtt.max_connections", 2, "at least 0"},
		{"max_topic_levels", "[mqtt]\nmax_topic_levels = -1", "mqtt.max_topic_levels", 2, "at least 0"},
		{"max_subscriptions", "[mqtt]\nmax_subscriptions = -1", "mqtt.max_subscriptions", 2, "at least 0"},
		{"max_client_id_length", "[mqtt]\nmax_client_id_length = 22", "mqtt.max_client_id_length", 2, "between 23 and 65535"},
		{"connect_timeout", "[mqtt]\nconnect_timeout = \"0s\"", "mqtt.connect_timeout", 2, "must be between 1ms and 1h, got 0s"},
		{"max_session_expiry", "[mqtt]\nmax_session_expiry = \"-1s\"", "mqtt.max_session_expiry", 2, "got -1s"},
		{"topic_alias_maximum", "[mqtt]\ntopic_alias_maximum = 65536", "mqtt.topic_alias_maximum", 2, "between 0 and 65535"},
		{"shared_subscription_strategy", "[mqtt]\nshared_subscription_strategy = \"first\"", "mqtt.shared_subscription_strategy", 2, `"round_robin", "random", "sticky"`},
		{"max_retained_messages", "[mqtt]\nmax_retained_messages = -1", "mqtt.max_retained_messages", 2, "at least 0"},
		{"sys_interval", "[mqtt]\nsys_interval = \"500ms\"", "mqtt.sys_interval", 2, "between 1s and 24h"},

		{"bridge name", "[[bridge]]\naddress = \"tcp://h:1\"\n[[bridge.topic]]\npattern = \"#\"", "bridge[0].name", 1, "must not be empty"},
		{"bridge duplicate name", bridge + "\n" + bridge, "bridge[1].name", 8, `"b" is already the name of bridge[0]`},
		{"bridge address missing", "[[bridge]]\nname = \"b\"\n[[bridge.topic]]\npattern = \"#\"", "bridge[0].address", 1, "at least one address"},
		{"bridge address empty array", "[[bridge]]\nname = \"b\"\naddress = []\n[[bridge.topic]]\npattern = \"#\"", "bridge[0].address", 3, "at least one address"},
		{"bridge address scheme", strings.Replace(bridge, "tcp://h:1883", "http://h:1883", 1), "bridge[0].address", 3, `scheme must be tcp, ssl, tls, ws or wss, got "http"`},
		{"bridge address not a URL", strings.Replace(bridge, "tcp://h:1883", "h:1883", 1), "bridge[0].address", 3, "must be a URL"},
		{"bridge address port", strings.Replace(bridge, "tcp://h:1883", "ssl://h", 1), "bridge[0].address", 3, `must give a port, as in "ssl://h:1883"`},
		{"bridge address list", strings.Replace(bridge, `"tcp://h:1883"`, "[\n  \"tcp://h:1883\",\n  \"mqtt://h:1883\",\n]", 1),
			"bridge[0].address[1]", 5, `got "mqtt"`},
		{"bridge without topics", "[[bridge]]\nname = \"b\"\naddress = \"ws://h/mqtt\"", "bridge[0].topic", 1, "at least one [[bridge.topic]]"},
		{"bridge protocol_version", bridgeWith("protocol_version = 6\n"), "bridge[0].protocol_version", 4, "between 3 and 5"},
		{"bridge queue_size", bridgeWith("queue_size = 0\n"), "bridge[0].queue_size", 4, "at least 1"},
		{"bridge queue_overflow", bridgeWith("queue_overflow = \"drop_all\"\n"), "bridge[0].queue_overflow", 4, `"drop_oldest", "drop_newest"`},
		{"bridge reconnect_max", bridgeWith("reconnect_min = \"10s\"\nreconnect_max = \"5s\"\n"), "bridge[0].reconnect_max", 5, "must be at least reconnect_min (10s), got 5s"},
		{"bridge reconnect_min", bridgeWith("reconnect_min = 0\n"), "bridge[0].reconnect_min", 4, "between 1ms and 24h"},
		{"bridge keepalive fraction", bridgeWith("keepalive = \"1.5s\"\n"), "bridge[0].keepalive", 4, "whole number of seconds"},
		{"bridge keepalive large", bridgeWith("keepalive = 65536\n"), "bridge[0].keepalive", 4, "between 0s and 18h12m15s"},
		{"bridge password without username", bridgeWith("password = \"secret-value\"\n"), "bridge[0].password", 4, "needs a username with protocol_version 4"},
		{"bridge cert without key", bridgeWith("cert_file = \"c.pem\"\n"), "bridge[0].key_file", 1, "cert_file needs key_file"},
		{"bridge client_id for 3.1", bridgeWith("protocol_version = 3\nclient_id = \"a-very-long-client-identifier\"\n"),
			"bridge[0].client_id", 5, "longer than the 23 characters MQTT 3.1 allows"},
		{"bridge derived client_id for 3.1", bridgeWith("protocol_version = 3\n") + "[node]\nname = \"avocet@node-1.example.com\"",
			"bridge[0].client_id", 1, `"avocet@node-1.example.com:b" is longer`},
		{"bridge topic pattern", strings.Replace(bridge, "a/#", "a/#/b", 1), "bridge[0].topic[0].pattern", 5, `"a/#/b" is not a valid topic filter`},
		{"bridge topic pattern empty", strings.Replace(bridge, "pattern = \"a/#\"\n", "qos = 1\n", 1), "bridge[0].topic[0].pattern", 4, "not a valid topic filter"},
		{"bridge second topic", bridge + "[[bridge.topic]]\npattern = \"+/x\"\n[[bridge.topic]]\npattern = \"x+\"", "bridge[0].topic[2].pattern", 9, "not a valid topic filter"},
		{"bridge topic direction", bridge + "direction = \"sideways\"", "bridge[0].topic[0].direction", 6, `"in", "out", "both"`},
		{"bridge topic qos", bridge + "qos = 3", "bridge[0].topic[0].qos", 6, "between 0 and 2, got 3"},
		{"bridge topic prefix", bridge + "local_prefix = \"a/+/\"", "bridge[0].topic[0].local_prefix", 6, "must not hold a wildcard"},
		{"second bridge topic", bridge + strings.Replace(strings.Replace(bridge, `"b"`, `"c"`, 1), "a/#", "", 1),
			"bridge[1].topic[0].pattern", 10, "not a valid topic filter"},

		{"cluster secret", "[cluster]\nsecret = \"too-short\"", "cluster.secret", 2, "must be 16, 24 or 32 bytes, raw or base64-encoded; got 9 bytes"},
		{"cluster seeds", "[cluster]\nseeds = [\n  \"10.0.0.2:7946\",\n  \"7946\",\n]", "cluster.seeds[1]", 4, "must be host:port"},
		{"cluster seed host", "[cluster]\nseeds = [\":7946\"]", "cluster.seeds[0]", 2, "must name a host"},
		{"cluster same addresses", "[cluster]\ngossip_address = \":7946\"\nlink_address = \":7946\"", "cluster.link_address", 3, "must differ from gossip_address"},
		{"cluster gossip needed", "[node]\nname = \"n1\"\n[cluster]\nenabled = true\ngossip_address = \"\"", "cluster.gossip_address", 5, "must be host:port"},
		{"cluster default node name", "[cluster]\nenabled = true", "cluster.enabled", 2,
			`a clustered node needs [node] name set to a name unique in the cluster, not the default "avocet@127.0.0.1"`},
		{"cluster default node name given", "[node]\nname = \"avocet@127.0.0.1\"\n[cluster]\n\nenabled = true", "cluster.enabled", 5, "unique in the cluster"},
		{"cluster link_tls_cert without key", "[cluster]\nlink_tls_cert = \"n.pem\"\nlink_tls_ca = \"ca.pem\"", "cluster.link_tls_key", 1, "link_tls_cert needs link_tls_key"},
		{"cluster link_tls_key without cert", "[cluster]\nlink_tls_key = \"n.key\"\nlink_tls_ca = \"ca.pem\"", "cluster.link_tls_cert", 1, "link_tls_key needs link_tls_cert"},
		{"cluster link TLS without CA", "[cluster]\nlink_tls_cert = \"n.pem\"\nlink_tls_key = \"n.key\"", "cluster.link_tls_ca", 1, "link TLS needs link_tls_ca"},
		{"cluster link_tls_ca alone", "[cluster]\nlink_tls_ca = \"ca.pem\"", "cluster.link_tls_ca", 2, "applies only with link_tls_cert and link_tls_key"},
		{"cluster register_timeout", "[cluster]\nregister_timeout = \"0s\"", "cluster.register_timeout", 2, "must be between 1ms and 1h, got 0s"},
		{"cluster link_queue", "[cluster]\nlink_queue = 0", "cluster.link_queue", 2, "must be at least 1, got 0"},
		{"cluster tombstone_ttl", "[cluster]\ntombstone_ttl = 0", "cluster.tombstone_ttl", 2, "must be between 1s and 8760h, got 0s"},
		{"cluster advertise wildcard", "[cluster]\nadvertise_address = \"0.0.0.0:7946\"", "cluster.advertise_address", 2, "must name a host others can reach"},
		{"cluster dead_node_grace", "[cluster]\ndead_node_grace = \"-1s\"", "cluster.dead_node_grace", 2, "got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "avocet.toml")
			errs := errorsOf(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v\n%s", len(errs), err, tt.doc)
			}
			e := errs[0]
			if e.File != "avocet.toml" || e.Key != tt.key || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %#v\nwant key %s, line %d, message with %q\n%s", e, tt.key, tt.line, tt.msg, tt.doc)
			}
			prefix := "avocet.toml:" + strconv.Itoa(tt.line) + ": " + tt.key + ": "
			if !strings.HasPrefix(e.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", e.Error(), prefix)
			}
		})
	}
}

// TestValid holds files that break no rule though they look close to it.
func TestValid(t *testing.T) {
	allFeatures(t)
	for _, doc := range []string{
		"[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\nkind = \"ws\"\naddress = \"127.0.0.1:0\"",
		"[[listener]]\naddress = \"127.0.0.1:1883\"\n[[listener]]\naddress = \"127.0.0.2:1883\"",
		"[[listener]]\naddress = \"[::1]:1883\"",
		"[[listener]]\nkind = \"tls\"\naddress = \":8883\"\ncert_file = \"c\"\nkey_file = \"k\"\nca_file = \"ca\"\nrequire_client_cert = true\nuse_identity_as_username = true",
		"[admin]\naddress = \"\"",
		"[mqtt]\nsys_interval = \"0s\"\nmax_session_expiry = \"4294967295s\"",
		"[mqtt]\nmax_packet_size = 268435460",
		bridge + "[[bridge.topic]]\npattern = \"$share/g/x/+\"",
		strings.Replace(bridge, "tcp://h:1883", "wss://h/mqtt", 1),
		bridgeWith("protocol_version = 5\npassword = \"p\"\n"),
		bridgeWith("protocol_version = 3\nclient_id = \"short\"\n"),
		"[node]\nname = \"avocet@n1.example\"\n[cluster]\nenabled = true\nseeds = [\"n2.example:7946\"]\nsecret = \"0123456789abcdef0123456789abcdef\"",
		"[node]\nname = \"n1\"\n[cluster]\nenabled = true\nlink_tls_cert = \"n1.pem\"\nlink_tls_key = \"n1.key\"\nlink_tls_ca = \"ca.pem\"\nregister_timeout = \"1ms\"\nlink_queue = 1\ntombstone_ttl = \"1s\"",
		"[cluster]\ngossip_address = \"\"\nlink_address = \"\"",
	} {
		if _, err := Parse([]byte(doc), "avocet.toml"); err != nil {
			t.Errorf("Parse = %v\n%s", err, doc)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		msg  string
	}{
		{"top level", "# comment\nfoo = 1", "foo", 2, "unknown key"},
		{"unknown table", "[mqtt]\nmax_inflight = 5\n\n[mqt]\nmax_inflight = 5", "mqt", 4, `unknown key (did you mean "mqtt"?)`},
		{"in mqtt", "[mqtt]\nmax_inflight = 5\nmax_infligt = 5", "mqtt.max_infligt", 3, `unknown key (did you mean "max_inflight"?)`},
		{"case differs", "[mqtt]\nMax_Inflight = 5", "mqtt.Max_Inflight", 2, `keys are case-sensitive: did you mean "max_inflight"?`},
		{"in second listener", "[[listener]]\naddress = \":1\"\n\n[[listener]]\naddress = \":2\"\ntls = true", "listener[1].tls", 6, "unknown key"},
		{"in bridge topic", bridge + "direciton = \"in\"", "bridge[0].topic[0].direciton", 6, `did you mean "direction"?`},
		{"inline table", "admin = { address = \"127.0.0.1:1\", tokn = \"t\" }", "admin.tokn", 1, `did you mean "token"?`},
		{"dotted key", "mqtt.max_inflight = 5\nmqtt.bogus = 1", "mqtt.bogus", 2, "unknown key"},
		{"quoted key", "[mqtt]\n\"max inflight\" = 5", `mqtt."max inflight"`, 2, "unknown key"},
		{"after multi-line string", "[auth]\nacl_file = \"\"\"\nline\n\"\"\"\npassword_fil = \"x\"", "auth.password_fil", 5, `did you mean "password_file"?`},
		{"after multi-line array", "[cluster]\nseeds = [\n  \"a:1\", # first\n  \"b:2\",\n]\nsead = 1", "cluster.sead", 6, "unknown key"},
		{"nested table", "[mqtt.limits]\nx = 1", "mqtt.limits", 1, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "avocet.toml")
			errs := errorsOf(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), err)
			}
			if e := errs[0]; e.Key != tt.key || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %#v\nwant key %s, line %d, message with %q", e, tt.key, tt.line, tt.msg)
			}
		})
	}
}

func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		key  string
		line int
		msg  string
	}{
		{"string for integer", "[mqtt]\nmax_inflight = \"100\"", "mqtt.max_inflight", 2, `must be an integer, got string "100"`},
		{"float for integer", "[mqtt]\nmax_inflight = 1.5", "mqtt.max_inflight", 2, "must be an integer, got float 1.5"},
		{"boolean in second listener", "[[listener]]\naddress = \":1\"\n[[listener]]\naddress = \":2\"\nmax_connections = true",
			"listener[1].max_connections", 5, "must be an integer, got boolean true"},
		{"integer for string", "[node]\nname = 5", "node.name", 2, "must be a string, got integer 5"},
		{"string for boolean", "[auth]\nallow_anonymous = \"yes\"", "auth.allow_anonymous", 2, `must be true or false, got string "yes"`},
		{"bad duration", "[mqtt]\nconnect_timeout = \"soon\"", "mqtt.connect_timeout", 2, `must be a duration such as "10s" or "1m30s", got "soon"`},
		{"bad size", "[store]\nshrink_min_size = \"32 parsecs\"", "store.shrink_min_size", 2, `unknown unit in size "32 parsecs"`},
		{"value for table", "mqtt = 5", "mqtt", 1, "must be a table, got integer 5"},
		{"string for array", "[cluster]\nseeds = \"a:1\"", "cluster.seeds", 2, `must be an array, got string "a:1"`},
		{"array element", "[cluster]\nseeds = [\"a:1\", 2]", "cluster.seeds[1]", 2, "must be a string, got integer 2"},
		{"bridge address integer", strings.Replace(bridge, `"tcp://h:1883"`, "1883", 1), "bridge[0].address", 3, "must be a string or an array of strings, got integer 1883"},
		{"bridge address element", strings.Replace(bridge, `"tcp://h:1883"`, `["tcp://h:1883", 1]`, 1), "bridge[0].address", 3, "element 1 is integer 1"},
		{"listener table", "[listener]\naddress = \":1\"", "listener", 1, "must be an array, got a table"},
		{"datetime", "[node]\nname = 1979-05-27T07:32:00Z", "node.name", 2, "got a datetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "avocet.toml")
			errs := errorsOf(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), err)
			}
			if e := errs[0]; e.Key != tt.key || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %#v\nwant key %s, line %d, message with %q", e, tt.key, tt.line, tt.msg)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"double equals", "[mqtt]\nmax_inflight = = 3", 2, "expected value but found '=' instead (last key read: mqtt.max_inflight)"},
		{"unclosed header", "[node]\nname = \"n\"\n[mqtt\nmax_inflight = 3", 3, "to end table name"},
		{"duplicate key", "[mqtt]\nmax_inflight = 1\nmax_inflight = 2", 3, "'mqtt.max_inflight' has already been defined"},
		{"unterminated string", "# a\n# b\n[node]\nname = \"n", 4, "unexpected EOF"},
		{"two items on a line", "[mqtt]\nmax_inflight = 1 max_keepalive = 2", 2, "expected a top-level item to end with a newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "avocet.toml")
			errs := errorsOf(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), err)
			}
			e := errs[0]
			if e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) || e.Key != "" {
				t.Errorf("got %#v, want line %d, no key, message with %q", e, tt.line, tt.msg)
			}
			if prefix := "avocet.toml:" + strconv.Itoa(tt.line) + ": "; !strings.HasPrefix(e.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", e.Error(), prefix)
			}
		})
	}
}

func TestSeveralErrors(t *testing.T) {
	doc := `[mqtt]
max_inflight = 0
receive_maximum = 0

[[listener]]
kind = "tls"
address = ":8883"

[log]
level = "loud"
`
	_, err := Parse([]byte(doc), "avocet.toml")
	errs := errorsOf(t, err)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"avocet.toml:2: mqtt.max_inflight: must be between 1 and 65535, got 0",
		"avocet.toml:3: mqtt.receive_maximum: must be between 1 and 65535, got 0",
		"avocet.toml:5: listener[0].cert_file: a tls listener needs cert_file",
		"avocet.toml:5: listener[0].key_file: a tls listener needs key_file",
		`avocet.toml:10: log.level: must be one of "debug", "info", "warn", "error", got "loud"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
	var first *Error
	if !errors.As(err, &first) || first.Key != "mqtt.max_inflight" {
		t.Errorf("errors.As gives %v, want the first error", first)
	}

	// Type errors are reported without validation, all of them, in line order.
	_, err = Parse([]byte("[mqtt]\nmax_inflight = \"x\"\nmax_keepalive = 0\nbogus = 1\n[node]\nname = 1"), "f")
	errs = errorsOf(t, err)
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	if want := []string{"mqtt.max_inflight", "mqtt.bogus", "node.name"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.MQTT.MaxInflight = 0
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Validate = %v, want *Error", err)
	}
	if got, want := err.Error(), "mqtt.max_inflight: must be between 1 and 65535, got 0"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	// Derived defaults are checked as they would be filled.
	c = Default()
	c.Listeners = append(c.Listeners, Listener{Kind: KindWSS, Address: ":8443", CertFile: "c", KeyFile: "k"})
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with an unnamed wss listener = %v", err)
	}
	c.Listeners = append(c.Listeners, Listener{Kind: KindTCP, Address: "0.0.0.0:1883"})
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `listener[3].name: "tcp://0.0.0.0:1883" is already the name of listener[0]`) {
		t.Errorf("Validate with a duplicate derived name = %v", err)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 12, Key: "mqtt.max_inflight", Msg: "bad"}, "a.toml:12: mqtt.max_inflight: bad"},
		{Error{File: "a.toml", Key: "listener", Msg: "bad"}, "a.toml: listener: bad"},
		{Error{File: "a.toml", Line: 3, Msg: "bad"}, "a.toml:3: bad"},
		{Error{Key: "k", Msg: "bad"}, "k: bad"},
		{Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestBridgeAddress(t *testing.T) {
	allFeatures(t)
	tests := []struct {
		value string
		want  StringList
	}{
		{`"tcp://h:1883"`, StringList{"tcp://h:1883"}},
		{`["tcp://h:1883"]`, StringList{"tcp://h:1883"}},
		{`["ssl://a:8883", "tls://b:8883", "ws://c/mqtt", "wss://d:443/mqtt"]`, StringList{"ssl://a:8883", "tls://b:8883", "ws://c/mqtt", "wss://d:443/mqtt"}},
	}
	for _, tt := range tests {
		c := mustParse(t, strings.Replace(bridge, `"tcp://h:1883"`, tt.value, 1))
		if got := c.Bridges[0].Addresses; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("address = %s: got %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestListenerDefaults(t *testing.T) {
	c := mustParse(t, "[[listener]]\naddress = \":1883\"\n[[listener]]\nkind = \"wss\"\naddress = \":8443\"\ncert_file = \"c\"\nkey_file = \"k\"")
	want := []Listener{
		{Name: "tcp://:1883", Kind: KindTCP, Address: ":1883"},
		{Name: "wss://:8443", Kind: KindWSS, Address: ":8443", Path: "/mqtt", CertFile: "c", KeyFile: "k"},
	}
	if !reflect.DeepEqual(c.Listeners, want) {
		t.Errorf("listeners = %+v, want %+v", c.Listeners, want)
	}
}

func TestSecretKey(t *testing.T) {
	tests := []struct {
		secret string
		want   []byte
		err    bool
	}{
		{"", nil, false},
		{"MDEyMzQ1Njc4OWFiY2RlZg==", []byte("0123456789abcdef"), false},
		{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", []byte("0123456789abcdef01234567"), false},
		{"0123456789abcdef", []byte("0123456789abcdef"), false},                                     // base64 of 12 bytes, so raw
		{"0123456789abcdef0123456789ABCDEF", mustBase64("0123456789abcdef0123456789ABCDEF"), false}, // base64 wins
		{"0123456789abcdef0123456789abcde!", []byte("0123456789abcdef0123456789abcde!"), false},
		{"not-a-valid-key!", []byte("not-a-valid-key!"), false},
		{"short secret", nil, true},
		{"MTIzNDU2Nzg=", nil, true}, // base64 of 8 bytes, 12 raw bytes
	}
	for _, tt := range tests {
		got, err := Cluster{Secret: tt.secret}.SecretKey()
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SecretKey(%q) = %q, %v; want %q, error %v", tt.secret, got, err, tt.want, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), tt.secret) {
			t.Errorf("SecretKey error %q shows the secret", err)
		}
	}
}

func mustBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestKinds(t *testing.T) {
	for _, tt := range []struct {
		kind              ListenerKind
		secure, websocket bool
	}{
		{KindTCP, false, false}, {KindTLS, true, false}, {KindWS, false, true}, {KindWSS, true, true},
	} {
		if tt.kind.Secure() != tt.secure || tt.kind.WebSocket() != tt.websocket {
			t.Errorf("%s: Secure %v WebSocket %v", tt.kind, tt.kind.Secure(), tt.kind.WebSocket())
		}
	}
	for l, want := range map[LogLevel]slog.Level{LevelDebug: slog.LevelDebug, LevelInfo: slog.LevelInfo, LevelWarn: slog.LevelWarn, LevelError: slog.LevelError} {
		if got := l.Slog(); got != want {
			t.Errorf("%s.Slog() = %v, want %v", l, got, want)
		}
	}
}
