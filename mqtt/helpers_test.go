package mqtt

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// hexBytes turns an annotated hex dump into bytes: everything after "//" on a line
// is a comment, and whitespace is ignored.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in test table: %v", err)
	}
	return b
}

// normalize sets every empty slice reachable from v to nil, so that packets decoded
// into reused storage compare equal to packets written in a table.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	}
}

// equalPackets reports whether two packets hold the same values.
func equalPackets(a, b Packet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	normalize(reflect.ValueOf(a))
	normalize(reflect.ValueOf(b))
	return reflect.DeepEqual(a, b)
}

// readOne decodes b with a Reader set to version v.
func readOne(b []byte, v Version, max int) (Packet, error) {
	r := NewReader(bufio.NewReader(bytes.NewReader(b)))
	r.Version = v
	r.MaxPacketSize = max
	return r.ReadPacket()
}

// bufioSmall wraps b in the smallest bufio.Reader, so that most packets are larger
// than its buffer and take the Reader's copying path.
func bufioSmall(b []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), 16)
}
