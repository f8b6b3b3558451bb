package config

import (
	"strconv"
	"strings"
)

// The TOML library reports a line for syntax errors only: it keeps key
// positions unexported, and one position per key name, so that the second
// [[listener]]'s address and the first share one entry. locate recovers every
// key's line itself, with array elements told apart, by a small scan of a
// document that the library has already accepted as valid TOML.

// positions maps key paths to the 1-based line where the key, table header or
// array element begins. A path joins keys with dots and numbers array
// elements from 0: "mqtt.max_inflight", "listener[1].address",
// "bridge[0].topic[2].pattern", "cluster.seeds[0]".
type positions map[string]int

// line returns the line of key, or else of its nearest ancestor the file
// holds (the [[listener]] header of a listener that lacks a key), or 0.
func (p positions) line(key string) int {
	for key != "" {
		if n, ok := p[key]; ok {
			return n
		}
		key = parentKey(key)
	}
	return 0
}

// joinKey appends one key to a path, quoting it unless it is a bare key.
func joinKey(path, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexKey names element i of the array at path.
func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parentKey removes the last key or index from a path built by joinKey and indexKey.
func parentKey(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
		return ""
	}
	if strings.HasSuffix(path, `"`) {
		for i := len(path) - 1; i >= 0; i-- {
			if path[i] == '.' {
				if _, err := strconv.Unquote(path[i+1:]); err == nil {
					return path[:i]
				}
			}
		}
		return ""
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// stripIndexes removes every array index from a path: "bridge.topic.pattern".
func stripIndexes(path string) string {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case quoted && c == '\\' && i+1 < len(path):
			b.WriteByte(c)
			i++
			c = path[i]
		case c == '"':
			quoted = !quoted
		case !quoted && c == '[':
			for i < len(path) && path[i] != ']' {
				i++
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyByte(k[i]) {
			return false
		}
	}
	return true
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// locate scans a valid TOML document for the line of every key.
func locate(src string) positions {
	sc := &scanner{
		s:      strings.TrimPrefix(src, "\ufeff"),
		line:   1,
		pos:    positions{},
		arrays: map[string]int{},
	}
	sc.document()
	return sc.pos
}

type scanner struct {
	s      string
	i      int
	line   int
	pos    positions
	arrays map[string]int // path of an array of tables -> elements seen so far
}

func (sc *scanner) peek() byte {
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

func (sc *scanner) mark(path string, line int) {
	if _, ok := sc.pos[path]; !ok && path != "" {
		sc.pos[path] = line
	}
}

// space skips blanks and comments, and newlines too when lines is set.
func (sc *scanner) space(lines bool) {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r':
			sc.i++
		case '\n':
			if !lines {
				return
			}
			sc.line++
			sc.i++
		case '#':
			for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
				sc.i++
			}
		default:
			return
		}
	}
}

func (sc *scanner) document() {
	prefix := ""
	for {
		sc.space(true)
		if sc.i >= len(sc.s) {
			return
		}
		start, line := sc.i, sc.line
		switch {
		case strings.HasPrefix(sc.s[sc.i:], "[["):
			sc.i += 2
			parts := sc.key()
			if len(parts) == 0 {
				break
			}
			path := joinKey(sc.tablePath(parts[:len(parts)-1]), parts[len(parts)-1])
			n := sc.arrays[path]
			sc.arrays[path] = n + 1
			sc.mark(path, line)
			prefix = indexKey(path, n)
			sc.mark(prefix, line)
		case sc.s[sc.i] == '[':
			sc.i++
			parts := sc.key()
			if len(parts) == 0 {
				break
			}
			prefix = sc.tablePath(parts)
			sc.mark(prefix, line)
		default:
			parts := sc.key()
			if len(parts) == 0 {
				break
			}
			sc.space(false)
			if sc.peek() == '=' {
				sc.i++
			}
			path := prefix
			for _, p := range parts {
				path = joinKey(path, p)
				sc.mark(path, line)
			}
			sc.space(false)
			sc.value(path)
		}
		// Skip the rest of the line: a header's closing brackets, or input
		// this scan does not understand, which it never loops on.
		for sc.i < len(sc.s) && sc.s[sc.i] != '\n' && sc.s[sc.i] != '#' {
			sc.i++
		}
		if sc.i == start {
			sc.i++
		}
	}
}

// tablePath resolves a header's keys, entering the latest element of each
// array of tables on the way.
func (sc *scanner) tablePath(parts []string) string {
	path := ""
	for _, p := range parts {
		path = joinKey(path, p)
		if n := sc.arrays[path]; n > 0 {
			path = indexKey(path, n-1)
		}
	}
	return path
}

// key reads a dotted key of bare, basic and literal parts.
func (sc *scanner) key() []string {
	var parts []string
	for {
		sc.space(false)
		switch sc.peek() {
		case '"':
			raw := sc.basicString()
			k, err := strconv.Unquote(raw)
			if err != nil {
				k = strings.Trim(raw, `"`)
			}
			parts = append(parts, k)
		case '\'':
			raw := sc.literalString()
			parts = append(parts, strings.Trim(raw, "'"))
		default:
			j := sc.i
			for sc.i < len(sc.s) && (isBareKeyByte(sc.s[sc.i]) || sc.s[sc.i] >= 0x80) {
				sc.i++
			}
			if j == sc.i {
				return parts
			}
			parts = append(parts, sc.s[j:sc.i])
		}
		sc.space(false)
		if sc.peek() != '.' {
			return parts
		}
		sc.i++
	}
}

// value skips one value, marking the lines of the keys and elements inside
// inline tables and arrays.
func (sc *scanner) value(path string) {
	rest := sc.s[sc.i:]
	switch {
	case rest == "":
	case strings.HasPrefix(rest, `"""`):
		sc.multiline(`"""`, true)
	case strings.HasPrefix(rest, `'''`):
		sc.multiline(`'''`, false)
	case rest[0] == '"':
		sc.basicString()
	case rest[0] == '\'':
		sc.literalString()
	case rest[0] == '[':
		sc.i++
		for n := 0; ; n++ {
			sc.space(true)
			switch sc.peek() {
			case 0:
				return
			case ']':
				sc.i++
				return
			}
			el := indexKey(path, n)
			sc.mark(el, sc.line)
			start := sc.i
			sc.value(el)
			sc.space(true)
			if sc.peek() == ',' {
				sc.i++
			} else if sc.i == start {
				sc.i++
			}
		}
	case rest[0] == '{':
		sc.i++
		for {
			sc.space(true)
			switch sc.peek() {
			case 0:
				return
			case '}':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			line := sc.line
			parts := sc.key()
			if len(parts) == 0 {
				sc.i++
				continue
			}
			sc.space(false)
			if sc.peek() == '=' {
				sc.i++
			}
			sc.space(false)
			p := path
			for _, k := range parts {
				p = joinKey(p, k)
				sc.mark(p, line)
			}
			sc.value(p)
		}
	default:
		for sc.i < len(sc.s) && !strings.ContainsRune(",]}#\n", rune(sc.s[sc.i])) {
			sc.i++
		}
	}
}

// basicString skips a one-line "..." string and returns it with its quotes.
func (sc *scanner) basicString() string {
	start := sc.i
	sc.i++
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '\\':
			sc.i += 2
			continue
		case '"':
			sc.i++
			return sc.s[start:sc.i]
		case '\n':
			return sc.s[start:sc.i]
		}
		sc.i++
	}
	sc.i = len(sc.s)
	return sc.s[start:]
}

// literalString skips a one-line '...' string and returns it with its quotes.
func (sc *scanner) literalString() string {
	start := sc.i
	sc.i++
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '\'':
			sc.i++
			return sc.s[start:sc.i]
		case '\n':
			return sc.s[start:sc.i]
		}
		sc.i++
	}
	return sc.s[start:]
}

// multiline skips a multi-line string, counting its lines. The closing
// delimiter may be followed by up to two more quotes that belong to the string.
func (sc *scanner) multiline(delim string, escapes bool) {
	sc.i += len(delim)
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case escapes && c == '\\':
			sc.i++
			if sc.i < len(sc.s) {
				if sc.s[sc.i] == '\n' {
					sc.line++
				}
				sc.i++
			}
			continue
		case c == '\n':
			sc.line++
		case strings.HasPrefix(sc.s[sc.i:], delim):
			sc.i += len(delim)
			for k := 0; k < 2 && sc.peek() == delim[0]; k++ {
				sc.i++
			}
			return
		}
		sc.i++
	}
}
