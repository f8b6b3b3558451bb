package auth

import (
	"fmt"
	"strings"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// levelKind is the kind of one level of a rule's topic filter.
type levelKind uint8

const (
	levelLiteral  levelKind = iota + 1 // text to equal
	levelPlus                          // '+'
	levelHash                          // '#', always last
	levelTemplate                      // text with %c or %u in it
)

// part is a piece of a template level: literal text, or a placeholder.
type part struct {
	text string
	ph   byte // 0 for text; 'c' for the client id, 'u' for the username
}

// level is one level of a compiled rule filter.
type level struct {
	kind  levelKind
	text  string // levelLiteral
	parts []part // levelTemplate
}

// filter is a rule's topic filter compiled into levels. It is immutable.
type filter struct {
	src          string
	levels       []level
	usesC, usesU bool // holds %c, %u
	leadC, leadU bool // begins with %c, %u
}

// compileFilter compiles a rule's topic filter; with placeholders, "%c" and
// "%u" become template levels, else they are plain text.
func compileFilter(src string, placeholders bool) (*filter, error) {
	check := src
	if placeholders {
		check = strings.NewReplacer("%c", "c", "%u", "u").Replace(src)
	}
	if err := mqtt.ValidTopicFilter(check); err != nil {
		return nil, fmt.Errorf("topic filter %q: %w", src, err)
	}
	if _, _, ok := mqtt.SplitShared(check); ok {
		return nil, fmt.Errorf("topic filter %q: a rule names the filter without $share/{group}/", src)
	}
	f := &filter{src: src}
	for i, lv := range strings.Split(src, "/") {
		switch {
		case lv == "+":
			f.levels = append(f.levels, level{kind: levelPlus})
		case lv == "#":
			f.levels = append(f.levels, level{kind: levelHash})
		case placeholders && (strings.Contains(lv, "%c") || strings.Contains(lv, "%u")):
			parts := splitTemplate(lv)
			for _, p := range parts {
				f.usesC = f.usesC || p.ph == 'c'
				f.usesU = f.usesU || p.ph == 'u'
			}
			if i == 0 {
				f.leadC, f.leadU = parts[0].ph == 'c', parts[0].ph == 'u'
			}
			f.levels = append(f.levels, level{kind: levelTemplate, parts: parts})
		default:
			f.levels = append(f.levels, level{kind: levelLiteral, text: lv})
		}
	}
	return f, nil
}

// splitTemplate splits a level into text and placeholders.
func splitTemplate(lv string) []part {
	var parts []part
	for lv != "" {
		i := strings.Index(lv, "%c")
		if j := strings.Index(lv, "%u"); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			parts = append(parts, part{text: lv})
			break
		}
		if i > 0 {
			parts = append(parts, part{text: lv[:i]})
		}
		parts = append(parts, part{ph: lv[i+1]})
		lv = lv[i+2:]
	}
	return parts
}

// covers reports whether every topic that f matches is matched by the rule
// filter (with %c and %u replaced by clientID and username): whether f is a
// subset of it. f is a topic name or a valid topic filter without $share/;
// for a topic name, covers is plain matching, as mqtt.Match does it.
//
// A template level is compared piece by piece against f in place, without
// building the substituted filter, so covers never allocates. A value is
// taken as text: one holding '/' spans levels, as it would after string
// substitution; the caller keeps values with '+' or '#' away.
func (r *filter) covers(f, clientID, username string) bool {
	first := r.levels[0].kind
	if len(f) > 0 && f[0] == '$' && (first == levelPlus || first == levelHash) {
		return false // [MQTT-4.7.2-1]
	}
	pos := 0 // start of f's current level; len(f)+1 once f has no more
	for i := range r.levels {
		lv := &r.levels[i]
		if lv.kind == levelHash {
			return true // f's remaining levels, or its parent level [MQTT-4.7.1-2]
		}
		if pos > len(f) {
			return false
		}
		end := strings.IndexByte(f[pos:], '/')
		if end < 0 {
			end = len(f)
		} else {
			end += pos
		}
		switch lv.kind {
		case levelLiteral:
			if f[pos:end] != lv.text {
				return false
			}
		case levelPlus:
			if f[pos:end] == "#" {
				// f's '#' takes in any number of levels, and at its start no
				// parent: only "+/#" in the rule takes them all in.
				return pos == 0 && i == len(r.levels)-2 && r.levels[i+1].kind == levelHash
			}
		case levelTemplate:
			p := pos
			for _, pt := range lv.parts {
				s := pt.text
				switch pt.ph {
				case 'c':
					s = clientID
				case 'u':
					s = username
				}
				if !strings.HasPrefix(f[p:], s) {
					return false
				}
				p += len(s)
			}
			if p < len(f) && f[p] != '/' {
				return false
			}
			end = p
		}
		pos = end + 1
	}
	return pos > len(f)
}
