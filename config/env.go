package config

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// envPrefix begins the name of every variable that sets a key.
const envPrefix = "AVOCET_"

// envConfigFile is the one AVOCET_ variable that sets no key. It is kept
// for naming the configuration file, and the override functions skip it.
const envConfigFile = "AVOCET_CONFIG"

// envListeners is the table part of a listener variable's name,
// AVOCET_LISTENERS_<KIND>_<KEY>.
const envListeners = "LISTENERS"

// listenerKinds are the listener kinds in the order listeners that the
// environment adds are appended.
var listenerKinds = []ListenerKind{KindTCP, KindTLS, KindWS, KindWSS}

// envVar is the key one variable sets.
type envVar struct {
	table int          // index in Config of the table, or of the listener array
	field int          // index in the table's struct, or in Listener
	key   string       // the key path, "mqtt.max_inflight"; for a listener the key within one, "address"
	kind  ListenerKind // the listener kind of AVOCET_LISTENERS_<KIND>_<KEY>; empty for a table's key
}

// envVars maps every variable name that sets a key to that key: one per key
// of each table, and one per listener kind and key of [[listener]] but kind.
// The arrays of tables [[bridge]] and [[bridge.topic]] have no variables.
var envVars = envSchema()

func envSchema() map[string]envVar {
	vars := map[string]envVar{}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		table, ft := tomlName(ct.Field(i)), ct.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct:
			for j := range ft.NumField() {
				if key := tomlName(ft.Field(j)); key != "" && key != "-" && !isTableArray(ft.Field(j).Type) {
					vars[envName(table, key)] = envVar{table: i, field: j, key: joinKey(table, key)}
				}
			}
		case ft == reflect.TypeFor[[]Listener]():
			lt := ft.Elem()
			for _, kind := range listenerKinds {
				for j := range lt.NumField() {
					if key := tomlName(lt.Field(j)); key != "kind" {
						vars[envName(envListeners, string(kind), key)] = envVar{table: i, field: j, key: key, kind: kind}
					}
				}
			}
		}
	}
	return vars
}

// envName is the variable of the key the parts name: AVOCET_ and the parts
// in upper case, joined by "_".
func envName(parts ...string) string {
	return envPrefix + strings.ToUpper(strings.Join(parts, "_"))
}

// envFile is the File of an *Error about a variable.
func envFile(name string) string { return "env " + name }

// envSetter applies variables to a Config and remembers which key each set.
type envSetter struct {
	errs []*Error
	// from maps a key path to the variable that set it. A listener the
	// environment added is entered whole, as "listener[2]".
	from map[string]string
}

// variable names the variable that set key, or set a table or listener
// holding it.
func (s *envSetter) variable(key string) (string, bool) {
	for ; key != ""; key = parentKey(key) {
		if name, ok := s.from[key]; ok {
			return name, true
		}
	}
	return "", false
}

func (s *envSetter) fail(name, key, msg string) {
	s.errs = append(s.errs, &Error{File: envFile(name), Key: key, Msg: msg})
}

// apply sets the keys the AVOCET_ variables of environ name. Entries are
// "NAME=value", as os.Environ gives them; the first of two with one name
// counts, as for os.Getenv. Table keys come first, then listener addresses,
// which may add listeners, then the other listener keys, which apply to
// every listener of their kind, added ones included.
func (s *envSetter) apply(c *Config, environ []string) {
	s.from = map[string]string{}
	values := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || name == envConfigFile {
			continue
		}
		if _, dup := values[name]; !dup {
			values[name] = value
		}
	}
	var listenerVars []string
	for _, name := range slices.Sorted(maps.Keys(values)) {
		v, ok := envVars[name]
		switch {
		case !ok:
			s.fail(name, "", "unknown variable"+closest(name, maps.Keys(envVars), "variable names"))
		case v.kind == "":
			field := reflect.ValueOf(c).Elem().Field(v.table).Field(v.field)
			if val, ok := s.parse(name, v.key, field.Type(), values[name]); ok {
				field.Set(val)
				s.from[v.key] = name
			}
		case v.key != "address":
			listenerVars = append(listenerVars, name)
		}
	}
	for _, kind := range listenerKinds {
		name := envName(envListeners, string(kind), "address")
		if value, ok := values[name]; ok {
			s.listenerAddress(c, name, kind, value)
		}
	}
	for _, name := range listenerVars {
		s.listenerKey(c, name, envVars[name], values[name])
	}
}

// listenerAddress sets the address of every listener of kind, or adds a
// listener of kind at the address if there is none.
func (s *envSetter) listenerAddress(c *Config, name string, kind ListenerKind, addr string) {
	found := false
	for i := range c.Listeners {
		if c.Listeners[i].Kind == kind {
			c.Listeners[i].Address = addr
			s.from[indexKey("listener", i)+".address"] = name
			found = true
		}
	}
	if !found {
		l := defaultListener()
		l.Kind, l.Address = kind, addr
		c.Listeners = append(c.Listeners, l)
		s.from[indexKey("listener", len(c.Listeners)-1)] = name
	}
}

// listenerKey sets a key other than the address in every listener of v's kind.
func (s *envSetter) listenerKey(c *Config, name string, v envVar, value string) {
	var targets []int
	for i := range c.Listeners {
		if c.Listeners[i].Kind == v.kind {
			targets = append(targets, i)
		}
	}
	if len(targets) == 0 {
		s.fail(name, "", "there is no "+string(v.kind)+" listener to set "+v.key+" of; "+
			envName(envListeners, string(v.kind), "address")+" adds one")
		return
	}
	key := func(i int) string { return indexKey("listener", i) + "." + v.key }
	val, ok := s.parse(name, key(targets[0]), reflect.TypeFor[Listener]().Field(v.field).Type, value)
	if !ok {
		return
	}
	for _, i := range targets {
		reflect.ValueOf(&c.Listeners[i]).Elem().Field(v.field).Set(val)
		s.from[key(i)] = name
	}
}

// parse reads a variable's value as the TOML decoder reads a value of type
// t, and reports whether it could; errors name the variable and key.
func (s *envSetter) parse(name, key string, t reflect.Type, value string) (reflect.Value, bool) {
	out := reflect.New(t).Elem()
	if !utf8.ValidString(value) {
		// A TOML file is UTF-8, and so must a value be that stands for one of its values.
		s.fail(name, key, "must be valid UTF-8")
		return out, false
	}
	d := &decoder{}
	d.decode(key, envValue(t, value), out)
	for _, e := range d.errs {
		e.File = envFile(name)
	}
	s.errs = append(s.errs, d.errs...)
	return out, len(d.errs) == 0
}

// envValue is the TOML value a variable's text stands for, given the type
// of the field it sets: for a list, the comma-separated elements as strings
// (none for empty text); for an integer, a size or a duration, an integer
// if the text is a decimal one; for a boolean, true or false if the text is
// one of those words. Spaces around a number, a word or a list element do
// not count. Anything else is the text as a string, which the decoder then
// takes or refuses as it would in a file: "10s" for a duration, "32MiB" for
// a size, or "must be an integer, got string ..." for a count.
func envValue(t reflect.Type, text string) any {
	trimmed := strings.TrimSpace(text)
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			break
		}
		list := []any{}
		if trimmed == "" {
			return list
		}
		for e := range strings.SplitSeq(text, ",") {
			list = append(list, strings.TrimSpace(e))
		}
		return list
	case reflect.Bool:
		switch trimmed {
		case "true":
			return true
		case "false":
			return false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n, err := strconv.ParseInt(trimmed, 10, 64); err == nil {
			return n
		}
	}
	return text
}
