package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string in
// time.ParseDuration's syntax ("10s", "1m30s", "250ms") or as an integer
// number of seconds (keepalive = 60 is one minute).
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// UnmarshalTOML reads a string or an integer number of seconds.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		p, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be a duration such as \"10s\" or \"1m30s\", got %q", v)
		}
		*d = Duration(p)
		return nil
	case int64:
		if v > math.MaxInt64/int64(time.Second) || v < math.MinInt64/int64(time.Second) {
			return fmt.Errorf("%d seconds is out of range", v)
		}
		*d = Duration(time.Duration(v) * time.Second)
		return nil
	}
	return fmt.Errorf("must be a duration such as \"10s\" or an integer number of seconds, got %s", describe(v))
}

// MarshalText writes the shortest form time.ParseDuration reads back:
// "1m" rather than "1m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String returns d as MarshalText writes it.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ByteSize is a number of bytes, written in TOML as an integer or as a
// string with a unit: "512B", "64KiB", "32MiB", "1GiB", "2TiB" (powers of
// 1024) or "64KB", "32MB", "1GB", "2TB" (powers of 1000). Units are read
// without regard to case, and a space may separate number and unit.
type ByteSize int64

// The binary units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var byteUnits = map[string]ByteSize{
	"":    1,
	"b":   1,
	"kib": KiB,
	"mib": MiB,
	"gib": GiB,
	"tib": TiB,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
}

// ParseByteSize reads a size as ByteSize documents it; a bare number is bytes.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	digits := 0
	for digits < len(t) && t[digits] >= '0' && t[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		return 0, fmt.Errorf("must be a size such as \"32MiB\" or an integer number of bytes, got %q", s)
	}
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(t[digits:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit in size %q; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB", s)
	}
	n, err := strconv.ParseInt(t[:digits], 10, 64)
	if err != nil || n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return ByteSize(n) * unit, nil
}

// UnmarshalTOML reads an integer number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		n, err := ParseByteSize(v)
		if err != nil {
			return err
		}
		*b = n
		return nil
	case int64:
		if v < 0 {
			return fmt.Errorf("must not be negative, got %d", v)
		}
		*b = ByteSize(v)
		return nil
	}
	return fmt.Errorf("must be a size such as \"32MiB\" or an integer number of bytes, got %s", describe(v))
}

// MarshalText writes the size in the largest binary unit that divides it
// exactly, or in bytes: "32MiB", "1000B".
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String returns b as MarshalText writes it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// StringList is a list of strings that TOML may give as one string or as an
// array of strings.
type StringList []string

var errStringList = errors.New("must be a string or an array of strings")

// UnmarshalTOML reads a string or an array of strings.
func (l *StringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = StringList{v}
		return nil
	case []any:
		out := make(StringList, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%w, but element %d is %s", errStringList, i, describe(e))
			}
			out = append(out, s)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("%w, got %s", errStringList, describe(v))
}

// describe names a decoded TOML value's type, and shows it when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 40 {
			return "a string"
		}
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case time.Time:
		return "a datetime"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}
