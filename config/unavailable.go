package config

import (
	"reflect"
	"strings"
)

// unavailable lists the tables and keys of features this version of avocet
// does not have: a section arrives with its feature, and no key does
// nothing. Each entry is a key path without array indexes, as stripIndexes
// gives it: a table ("admin"), an array of tables ("bridge", every entry of
// it) or one key ("listener.some_key", in every listener).
//
// Setting such a key to anything but its default, in the file or the
// environment, is an error; Write leaves them out, and so does
// avocet.example.toml. The struct fields and their rules in validate.go stay,
// ready for the feature: when it lands, its entries leave this list and its
// keys go back into avocet.example.toml, and nothing else changes here.
var unavailable = map[string]bool{}

// msgUnavailable is the message of a key that unavailable lists.
const msgUnavailable = "not available in this version of avocet"

// isUnavailable reports whether path, a key path without array indexes, is
// listed in unavailable or lies in a table that is.
func isUnavailable(path string) bool {
	for ; path != ""; path = parentKey(path) {
		if unavailable[path] {
			return true
		}
	}
	return false
}

// tomlName is a struct field's key: its toml tag up to any option.
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// isTableArray reports whether t is an array of tables: a slice of structs.
func isTableArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

// unavailableProblems reports every key of an unavailable feature whose
// value is not its default, and every entry of an unavailable array of
// tables.
func (c *Config) unavailableProblems() []*Error {
	ck := &checker{}
	ck.unavailable("", "", reflect.ValueOf(c).Elem(), reflect.ValueOf(Default()).Elem(), false)
	return ck.errs
}

// unavailable walks v, at key path key (path without indexes), beside def,
// the default it is compared with; gated is set inside an unavailable table.
func (ck *checker) unavailable(key, path string, v, def reflect.Value, gated bool) {
	gated = gated || unavailable[path]
	t := v.Type()
	switch {
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			name := tomlName(t.Field(i))
			if name == "" || name == "-" {
				continue
			}
			ck.unavailable(joinKey(key, name), joinKey(path, name), v.Field(i), def.Field(i), gated)
		}
	case isTableArray(t) && gated:
		if sameValue(v, def) {
			return
		}
		if v.Len() == 0 {
			ck.add(key, msgUnavailable)
		}
		for i := range v.Len() {
			ck.add(indexKey(key, i), msgUnavailable)
		}
	case isTableArray(t):
		for i := range v.Len() {
			entry := reflect.New(t.Elem())
			if d, ok := entry.Interface().(defaulter); ok {
				d.setDefaults()
			}
			ck.unavailable(indexKey(key, i), path, v.Index(i), entry.Elem(), false)
		}
	case gated && !sameValue(v, def):
		ck.add(key, msgUnavailable)
	}
}

// sameValue is reflect.DeepEqual, except that a nil and an empty slice are
// the same: "seeds = []" sets nothing that the default lacks.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// availableType is t, the type of the value at key path path (without
// indexes), with the unavailable keys left out: a struct type made for the
// purpose when t or a table within it has such keys, else t itself.
func availableType(path string, t reflect.Type) reflect.Type {
	switch {
	case t.Kind() == reflect.Struct:
		var fields []reflect.StructField
		changed := false
		for i := range t.NumField() {
			f := t.Field(i)
			p := joinKey(path, tomlName(f))
			if unavailable[p] {
				changed = true
				continue
			}
			if ft := availableType(p, f.Type); ft != f.Type {
				f.Type = ft
				changed = true
			}
			fields = append(fields, f)
		}
		if changed {
			return reflect.StructOf(fields)
		}
	case isTableArray(t):
		if et := availableType(path, t.Elem()); et != t.Elem() {
			return reflect.SliceOf(et)
		}
	}
	return t
}

// availableValue copies v into a value of t, a type availableType made from
// v's type, field by field by name.
func availableValue(v reflect.Value, t reflect.Type) reflect.Value {
	if v.Type() == t {
		return v
	}
	out := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			out.Field(i).Set(availableValue(v.FieldByName(f.Name), f.Type))
		}
	case reflect.Slice:
		if v.IsNil() {
			return out
		}
		out.Set(reflect.MakeSlice(t, v.Len(), v.Len()))
		for i := range v.Len() {
			out.Index(i).Set(availableValue(v.Index(i), t.Elem()))
		}
	}
	return out
}
