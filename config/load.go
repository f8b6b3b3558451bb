package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is one problem with a configuration: where it is and what is wrong.
type Error struct {
	// File is the file name given to Load or Parse, or "env NAME" when the
	// key's value came from the environment variable NAME; empty from
	// Validate, and for a default that FromEnv reports.
	File string
	Line int    // 1-based; 0 when unknown, as for a default or a key the file lacks
	Key  string // the key path, as in "mqtt.max_inflight" or "listener[1].cert_file"; empty for a syntax error
	Msg  string
}

// Error formats the problem as "file:line: key: message", leaving out what is
// unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the file at path and returns its configuration; see Parse.
// It does not read the environment; LoadEnv does.
func Load(path string) (*Config, error) {
	return LoadEnv(path, nil)
}

// LoadEnv reads the file at path and returns its configuration with the
// environment's overrides; see ParseEnv.
func LoadEnv(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseEnv(data, path, environ)
}

// Parse reads a configuration from TOML data; name is the file name errors
// give. Keys the data leaves out keep their defaults. A [[listener]] array in
// the data replaces the default listeners, and each entry of [[listener]],
// [[bridge]] and [[bridge.topic]] starts from its own defaults. Derived
// defaults are then filled in (listener names, ws paths, bridge client
// identifiers; see the fields' comments) and the result is validated.
// Parse does not read the environment; ParseEnv does.
//
// On failure the error is a single *Error or, when there are several
// problems, an errors.Join of *Error values in the order of their lines:
// every unknown key and badly typed value, or, if there are none of those,
// every key set that this version of avocet has no feature for, or, if there
// are none of those either, every rule Validate finds broken. A TOML syntax
// error stops the parse and is reported alone.
func Parse(data []byte, name string) (*Config, error) {
	return ParseEnv(data, name, nil)
}

// ParseEnv is Parse with the environment's overrides: after the data is
// decoded, each AVOCET_<TABLE>_<KEY> and AVOCET_LISTENERS_<KIND>_<KEY>
// variable of environ sets its key, as the package documentation describes,
// before derived defaults are filled in and the result is validated.
// Entries of environ are "NAME=value", as os.Environ gives them; those not
// beginning AVOCET_, and AVOCET_CONFIG, are skipped.
//
// A problem with a key a variable set, or with a listener a variable added,
// names the variable instead of a line: its *Error has File "env NAME" and
// Line 0, as in "env AVOCET_MQTT_MAX_INFLIGHT: mqtt.max_inflight: must be
// between 1 and 65535, got 0". An unknown variable and a value that does
// not read as its key's type are reported with the file's unknown keys and
// badly typed values, after them.
func ParseEnv(data []byte, name string, environ []string) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The key a syntax error is at is not known; the library gives
			// the last key it read, which may be an earlier one.
			msg := pe.Message
			if pe.LastKey != "" {
				msg += " (last key read: " + pe.LastKey + ")"
			}
			return nil, &Error{File: name, Line: syntaxLine(data, pe.Position), Msg: msg}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	c := defaults()
	d := &decoder{}
	d.decode("", raw, reflect.ValueOf(c).Elem())
	src := &source{name: name, data: data}
	return src.finish(c, d.errs, environ)
}

// FromEnv returns the defaults with the environment's overrides, for a
// broker started without a file; see ParseEnv. Errors about keys no
// variable set have neither File nor Line.
func FromEnv(environ []string) (*Config, error) {
	return (&source{}).finish(defaults(), nil, environ)
}

// source is where a configuration's keys came from: the file, if any, and
// the environment.
type source struct {
	name string // the file's name; empty without a file
	data []byte
	pos  positions // the file's key lines, scanned on the first error
	env  envSetter
}

// finish applies environ to c, decoded from the source's file with
// decodeErrs, fills in the derived defaults and validates the result.
func (s *source) finish(c *Config, decodeErrs []*Error, environ []string) (*Config, error) {
	for _, e := range decodeErrs {
		s.inFile(e)
	}
	s.env.apply(c, environ)
	errs := append(decodeErrs, s.env.errs...)
	if len(errs) == 0 {
		c.fill()
		errs = c.problems()
		for _, e := range errs {
			if name, ok := s.env.variable(e.Key); ok {
				e.File = envFile(name)
			} else {
				s.inFile(e)
			}
		}
	}
	if len(errs) == 0 {
		return c, nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return nil, joinErrors(errs)
}

// inFile places an error in the source's file, if there is one.
func (s *source) inFile(e *Error) {
	if s.name == "" {
		return
	}
	if s.pos == nil {
		s.pos = locate(string(s.data))
	}
	e.File = s.name
	e.Line = s.pos.line(e.Key)
}

// syntaxLine is the line of a syntax error. The library counts a newline
// it did not expect as the start of the next line; the byte offset it also
// gives points at the newline itself, so the line is taken from that.
func syntaxLine(data []byte, p toml.Position) int {
	if p.Start > 0 && p.Start <= len(data) {
		return bytes.Count(data[:p.Start], []byte("\n")) + 1
	}
	return p.Line
}

// joinErrors returns nil, the one error, or all of them joined.
func joinErrors(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// decoder copies a decoded TOML document into a Config, checking every key
// against the toml tags (case and all) and every value's type, and keeping
// on after a problem so that one run reports them all. It stands in for the
// library's own decoding and MetaData.Undecoded because those match field
// names without regard to case, keep one position per key name for all the
// entries of an array of tables, and stop at the first bad value.
type decoder struct {
	errs []*Error
}

func (d *decoder) fail(key, format string, args ...any) {
	d.errs = append(d.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// defaulter is an entry of an array of tables that starts from defaults.
type defaulter interface{ setDefaults() }

func (l *Listener) setDefaults()    { *l = defaultListener() }
func (b *Bridge) setDefaults()      { *b = defaultBridge() }
func (t *BridgeTopic) setDefaults() { *t = defaultBridgeTopic() }
func (w *Webhook) setDefaults()     { *w = defaultWebhook() }

var unmarshalerType = reflect.TypeFor[toml.Unmarshaler]()

func (d *decoder) decode(key string, raw any, v reflect.Value) {
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := v.Addr().Interface().(toml.Unmarshaler).UnmarshalTOML(raw); err != nil {
			d.fail(key, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		table, ok := raw.(map[string]any)
		if !ok {
			d.fail(key, "must be a table, got %s", describe(raw))
			return
		}
		d.table(key, table, v)
	case reflect.Slice:
		d.slice(key, raw, v)
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.fail(key, "must be a string, got %s", describe(raw))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.fail(key, "must be true or false, got %s", describe(raw))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := raw.(int64)
		if !ok {
			d.fail(key, "must be an integer, got %s", describe(raw))
			return
		}
		if v.OverflowInt(n) {
			d.fail(key, "integer %d is out of range", n)
			return
		}
		v.SetInt(n)
	default:
		d.fail(key, "cannot be set: the schema has no decoder for %s", v.Type())
	}
}

// table decodes the keys of a TOML table into a struct's tagged fields.
func (d *decoder) table(key string, table map[string]any, v reflect.Value) {
	fields := tomlFields(v.Type())
	for _, k := range slices.Sorted(maps.Keys(table)) {
		i, ok := fields[k]
		if !ok {
			d.fail(joinKey(key, k), "unknown key%s", suggest(k, fields))
			continue
		}
		d.decode(joinKey(key, k), table[k], v.Field(i))
	}
}

// slice decodes a TOML array into a slice, each entry of an array of tables
// starting from its defaults.
func (d *decoder) slice(key string, raw any, v reflect.Value) {
	var items []any
	switch r := raw.(type) {
	case []any:
		items = r
	case []map[string]any:
		items = make([]any, len(r))
		for i, m := range r {
			items[i] = m
		}
	default:
		d.fail(key, "must be an array, got %s", describe(raw))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		el := out.Index(i)
		if def, ok := el.Addr().Interface().(defaulter); ok {
			def.setDefaults()
		}
		d.decode(indexKey(key, i), item, el)
	}
	v.Set(out)
}

// tomlFields maps a struct's toml tag names to field indexes.
func tomlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

// suggest names the known key closest to an unknown one, if any is close.
func suggest(unknown string, fields map[string]int) string {
	return closest(unknown, maps.Keys(fields), "keys")
}

// closest names the known name closest to an unknown one, if any is close;
// what is the plural the hint uses for names that differ only in case.
func closest(unknown string, known iter.Seq[string], what string) string {
	best, bestDist := "", min(3, (len(unknown)+1)/2)
	for k := range known {
		if strings.EqualFold(k, unknown) {
			return fmt.Sprintf(" (%s are case-sensitive: did you mean %q?)", what, k)
		}
		if dist := editDistance(k, unknown); dist < bestDist || dist == bestDist && best != "" && k < best {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
