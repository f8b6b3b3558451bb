package config

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that no input panics Parse or locate, and that a
// configuration without secrets survives Write and Parse unchanged.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(exampleFile); err == nil {
		f.Add(data)
		f.Add(optional.ReplaceAll(data, []byte("$1")))
	}
	f.Add([]byte(fullFile))
	f.Add([]byte(bridge))
	f.Add([]byte("a = [{b = '''\n'''}, \"\"\"\\\n\"\"\"]\n[[x.y]]\n[x.z]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		locate(string(data))
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			return
		}
		if c.Admin.Token != "" || c.Cluster.Secret != "" {
			return
		}
		for _, b := range c.Bridges {
			if b.Password != "" {
				return
			}
		}
		var buf bytes.Buffer
		if err := c.Write(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(buf.Bytes(), "written.toml")
		if err != nil {
			t.Fatalf("written output does not parse: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("written output parses to\n%+v\nwant\n%+v", back, c)
		}
	})
}
