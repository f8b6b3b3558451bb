package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// errorStrings returns the Error() text of every *Error in err.
func errorStrings(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range errorsOf(t, err) {
		out = append(out, e.Error())
	}
	return out
}

// TestEnvOverrides has a row per kind of value: the variables, and how the
// defaults change.
func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		features bool // lift the gate of unavailable, for keys of features to come
		want     func(c *Config)
	}{
		{"int", []string{"AVOCET_MQTT_MAX_INFLIGHT=200"}, false, func(c *Config) { c.MQTT.MaxInflight = 200 }},
		{"int with spaces and sign", []string{"AVOCET_MQTT_MAX_INFLIGHT= +20 "}, false, func(c *Config) { c.MQTT.MaxInflight = 20 }},
		{"bool false", []string{"AVOCET_AUTH_ALLOW_ANONYMOUS=false"}, false, func(c *Config) { c.Auth.AllowAnonymous = false }},
		{"bool true", []string{"AVOCET_MQTT_RETAIN_AVAILABLE=false", "AVOCET_MQTT_ALLOW_EMPTY_CLIENT_ID=true"}, false,
			func(c *Config) { c.MQTT.RetainAvailable = false }},
		{"duration string", []string{"AVOCET_MQTT_CONNECT_TIMEOUT=1m30s"}, false,
			func(c *Config) { c.MQTT.ConnectTimeout = Duration(90 * time.Second) }},
		{"duration seconds", []string{"AVOCET_MQTT_SYS_INTERVAL=30"}, false,
			func(c *Config) { c.MQTT.SysInterval = Duration(30 * time.Second) }},
		{"size with unit", []string{"AVOCET_STORE_SHRINK_MIN_SIZE=64MiB"}, false, func(c *Config) { c.Store.ShrinkMinSize = 64 * MiB }},
		{"size in bytes", []string{"AVOCET_MQTT_MAX_RETAINED_BYTES=4096"}, false, func(c *Config) { c.MQTT.MaxRetainedBytes = 4 * KiB }},
		{"enum fsync", []string{"AVOCET_STORE_FSYNC=always"}, false, func(c *Config) { c.Store.Fsync = FsyncAlways }},
		{"enum log", []string{"AVOCET_LOG_LEVEL=debug", "AVOCET_LOG_FORMAT=json"}, false,
			func(c *Config) { c.Log = Log{Level: LevelDebug, Format: FormatJSON} }},
		{"string", []string{"AVOCET_STORE_DIR=/var/lib/avocet"}, false, func(c *Config) { c.Store.Dir = "/var/lib/avocet" }},
		{"string as it stands", []string{"AVOCET_NODE_NAME= edge=1, b "}, false, func(c *Config) { c.Node.Name = " edge=1, b " }},
		{"list", []string{"AVOCET_CLUSTER_SEEDS=a:7946, b:7946"}, true,
			func(c *Config) { c.Cluster.Seeds = []string{"a:7946", "b:7946"} }},
		{"list of one", []string{"AVOCET_CLUSTER_SEEDS=a:7946"}, true, func(c *Config) { c.Cluster.Seeds = []string{"a:7946"} }},
		{"empty list is the default", []string{"AVOCET_CLUSTER_SEEDS="}, false, func(c *Config) {}},
		{"default of an unavailable key", []string{"AVOCET_ADMIN_ADDRESS=127.0.0.1:8888", "AVOCET_CLUSTER_ENABLED=false"}, false,
			func(c *Config) {}},
		{"first of two wins, as for os.Getenv", []string{"AVOCET_MQTT_MAX_INFLIGHT=7", "AVOCET_MQTT_MAX_INFLIGHT=8"}, false,
			func(c *Config) { c.MQTT.MaxInflight = 7 }},
		{"AVOCET_CONFIG is not an override", []string{"AVOCET_CONFIG=/etc/avocet.toml"}, false, func(c *Config) {}},
		{"other variables are skipped", []string{
			"PATH=/usr/bin", "HOME=/root", "avocet_mqtt_max_inflight=0", "MY_AVOCET_MQTT_MAX_INFLIGHT=0",
			"AVOCET", "AVOCETMQTT_MAX_INFLIGHT=0", "=C:=C:\\", "AVOCET_MQTT_MAX_INFLIGHT",
		}, false, func(c *Config) {}},
		{"node name reaches derived defaults", []string{"AVOCET_NODE_NAME=n2", "AVOCET_LISTENERS_TCP_ADDRESS=:1884"}, false,
			func(c *Config) {
				c.Node.Name = "n2"
				c.Listeners[0].Address, c.Listeners[0].Name = ":1884", "tcp://:1884"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.features {
				allFeatures(t)
			}
			want := Default()
			tt.want(want)
			got, err := FromEnv(tt.env)
			if err != nil {
				t.Fatalf("FromEnv(%q) = %v", tt.env, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("FromEnv(%q) =\n%+v\nwant\n%+v", tt.env, got, want)
			}
			// The variables override a file's values, and leave the rest.
			got, err = ParseEnv([]byte("[mqtt]\nmax_inflight = 3\nmax_keepalive = 60\n"), "avocet.toml", tt.env)
			if err != nil {
				t.Fatalf("ParseEnv(%q) = %v", tt.env, err)
			}
			if want.MQTT.MaxInflight == Default().MQTT.MaxInflight {
				want.MQTT.MaxInflight = 3
			}
			want.MQTT.MaxKeepalive = 60
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseEnv(%q) =\n%+v\nwant\n%+v", tt.env, got, want)
			}
		})
	}
}

func TestEnvListeners(t *testing.T) {
	tcp := func(addr string) Listener { return Listener{Name: "tcp://" + addr, Kind: KindTCP, Address: addr} }
	ws := func(addr, path string) Listener {
		return Listener{Name: "ws://" + addr, Kind: KindWS, Address: addr, Path: path}
	}
	tests := []struct {
		name string
		doc  string // no file when empty
		env  []string
		want []Listener
	}{
		{"address of a default listener", "", []string{"AVOCET_LISTENERS_TCP_ADDRESS=0.0.0.0:1884"},
			[]Listener{tcp("0.0.0.0:1884"), ws("0.0.0.0:8080", "/mqtt")}},
		{"path", "", []string{"AVOCET_LISTENERS_WS_PATH=/ws"},
			[]Listener{tcp("0.0.0.0:1883"), ws("0.0.0.0:8080", "/ws")}},
		{"every listener of the kind", "[[listener]]\naddress = \"127.0.0.1:1883\"\n[[listener]]\nkind = \"ws\"\naddress = \":80\"\n[[listener]]\naddress = \"127.0.0.2:1883\"\n",
			[]string{"AVOCET_LISTENERS_TCP_MAX_CONNECTIONS=10"},
			[]Listener{
				{Name: "tcp://127.0.0.1:1883", Kind: KindTCP, Address: "127.0.0.1:1883", MaxConnections: 10},
				ws(":80", "/mqtt"),
				{Name: "tcp://127.0.0.2:1883", Kind: KindTCP, Address: "127.0.0.2:1883", MaxConnections: 10},
			}},
		{"a name the file gives stays", "[[listener]]\nname = \"plain\"\naddress = \":1883\"\n", []string{"AVOCET_LISTENERS_TCP_ADDRESS=:1884"},
			[]Listener{{Name: "plain", Kind: KindTCP, Address: ":1884"}}},
		{"name", "", []string{"AVOCET_LISTENERS_WS_NAME=web"},
			[]Listener{tcp("0.0.0.0:1883"), {Name: "web", Kind: KindWS, Address: "0.0.0.0:8080", Path: "/mqtt"}}},
		{"address adds a listener", "", []string{
			"AVOCET_LISTENERS_TLS_KEY_FILE=server.key", "AVOCET_LISTENERS_TLS_ADDRESS=:8883", "AVOCET_LISTENERS_TLS_CERT_FILE=server.pem",
		}, []Listener{
			tcp("0.0.0.0:1883"), ws("0.0.0.0:8080", "/mqtt"),
			{Name: "tls://:8883", Kind: KindTLS, Address: ":8883", CertFile: "server.pem", KeyFile: "server.key"},
		}},
		{"added in kind order, after the file's", "[[listener]]\naddress = \":1883\"\n", []string{
			"AVOCET_LISTENERS_WSS_ADDRESS=:8443", "AVOCET_LISTENERS_WS_ADDRESS=:8080",
			"AVOCET_LISTENERS_WSS_CERT_FILE=c", "AVOCET_LISTENERS_WSS_KEY_FILE=k",
		}, []Listener{
			tcp(":1883"), ws(":8080", "/mqtt"),
			{Name: "wss://:8443", Kind: KindWSS, Address: ":8443", Path: "/mqtt", CertFile: "c", KeyFile: "k"},
		}},
		{"added to an empty list", "listener = []\n", []string{"AVOCET_LISTENERS_TCP_ADDRESS=:1883"}, []Listener{tcp(":1883")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Config
			var err error
			if tt.doc == "" {
				c, err = FromEnv(tt.env)
			} else {
				c, err = ParseEnv([]byte(tt.doc), "avocet.toml", tt.env)
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(c.Listeners, tt.want) {
				t.Errorf("listeners =\n%+v\nwant\n%+v", c.Listeners, tt.want)
			}
		})
	}
}

// TestEnvErrors has a row per kind of problem with a variable: the errors,
// as printed, in order. A problem about a key a variable set names the
// variable; one about a key of the file names its line.
func TestEnvErrors(t *testing.T) {
	const twoTCP = "[[listener]]\naddress = \"127.0.0.1:1883\"\n[[listener]]\naddress = \"127.0.0.2:1883\"\n"
	tests := []struct {
		name     string
		doc      string
		env      []string
		features bool
		want     []string
	}{
		{"unknown key", "", []string{"AVOCET_MQTT_MAX_INFLIGT=5"}, false,
			[]string{`env AVOCET_MQTT_MAX_INFLIGT: unknown variable (did you mean "AVOCET_MQTT_MAX_INFLIGHT"?)`}},
		{"unknown table", "", []string{"AVOCET_MQT_MAX_INFLIGHT=5"}, false,
			[]string{`env AVOCET_MQT_MAX_INFLIGHT: unknown variable (did you mean "AVOCET_MQTT_MAX_INFLIGHT"?)`}},
		{"listener in the singular", "", []string{"AVOCET_LISTENER_TCP_ADDRESS=:1"}, false,
			[]string{`env AVOCET_LISTENER_TCP_ADDRESS: unknown variable (did you mean "AVOCET_LISTENERS_TCP_ADDRESS"?)`}},
		{"case differs", "", []string{"AVOCET_mqtt_max_inflight=5"}, false,
			[]string{`env AVOCET_mqtt_max_inflight: unknown variable (variable names are case-sensitive: did you mean "AVOCET_MQTT_MAX_INFLIGHT"?)`}},
		{"nothing close", "", []string{"AVOCET_SOMETHING_ELSE=1"}, false, []string{"env AVOCET_SOMETHING_ELSE: unknown variable"}},
		{"listener kind", "", []string{"AVOCET_LISTENERS_TCP_KIND=ws"}, false, []string{"env AVOCET_LISTENERS_TCP_KIND: unknown variable"}},
		{"bridge", "", []string{"AVOCET_BRIDGE_QUEUE_SIZE=5"}, false, []string{"env AVOCET_BRIDGE_QUEUE_SIZE: unknown variable"}},
		{"several, by name", "", []string{"AVOCET_Z=1", "AVOCET_A=1"}, false,
			[]string{"env AVOCET_A: unknown variable", "env AVOCET_Z: unknown variable"}},

		{"bad int", "", []string{"AVOCET_MQTT_MAX_INFLIGHT=many"}, false,
			[]string{`env AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be an integer, got string "many"`}},
		{"int with underscores", "", []string{"AVOCET_MQTT_MAX_INFLIGHT=1_000"}, false,
			[]string{`env AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be an integer, got string "1_000"`}},
		{"not UTF-8", "", []string{"AVOCET_NODE_NAME=n\xb1"}, false, []string{"env AVOCET_NODE_NAME: node.name: must be valid UTF-8"}},
		{"bad bool", "", []string{"AVOCET_AUTH_ALLOW_ANONYMOUS=yes"}, false,
			[]string{`env AVOCET_AUTH_ALLOW_ANONYMOUS: auth.allow_anonymous: must be true or false, got string "yes"`}},
		{"bool in capitals", "", []string{"AVOCET_AUTH_ALLOW_ANONYMOUS=FALSE"}, false,
			[]string{`env AVOCET_AUTH_ALLOW_ANONYMOUS: auth.allow_anonymous: must be true or false, got string "FALSE"`}},
		{"bad duration", "", []string{"AVOCET_MQTT_CONNECT_TIMEOUT=soon"}, false,
			[]string{`env AVOCET_MQTT_CONNECT_TIMEOUT: mqtt.connect_timeout: must be a duration such as "10s" or "1m30s", got "soon"`}},
		{"bad size", "", []string{"AVOCET_STORE_SHRINK_MIN_SIZE=32 parsecs"}, false,
			[]string{`env AVOCET_STORE_SHRINK_MIN_SIZE: store.shrink_min_size: unknown unit in size "32 parsecs"; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB`}},
		{"negative size", "", []string{"AVOCET_STORE_SHRINK_MIN_SIZE=-1"}, false,
			[]string{`env AVOCET_STORE_SHRINK_MIN_SIZE: store.shrink_min_size: must not be negative, got -1`}},
		{"bad listener value, once for all listeners", twoTCP, []string{"AVOCET_LISTENERS_TCP_MAX_CONNECTIONS=lots"}, false,
			[]string{`env AVOCET_LISTENERS_TCP_MAX_CONNECTIONS: listener[0].max_connections: must be an integer, got string "lots"`}},
		{"listener key without a listener", "", []string{"AVOCET_LISTENERS_WSS_PATH=/x"}, false,
			[]string{"env AVOCET_LISTENERS_WSS_PATH: there is no wss listener to set path of; AVOCET_LISTENERS_WSS_ADDRESS adds one"}},

		{"range", "", []string{"AVOCET_MQTT_MAX_INFLIGHT=0"}, false,
			[]string{"env AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be between 1 and 65535, got 0"}},
		{"enum", "", []string{"AVOCET_LOG_LEVEL=verbose"}, false,
			[]string{`env AVOCET_LOG_LEVEL: log.level: must be one of "debug", "info", "warn", "error", got "verbose"`}},
		{"enum case", "", []string{"AVOCET_STORE_FSYNC=ALWAYS"}, false,
			[]string{`env AVOCET_STORE_FSYNC: store.fsync: must be one of "always", "everysec", "never", got "ALWAYS"`}},
		{"empty string", "", []string{"AVOCET_STORE_DIR="}, false, []string{"env AVOCET_STORE_DIR: store.dir: must not be empty"}},
		{"list element", "", []string{"AVOCET_CLUSTER_SEEDS=a:7946,7946"}, true,
			[]string{`env AVOCET_CLUSTER_SEEDS: cluster.seeds[1]: must be host:port, got "7946"`}},
		{"listener rule", "", []string{"AVOCET_LISTENERS_TCP_PATH=/x"}, false,
			[]string{`env AVOCET_LISTENERS_TCP_PATH: listener[0].path: applies only to ws and wss listeners, not "tcp"`}},
		{"listener rule in every listener", twoTCP, []string{"AVOCET_LISTENERS_TCP_NAME=same"}, false,
			[]string{`env AVOCET_LISTENERS_TCP_NAME: listener[1].name: "same" is already the name of listener[0]`}},
		{"an added listener", "", []string{"AVOCET_LISTENERS_TLS_ADDRESS=:8883", "AVOCET_LISTENERS_TLS_CERT_FILE=c"}, false,
			[]string{"env AVOCET_LISTENERS_TLS_ADDRESS: listener[2].key_file: a tls listener needs key_file"}},
		{"an address that conflicts", "", []string{"AVOCET_LISTENERS_WS_ADDRESS=0.0.0.0:1883"}, false,
			[]string{`env AVOCET_LISTENERS_WS_ADDRESS: listener[1].address: "0.0.0.0:1883" conflicts with listener[0] address "0.0.0.0:1883"`}},

		{"file lines first, then variables", "[mqtt]\nreceive_maximum = 0\n", []string{"AVOCET_MQTT_MAX_INFLIGHT=0"}, false, []string{
			"avocet.toml:2: mqtt.receive_maximum: must be between 1 and 65535, got 0",
			"env AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be between 1 and 65535, got 0",
		}},
		{"a variable mends the file's value", "[mqtt]\nmax_inflight = 0\nreceive_maximum = 0\n", []string{"AVOCET_MQTT_MAX_INFLIGHT=5"}, false,
			[]string{"avocet.toml:3: mqtt.receive_maximum: must be between 1 and 65535, got 0"}},
		{"the file's type errors with the variables'", "[mqtt]\nmax_inflight = \"x\"\n", []string{"AVOCET_MQTT_MAX_INFLIGHT=5", "AVOCET_BOGUS=1"}, false, []string{
			`avocet.toml:2: mqtt.max_inflight: must be an integer, got string "x"`,
			"env AVOCET_BOGUS: unknown variable",
		}},
		{"a key of a file listener the variable did not set", "[[listener]]\nkind = \"tls\"\naddress = \":8883\"\nkey_file = \"k\"\n",
			[]string{"AVOCET_LISTENERS_TLS_ADDRESS=:8884"}, false,
			[]string{"avocet.toml:1: listener[0].cert_file: a tls listener needs cert_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.features {
				allFeatures(t)
			}
			var err error
			if tt.doc == "" {
				_, err = FromEnv(tt.env)
			} else {
				_, err = ParseEnv([]byte(tt.doc), "avocet.toml", tt.env)
			}
			if got := errorStrings(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, e := range errorsOf(t, err) {
				if strings.HasPrefix(e.File, "env ") && e.Line != 0 {
					t.Errorf("%v has line %d, want 0", e, e.Line)
				}
			}
		})
	}
}

// TestEnvErrorFields checks the fields of an error about a variable, which
// callers may take apart with errors.As.
func TestEnvErrorFields(t *testing.T) {
	_, err := ParseEnv([]byte("[mqtt]\nmax_inflight = 5\n"), "avocet.toml", []string{"AVOCET_MQTT_MAX_INFLIGHT=0"})
	errs := errorsOf(t, err)
	want := &Error{File: "env AVOCET_MQTT_MAX_INFLIGHT", Key: "mqtt.max_inflight", Msg: "must be between 1 and 65535, got 0"}
	if len(errs) != 1 || !reflect.DeepEqual(errs[0], want) {
		t.Errorf("errors = %#v, want %#v", errs, want)
	}
}

// TestEnvPure checks that Load and Parse do not read the process's
// environment, and that FromEnv without variables is the defaults.
func TestEnvPure(t *testing.T) {
	t.Setenv("AVOCET_MQTT_MAX_INFLIGHT", "0")
	t.Setenv("AVOCET_BOGUS", "1")
	path := filepath.Join(t.TempDir(), "avocet.toml")
	if err := os.WriteFile(path, []byte("[mqtt]\nmax_keepalive = 60\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.MQTT.MaxInflight != 100 || c.MQTT.MaxKeepalive != 60 {
		t.Errorf("Load = %+v, %v; want the file without the environment", c, err)
	}
	if c, err := Parse(nil, "empty.toml"); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse = %v; want the defaults", err)
	}
	if c, err := FromEnv(nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("FromEnv(nil) = %v; want the defaults", err)
	}

	c, err = LoadEnv(path, []string{"AVOCET_MQTT_MAX_INFLIGHT=9"})
	if err != nil || c.MQTT.MaxInflight != 9 || c.MQTT.MaxKeepalive != 60 {
		t.Errorf("LoadEnv = %+v, %v; want the file and the variable", c, err)
	}
	if _, err := LoadEnv(filepath.Join(t.TempDir(), "missing.toml"), nil); err == nil {
		t.Error("LoadEnv of a missing file succeeded")
	}
	_, err = LoadEnv(path, os.Environ())
	if got, want := errorStrings(t, err), []string{"env AVOCET_BOGUS: unknown variable"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LoadEnv(os.Environ()) = %q, want %q", got, want)
	}
}

// TestEnvNames checks the variable names against the schema: one per key of
// each table, one per listener kind and key but kind, none for bridges and webhooks.
func TestEnvNames(t *testing.T) {
	var keys []string
	schemaKeys("", reflect.TypeFor[Config](), &keys)
	want := 0
	for _, key := range keys {
		switch {
		case strings.HasPrefix(key, "bridge."), strings.HasPrefix(key, "webhook."):
		case strings.HasPrefix(key, "listener."):
			if key != "listener.kind" {
				want += len(listenerKinds)
			}
		default:
			want++
			name := envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			if v, ok := envVars[name]; !ok || v.key != key {
				t.Errorf("%s: no variable %s", key, name)
			}
		}
	}
	if len(envVars) != want {
		t.Errorf("%d variables, want %d", len(envVars), want)
	}
	for _, name := range []string{
		"AVOCET_MQTT_MAX_INFLIGHT", "AVOCET_STORE_DIR", "AVOCET_STORE_FSYNC", "AVOCET_LOG_LEVEL", "AVOCET_LOG_FORMAT",
		"AVOCET_NODE_NAME", "AVOCET_AUTH_ALLOW_ANONYMOUS", "AVOCET_ADMIN_ADDRESS", "AVOCET_CLUSTER_SEEDS",
		"AVOCET_LISTENERS_TCP_ADDRESS", "AVOCET_LISTENERS_WS_PATH", "AVOCET_LISTENERS_TLS_CERT_FILE", "AVOCET_LISTENERS_WSS_KEY_FILE",
	} {
		if _, ok := envVars[name]; !ok {
			t.Errorf("no variable %s", name)
		}
	}
	if _, ok := envVars[envConfigFile]; ok {
		t.Errorf("%s sets a key", envConfigFile)
	}
}

// FuzzEnv checks that no variable panics FromEnv, and that a configuration
// it accepts survives Write and Parse unchanged.
func FuzzEnv(f *testing.F) {
	for name := range envVars {
		f.Add(name, "1")
	}
	f.Add("AVOCET_CLUSTER_SEEDS", "a:1,,b:2")
	f.Add("AVOCET_LISTENERS_TLS_ADDRESS", ":8883")
	f.Add("AVOCET_MQTT_CONNECT_TIMEOUT", " 10s ")
	f.Fuzz(func(t *testing.T, name, value string) {
		c, err := FromEnv([]string{name + "=" + value})
		if err != nil {
			return
		}
		var buf strings.Builder
		if err := c.Write(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Parse([]byte(buf.String()), "written.toml")
		if err != nil {
			t.Fatalf("written output does not parse: %v\n%s", err, buf.String())
		}
		if back.Admin.Token == Masked { // secrets are printed masked
			back.Admin.Token = c.Admin.Token
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("written output parses to\n%+v\nwant\n%+v", back, c)
		}
	})
}
