package auth

import (
	"strings"
	"testing"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func mustFilter(t testing.TB, src string, placeholders bool) *filter {
	t.Helper()
	f, err := compileFilter(src, placeholders)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCoversSubset is the table of rule filter × subscription filter.
func TestCoversSubset(t *testing.T) {
	tests := []struct {
		rule, filter string
		want         bool
	}{
		{"a/#", "a/b/+", true},
		{"a/#", "a/#", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c/d", true},
		{"a/#", "#", false},
		{"a/#", "+/b", false},
		{"a/#", "b/#", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false}, // a/# takes in a and a/b/c
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/b/+", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
		{"a/b", "a/b/c", false},
		{"a/b", "a", false},
		{"+", "a", true},
		{"+", "+", true},
		{"+", "#", false},
		{"+", "a/b", false},
		{"+/#", "#", true}, // every topic has a first level
		{"+/#", "a/#", true},
		{"a/+/#", "a/#", false}, // a/# takes in a
		{"#", "#", true},
		{"#", "+/+", true},
		{"#", "a", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/+", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/#", "#", false},
		{"$SYS/+", "$SYS/#", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/#", "a/", true},
		{"a", "a/", false},
		{"/#", "/a", true},
		{"/#", "a", false},
	}
	for _, tt := range tests {
		r := mustFilter(t, tt.rule, false)
		if got := r.covers(tt.filter, "", ""); got != tt.want {
			t.Errorf("rule %q covers %q = %v, want %v", tt.rule, tt.filter, got, tt.want)
		}
	}
}

// universe returns the filters and topic names of a small world: filters up
// to three levels, topics up to four, with a level ("z") no filter names, so
// that every filter pair that is not a subset has a witness topic in it.
func universe() (filters, topics []string) {
	for _, lv := range []string{"a", "b", "", "$s", "+", "#"} {
		grow(&filters, lv, 2, []string{"a", "b", "", "$s", "+", "#"})
	}
	for _, lv := range []string{"a", "b", "", "$s", "z"} {
		grow(&topics, lv, 3, []string{"a", "b", "", "$s", "z"})
	}
	return filters, topics
}

// grow appends s and, when it does not end in '#', s/level for each level of
// alphabet, and below them, up to depth more levels.
func grow(out *[]string, s string, depth int, alphabet []string) {
	*out = append(*out, s)
	if depth == 0 || strings.HasSuffix(s, "#") {
		return
	}
	for _, lv := range alphabet {
		grow(out, s+"/"+lv, depth-1, alphabet)
	}
}

// TestCoversAgainstMatch checks covers against mqtt.Match: on topic names it
// must be Match, and on filters it must be the subset relation that Match
// gives over every topic of the universe.
func TestCoversAgainstMatch(t *testing.T) {
	filters, topics := universe()
	type bits []uint64
	matched := map[string]bits{}
	for _, f := range filters {
		if mqtt.ValidTopicFilter(f) != nil {
			continue
		}
		b := make(bits, (len(topics)+63)/64)
		r := mustFilter(t, f, false)
		for i, tp := range topics {
			m := mqtt.Match(f, tp)
			if got := r.covers(tp, "", ""); got != m {
				t.Fatalf("rule %q, topic %q: covers %v, Match %v", f, tp, got, m)
			}
			if m {
				b[i/64] |= 1 << (i % 64)
			}
		}
		matched[f] = b
	}
	pairs := 0
	for rf, rb := range matched {
		r := mustFilter(t, rf, false)
		for ff, fb := range matched {
			subset := true
			for i := range fb {
				if fb[i]&^rb[i] != 0 {
					subset = false
					break
				}
			}
			if got := r.covers(ff, "", ""); got != subset {
				t.Errorf("rule %q covers filter %q = %v, want %v", rf, ff, got, subset)
			}
			pairs++
		}
	}
	t.Logf("%d filters, %d topics, %d pairs", len(matched), len(topics), pairs)
}

// TestTemplateCovers checks that a pattern compared in place gives what string
// substitution followed by plain matching gives.
func TestTemplateCovers(t *testing.T) {
	patterns := []string{"%c", "%c/#", "%u/+", "a/%c/%u", "a/x-%c-y/#", "%u%c/b", "p/%c", "+/%c/#", "%c/%c"}
	values := []string{"a", "b", "a/b", "x-a-y", "$s", "a/", "/"}
	_, topics := universe()
	subs, _ := universe()
	targets := append(topics, subs...)
	for _, p := range patterns {
		r := mustFilter(t, p, true)
		for _, c := range values {
			for _, u := range values {
				src := strings.NewReplacer("%c", c, "%u", u).Replace(p)
				plain, err := compileFilter(src, false)
				if err != nil {
					t.Fatalf("%q with c=%q u=%q: %v", p, c, u, err)
				}
				for _, f := range targets {
					if mqtt.ValidTopicFilter(f) != nil {
						continue
					}
					if got, want := r.covers(f, c, u), plain.covers(f, "", ""); got != want {
						t.Errorf("pattern %q c=%q u=%q on %q: %v, substituted %q gives %v", p, c, u, f, got, src, want)
					}
				}
			}
		}
	}
}

func TestCompileFilter(t *testing.T) {
	tests := []struct {
		src          string
		placeholders bool
		wantErr      string
		usesC, usesU bool
	}{
		{"a/b", false, "", false, false},
		{"a/%c", false, "", false, false}, // topic lines take %c as text
		{"a/%c", true, "", true, false},
		{"%u/x%c", true, "", true, true},
		{"a/%", true, "", false, false},
		{"a/b#", false, "not alone", false, false},
		{"a/%c+", true, "does not fill its level", false, false},
		{"", false, "empty topic filter", false, false},
		{"$share/g/a", false, "without $share/{group}/", false, false},
		{"$share/%c/a", true, "without $share/{group}/", false, false},
	}
	for _, tt := range tests {
		f, err := compileFilter(tt.src, tt.placeholders)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("compileFilter(%q): %v, want %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("compileFilter(%q): %v", tt.src, err)
			continue
		}
		if f.usesC != tt.usesC || f.usesU != tt.usesU {
			t.Errorf("compileFilter(%q): usesC %v usesU %v", tt.src, f.usesC, f.usesU)
		}
	}
}

func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a/b"}, {"+/+", "a/b"}, {"#", "$SYS/x"}, {"a/+/c", "a//c"}, {"+/#", "#"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rule, target string) {
		r, err := compileFilter(rule, false)
		if err != nil || mqtt.ValidTopicFilter(target) != nil {
			return
		}
		if _, _, ok := mqtt.SplitShared(target); ok {
			return
		}
		got := r.covers(target, "", "")
		if !mqtt.HasWildcard(target) {
			if want := mqtt.Match(rule, target); got != want {
				t.Fatalf("rule %q, topic %q: covers %v, Match %v", rule, target, got, want)
			}
			return
		}
		// A filter that is covered has every topic it matches covered: try
		// the topic its wildcards make with a level "z".
		if got {
			tp := strings.ReplaceAll(strings.ReplaceAll(target, "+", "z"), "#", "z")
			if !mqtt.Match(rule, tp) {
				t.Fatalf("rule %q covers %q but not its topic %q", rule, target, tp)
			}
		}
	})
}
