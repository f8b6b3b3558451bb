package config

import (
	"testing"
)

func TestLocate(t *testing.T) {
	doc := "\ufeff# heading\n" + // 1
		"top = 1\n" + // 2
		"[mqtt]\n" + // 3
		"max_inflight = 5 # trailing [x] = 1\n" + // 4
		"  \"quoted key\" = 'v'\n" + // 5
		"a.b.c = true\n" + // 6
		"[[listener]]\n" + // 7
		"address = \"\"\"\n" + // 8
		"x = 1\n" + // 9
		"\"\"\"\"\n" + // 10
		"[[listener]]\r\n" + // 11
		"kind = 'tls'\r\n" + // 12
		"cert_file = '''\n" + // 13
		"[not.a.table]\n" + // 14
		"'''\n" + // 15
		"key_file = \"a\\\"b\" # \"\n" + // 16
		"[[bridge]]\n" + // 17
		"name = \"b\"\n" + // 18
		"[[bridge.topic]]\n" + // 19
		"pattern = \"x\"\n" + // 20
		"[[bridge.topic]]\n" + // 21
		"pattern = \"y\"\n" + // 22
		"[bridge.extra]\n" + // 23
		"k = 1\n" + // 24
		"[[bridge]]\n" + // 25
		"[[bridge.topic]]\n" + // 26
		"qos = 1\n" + // 27
		"[cluster]\n" + // 28
		"seeds = [\n" + // 29
		"  \"a:1\", # one\n" + // 30
		"  [1, 2],\n" + // 31
		"  { x = 1,\n" + // 32
		"    y = [3] },\n" + // 33
		"]\n" + // 34
		"inline = { p = { q = 1 }, r = 1979-05-27 07:32:00Z, s = \"}\" }\n" + // 35
		"after = 1\n" // 36
	want := map[string]int{
		"top":                        2,
		"mqtt":                       3,
		"mqtt.max_inflight":          4,
		`mqtt."quoted key"`:          5,
		"mqtt.a":                     6,
		"mqtt.a.b.c":                 6,
		"listener":                   7,
		"listener[0]":                7,
		"listener[0].address":        8,
		"listener[1]":                11,
		"listener[1].kind":           12,
		"listener[1].cert_file":      13,
		"listener[1].key_file":       16,
		"bridge[0]":                  17,
		"bridge[0].name":             18,
		"bridge[0].topic":            19,
		"bridge[0].topic[0]":         19,
		"bridge[0].topic[0].pattern": 20,
		"bridge[0].topic[1].pattern": 22,
		"bridge[0].extra.k":          24,
		"bridge[1]":                  25,
		"bridge[1].topic[0]":         26,
		"bridge[1].topic[0].qos":     27,
		"cluster.seeds":              29,
		"cluster.seeds[0]":           30,
		"cluster.seeds[1]":           31,
		"cluster.seeds[1][1]":        31,
		"cluster.seeds[2]":           32,
		"cluster.seeds[2].x":         32,
		"cluster.seeds[2].y":         33,
		"cluster.seeds[2].y[0]":      33,
		"cluster.inline":             35,
		"cluster.inline.p.q":         35,
		"cluster.inline.s":           35,
		"cluster.after":              36,
	}
	pos := locate(doc)
	for key, line := range want {
		if got := pos[key]; got != line {
			t.Errorf("line of %s = %d, want %d", key, got, line)
		}
	}
	for _, key := range []string{"x", "not", "not.a.table", "listener[0].x", "trailing"} {
		if _, ok := pos[key]; ok {
			t.Errorf("%s is inside a string or comment but was located", key)
		}
	}
	// Keys the file lacks fall back to their nearest ancestor.
	for key, line := range map[string]int{
		"listener[1].ca_file":        11,
		"bridge[1].topic[0].pattern": 26,
		"bridge[1].name":             25,
		"mqtt.max_keepalive":         3,
		"node.name":                  0,
	} {
		if got := pos.line(key); got != line {
			t.Errorf("line(%s) = %d, want %d", key, got, line)
		}
	}
}

func TestKeyPaths(t *testing.T) {
	if got := joinKey(joinKey("", "mqtt"), "a.b"); got != `mqtt."a.b"` {
		t.Errorf("joinKey = %s", got)
	}
	for path, want := range map[string]string{
		"a.b":            "a",
		"a":              "",
		"a[1]":           "a",
		"a[1].b":         "a[1]",
		`a."b.c"`:        "a",
		`"b.c"`:          "",
		`a."x\"y.z"`:     "a",
		"bridge[0].t[2]": "bridge[0].t",
	} {
		if got := parentKey(path); got != want {
			t.Errorf("parentKey(%s) = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"bridge[0].topic[12].pattern": "bridge.topic.pattern",
		`a."[x]"[3]`:                  `a."[x]"`,
		"mqtt.max_inflight":           "mqtt.max_inflight",
	} {
		if got := stripIndexes(path); got != want {
			t.Errorf("stripIndexes(%s) = %q, want %q", path, got, want)
		}
	}
}
