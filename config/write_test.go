package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestWriteDefaultRoundTrips(t *testing.T) {
	var buf bytes.Buffer
	if err := Default().Write(&buf); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, buf.String())
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Write output parses to\n%+v\nwant the defaults\n%+v\noutput:\n%s", c, Default(), buf.String())
	}
	if strings.Contains(buf.String(), `= "`+Masked) {
		t.Errorf("defaults have no secrets to mask:\n%s", buf.String())
	}
}

func TestWriteMasksSecrets(t *testing.T) {
	allFeatures(t)
	c := fullConfig()
	secrets := map[string]string{
		"token":    c.Admin.Token,
		"secret":   c.Cluster.Secret,
		"password": c.Bridges[0].Password,
	}
	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for key, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("output shows %s %q:\n%s", key, secret, out)
		}
		if !strings.Contains(out, key+` = "`+Masked+`"`) {
			t.Errorf("output lacks the masked %s:\n%s", key, out)
		}
	}
	if c.Admin.Token != "admin-token-value" || c.Bridges[0].Password != "bridge-password-value" {
		t.Error("Write changed the configuration it printed")
	}
	// The second bridge has no password, and an empty one stays empty.
	if n := strings.Count(out, `password = "`+Masked+`"`); n != 1 {
		t.Errorf("%d masked passwords, want 1", n)
	}

	// Put the secrets back and the output parses to the configuration.
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		key, _, ok := strings.Cut(line, " = \""+Masked+"\"")
		if ok {
			lines[i] = key + ` = "` + secrets[key] + `"`
		}
	}
	back := mustParse(t, strings.Join(lines, "\n"))
	if !reflect.DeepEqual(back, c) {
		t.Errorf("output with secrets restored parses to\n%+v\nwant\n%+v", back, c)
	}

	// As printed, the masked cluster secret is not a valid key.
	if _, err := Parse([]byte(out), "printed.toml"); err == nil || !strings.Contains(err.Error(), "cluster.secret") {
		t.Errorf("Parse of masked output = %v, want a cluster.secret error", err)
	}
}
