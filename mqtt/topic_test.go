package mqtt

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// MQTT 5.0 section 4.7.1.2 and 4.7.1.3 examples.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		{"#", "/", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+", "", true},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/#", "a/", true},
		{"+/#", "a", true},
		{"a/+/#", "a", false},
		{"a/+/#", "a/b", true},
		// [MQTT-4.7.2-1]: wildcards at the start do not match $-topics.
		{"#", "$SYS/broker", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"Sport", "sport", false},
	}
	for _, tt := range tests {
		if got := Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	valid := []string{"#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "$SYS/#", "$share/g/a/+", "$share/g/#", "$share", "a b/c"}
	invalid := []string{"", "a#", "a/#/b", "#/a", "a+", "a/+b", "a/b+/c", "$share/g", "$share//a", "$share/g+/a",
		"$share/g#/a", "$share/g/", "a\x00b", strings.Repeat("a", 65536)}
	for _, f := range valid {
		if err := ValidTopicFilter(f); err != nil {
			t.Errorf("ValidTopicFilter(%q) = %v, want nil", f, err)
		}
	}
	for _, f := range invalid {
		err := ValidTopicFilter(f)
		var e *Error
		if !errors.As(err, &e) || e.Code != TopicFilterInvalid {
			t.Errorf("ValidTopicFilter(%q) = %v, want TopicFilterInvalid", f, err)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	for _, n := range []string{"a", "/", "a/b/c", "$SYS/x", " "} {
		if err := ValidTopicName(n); err != nil {
			t.Errorf("ValidTopicName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "a/+", "#", "a/b#", "a\x00", strings.Repeat("x", 65536)} {
		if err := ValidTopicName(n); CodeOf(err) != TopicNameInvalid {
			t.Errorf("ValidTopicName(%q) = %v, want TopicNameInvalid", n, err)
		}
	}
}

func TestSplitShared(t *testing.T) {
	g, f, ok := SplitShared("$share/grp/a/b/#")
	if !ok || g != "grp" || f != "a/b/#" {
		t.Fatalf("SplitShared = %q %q %v", g, f, ok)
	}
	if _, _, ok := SplitShared("$SYS/a"); ok {
		t.Fatal("SplitShared($SYS/a) reported shared")
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("devices/+/sensors/#", "devices/d42/sensors/temperature/celsius")
	}
}
