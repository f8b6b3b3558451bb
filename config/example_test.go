package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const exampleFile = "../avocet.example.toml"

// optional turns the example's optional entries ("#key = value",
// "#[[bridge]]") into live ones; prose comments begin "# " and stay.
var optional = regexp.MustCompile(`(?m)^#([^\s#])`)

func TestExampleIsDefault(t *testing.T) {
	c, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(%s) =\n%+v\nwant the defaults\n%+v", exampleFile, c, Default())
	}
}

func TestExampleShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	live := optional.ReplaceAllString(string(data), "$1")
	c, err := Parse([]byte(live), "example with optional entries")
	if err != nil {
		t.Fatalf("the optional entries do not parse: %v", err)
	}
	if len(c.Listeners) != 4 {
		t.Errorf("optional entries give %d listeners, want 4", len(c.Listeners))
	}

	shown := map[string]bool{}
	for key := range locate(live) {
		path := stripIndexes(key)
		shown[path] = true
		if isUnavailable(path) {
			t.Errorf("the example shows %s, which is not available", key)
		}
	}
	var keys []string
	schemaKeys("", reflect.TypeFor[Config](), &keys)
	if len(keys) < 70 {
		t.Fatalf("schema walk found only %d keys", len(keys))
	}
	for _, key := range keys {
		if !shown[key] && !isUnavailable(key) {
			t.Errorf("the example does not show %s", key)
		}
	}

	// Every key line has a comment of its own.
	keyLine := regexp.MustCompile(`^\s*[a-z_]+\s*=`)
	for i, line := range strings.Split(live, "\n") {
		if keyLine.MatchString(line) && !strings.Contains(line, " # ") {
			t.Errorf("line %d has no comment: %s", i+1, line)
		}
	}
}

// schemaKeys lists the key path of every value in the schema, arrays of
// tables without indexes.
func schemaKeys(prefix string, t reflect.Type, keys *[]string) {
	for name, i := range tomlFields(t) {
		ft := t.Field(i).Type
		key := joinKey(prefix, name)
		switch {
		case ft.Kind() == reflect.Struct:
			schemaKeys(key, ft, keys)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			schemaKeys(key, ft.Elem(), keys)
		default:
			*keys = append(*keys, key)
		}
	}
	slices.Sort(*keys)
}
