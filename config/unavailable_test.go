package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestUnavailableNamesSchema checks that every entry of unavailable is a
// key, a table or an array of tables of the schema.
func TestUnavailableNamesSchema(t *testing.T) {
	var keys []string
	schemaKeys("", reflect.TypeFor[Config](), &keys)
	for path := range unavailable {
		found := false
		for _, key := range keys {
			if key == path || strings.HasPrefix(key, path+".") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("unavailable lists %q, which the schema lacks", path)
		}
	}
}

// TestUnavailable has a row per way to set a key of a missing feature: the
// errors, with the line or the variable. No feature is missing now, so the
// test gates [cluster] as if clustering were still to come.
func TestUnavailable(t *testing.T) {
	gate(t, "cluster")
	const na = "not available in this version of avocet"
	tests := []struct {
		name string
		doc  string
		env  []string
		want []string
	}{
		{"cluster", "[cluster]\nenabled = true\nseeds = [\"a:1\"]", nil, []string{
			"avocet.toml:2: cluster.enabled: " + na,
			"avocet.toml:3: cluster.seeds: " + na,
		}},
		{"reported alone", "[mqtt]\nmax_inflight = 0\n[cluster]\nsecret = \"short\"", nil, []string{"avocet.toml:4: cluster.secret: " + na}},

		{"env cluster", "", []string{"AVOCET_CLUSTER_ENABLED=true", "AVOCET_CLUSTER_SEEDS=a:7946,b:7946"}, []string{
			"env AVOCET_CLUSTER_ENABLED: cluster.enabled: " + na,
			"env AVOCET_CLUSTER_SEEDS: cluster.seeds: " + na,
		}},
		{"env secret", "", []string{"AVOCET_CLUSTER_SECRET=hunter2-secret"}, []string{"env AVOCET_CLUSTER_SECRET: cluster.secret: " + na}},
		{"file and env", "[cluster]\nsecret = \"p\"", []string{"AVOCET_CLUSTER_ENABLED=true"}, []string{
			"avocet.toml:2: cluster.secret: " + na,
			"env AVOCET_CLUSTER_ENABLED: cluster.enabled: " + na,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnv([]byte(tt.doc), "avocet.toml", tt.env)
			got := errorStrings(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if strings.Contains(strings.Join(got, "\n"), "hunter2") {
				t.Errorf("an error shows a secret: %q", got)
			}
		})
	}
}

// TestUnavailableDefaults holds files and variables that give keys of
// missing features their defaults, which is no error.
func TestUnavailableDefaults(t *testing.T) {
	gate(t, "cluster")
	for _, doc := range []string{
		"[admin]\naddress = \"127.0.0.1:8888\"\ntoken = \"\"",
		"[auth]\npassword_file = \"\"\nacl_file = \"\"",
		"bridge = []",
		"[cluster]\nenabled = false\nseeds = []\ndead_node_grace = \"30s\"",
		"[[listener]]\naddress = \":1\"\nproxy_protocol = false\nuse_identity_as_username = false",
	} {
		if _, err := Parse([]byte(doc), "avocet.toml"); err != nil {
			t.Errorf("Parse = %v\n%s", err, doc)
		}
	}
	if _, err := FromEnv([]string{"AVOCET_CLUSTER_SEEDS=", "AVOCET_AUTH_PASSWORD_FILE=", "AVOCET_LISTENERS_TCP_PROXY_PROTOCOL=false"}); err != nil {
		t.Errorf("FromEnv = %v", err)
	}
}

func TestValidateUnavailable(t *testing.T) {
	gate(t, "cluster")
	c := Default()
	c.Node.Name = "n1"
	c.Cluster.Enabled = true
	c.MQTT.MaxInflight = 0
	if err := c.Validate(); err == nil || err.Error() != "cluster.enabled: not available in this version of avocet" {
		t.Errorf("Validate = %v", err)
	}
	allFeatures(t)
	if err := c.Validate(); err == nil || err.Error() != "mqtt.max_inflight: must be between 1 and 65535, got 0" {
		t.Errorf("Validate with every feature = %v", err)
	}
}

// TestWriteLeavesOutUnavailable checks that printed configurations show no
// key of a missing feature, even one that is set, and parse back.
func TestWriteLeavesOutUnavailable(t *testing.T) {
	gate(t, "cluster")
	c := fullConfig()
	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for key := range locate(out) {
		if isUnavailable(stripIndexes(key)) {
			t.Errorf("output shows %s:\n%s", key, out)
		}
	}
	for _, s := range []string{"[cluster]"} {
		if strings.Contains(out, s) {
			t.Errorf("output holds %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "[auth]\nallow_anonymous = false\n") || !strings.Contains(out, "max_connections = 5000") {
		t.Errorf("output lacks available keys:\n%s", out)
	}

	want := fullConfig()
	want.Admin.Token = Masked // secrets are masked in the output
	want.Bridges[0].Password = Masked
	want.Cluster = Default().Cluster
	if back := mustParse(t, out); !reflect.DeepEqual(back, want) {
		t.Errorf("output parses to\n%+v\nwant\n%+v", back, want)
	}
	if !reflect.DeepEqual(c, fullConfig()) {
		t.Error("Write changed the configuration it printed")
	}

	// Without the gate every key is printed.
	allFeatures(t)
	buf.Reset()
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"[cluster]", "[[bridge]]"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("output with every feature lacks %q", s)
		}
	}
}

// TestClusterAvailable checks that [cluster] is no longer gated: its keys
// parse, from the file and the environment, and Write prints them.
func TestClusterAvailable(t *testing.T) {
	if isUnavailable("cluster") || isUnavailable("cluster.link_tls_cert") || isUnavailable("mqtt.shared_prefer_local") {
		t.Fatal("[cluster] is still listed in unavailable")
	}
	doc := "[node]\nname = \"n1\"\n[cluster]\nenabled = true\nseeds = [\"10.0.0.2:7946\"]\nlink_queue = 20\n"
	env := []string{"AVOCET_CLUSTER_REGISTER_TIMEOUT=5s", "AVOCET_CLUSTER_NETSPLIT_PUBLISH=true", "AVOCET_MQTT_SHARED_PREFER_LOCAL=false",
		"AVOCET_CLUSTER_LINK_TLS_CERT=n1.pem", "AVOCET_CLUSTER_LINK_TLS_KEY=n1.key", "AVOCET_CLUSTER_LINK_TLS_CA=ca.pem"}
	c, err := ParseEnv([]byte(doc), "avocet.toml", env)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Node.Name = "n1"
	want.Cluster.Enabled = true
	want.Cluster.Seeds = []string{"10.0.0.2:7946"}
	want.Cluster.LinkQueue = 20
	want.Cluster.RegisterTimeout = Duration(5 * time.Second)
	want.Cluster.NetsplitPublish = true
	want.Cluster.LinkTLSCert, want.Cluster.LinkTLSKey, want.Cluster.LinkTLSCA = "n1.pem", "n1.key", "ca.pem"
	want.MQTT.SharedPreferLocal = false
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ParseEnv =\n%+v\nwant\n%+v", c, want)
	}

	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"[cluster]", "enabled = true", "link_tls_ca = \"ca.pem\"", "register_timeout = \"5s\"", "shared_prefer_local = false"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("Write output lacks %q:\n%s", s, buf.String())
		}
	}
	if back := mustParse(t, buf.String()); !reflect.DeepEqual(back, want) {
		t.Errorf("Write output parses to\n%+v\nwant\n%+v", back, want)
	}

	_, err = ParseEnv(nil, "", []string{"AVOCET_CLUSTER_ENABLED=true"})
	if got := errorStrings(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "env AVOCET_CLUSTER_ENABLED: cluster.enabled: a clustered node needs [node] name") {
		t.Errorf("cluster with the default node name: errors = %q", got)
	}
}
