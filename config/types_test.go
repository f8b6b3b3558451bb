package config

import (
	"strings"
	"testing"
	"time"
)

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in   any
		want Duration
		err  string
	}{
		{"10s", Duration(10 * time.Second), ""},
		{"1m30s", Duration(90 * time.Second), ""},
		{"250ms", Duration(250 * time.Millisecond), ""},
		{" 5s ", Duration(5 * time.Second), ""},
		{"0s", 0, ""},
		{"-1s", Duration(-time.Second), ""},
		{int64(60), Duration(time.Minute), ""},
		{int64(0), 0, ""},
		{"10", 0, `must be a duration such as "10s"`},
		{"soon", 0, `got "soon"`},
		{"", 0, `got ""`},
		{int64(1) << 62, 0, "out of range"},
		{1.5, 0, "got float 1.5"},
		{true, 0, "got boolean true"},
		{[]any{"1s"}, 0, "got an array"},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalTOML(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("UnmarshalTOML(%#v) = %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("UnmarshalTOML(%#v) = %v, want error with %q", tt.in, err, tt.err)
		case tt.err == "" && d != tt.want:
			t.Errorf("UnmarshalTOML(%#v) = %s, want %s", tt.in, d, tt.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{10 * time.Second, "10s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{2*time.Hour + 30*time.Minute, "2h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{250 * time.Millisecond, "250ms"},
		{-time.Minute, "-1m"},
	}
	for _, tt := range tests {
		d := Duration(tt.d)
		if got := d.String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.d, got, tt.want)
		}
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalTOML(string(text)); err != nil || back != d {
			t.Errorf("%q reads back as %v, %v", text, back, err)
		}
	}
	if Duration(time.Second).Std() != time.Second {
		t.Error("Std")
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   any
		want ByteSize
		err  string
	}{
		{int64(0), 0, ""},
		{int64(4096), 4096, ""},
		{"100", 100, ""},
		{"100B", 100, ""},
		{"64KiB", 64 << 10, ""},
		{"32MiB", 32 << 20, ""},
		{"32 mib", 32 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"1KB", 1000, ""},
		{"5MB", 5000000, ""},
		{"1gb", 1000000000, ""},
		{"3TB", 3000000000000, ""},
		{" 7 KiB ", 7 << 10, ""},
		{int64(-1), 0, "must not be negative"},
		{"-1", 0, "must be a size"},
		{"MiB", 0, "must be a size"},
		{"", 0, "must be a size"},
		{"1.5GiB", 0, "unknown unit"},
		{"10 parsecs", 0, "unknown unit"},
		{"9999999999TiB", 0, "out of range"},
		{"99999999999999999999", 0, "out of range"},
		{1.5, 0, "got float 1.5"},
	}
	for _, tt := range tests {
		var b ByteSize
		err := b.UnmarshalTOML(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("UnmarshalTOML(%#v) = %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("UnmarshalTOML(%#v) = %v, want error with %q", tt.in, err, tt.err)
		case tt.err == "" && b != tt.want:
			t.Errorf("UnmarshalTOML(%#v) = %d, want %d", tt.in, b, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		b    ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{32 * MiB, "32MiB"},
		{1024 * MiB, "1GiB"},
		{3 * TiB, "3TiB"},
		{5 * TiB * 1024, "5120TiB"},
	}
	for _, tt := range tests {
		if got := tt.b.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.b), got, tt.want)
		}
		back, err := ParseByteSize(tt.want)
		if err != nil || back != tt.b {
			t.Errorf("ParseByteSize(%q) = %d, %v", tt.want, back, err)
		}
	}
}

func TestStringList(t *testing.T) {
	tests := []struct {
		in   any
		want StringList
		err  string
	}{
		{"a", StringList{"a"}, ""},
		{[]any{}, StringList{}, ""},
		{[]any{"a", "b"}, StringList{"a", "b"}, ""},
		{[]any{"a", int64(1)}, nil, "element 1 is integer 1"},
		{int64(1), nil, "must be a string or an array of strings, got integer 1"},
		{map[string]any{}, nil, "got a table"},
	}
	for _, tt := range tests {
		var l StringList
		err := l.UnmarshalTOML(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("UnmarshalTOML(%#v) = %v, want error with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || len(l) != len(tt.want) || strings.Join(l, ",") != strings.Join(tt.want, ",") {
			t.Errorf("UnmarshalTOML(%#v) = %q, %v; want %q", tt.in, l, err, tt.want)
		}
	}
}

func TestDurationAndSizeInFile(t *testing.T) {
	c := mustParse(t, "[mqtt]\nconnect_timeout = 5\nmax_session_expiry = \"2h\"\nmax_retained_bytes = \"10MB\"\n[store]\nshrink_min_size = 1048576")
	if c.MQTT.ConnectTimeout != Duration(5*time.Second) || c.MQTT.MaxSessionExpiry != Duration(2*time.Hour) ||
		c.MQTT.MaxRetainedBytes != 10_000_000 || c.Store.ShrinkMinSize != MiB {
		t.Errorf("got %s %s %d %d", c.MQTT.ConnectTimeout, c.MQTT.MaxSessionExpiry, c.MQTT.MaxRetainedBytes, c.Store.ShrinkMinSize)
	}
}
