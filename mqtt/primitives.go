package mqtt

import (
	"encoding/binary"
	"unicode/utf8"
)

// parser reads the data types of section 1.5 from a packet's body. It never reads
// past the end of b; every read that would reports a malformed packet.
type parser struct {
	b   []byte
	off int
	t   PacketType // for errors
}

func (p *parser) remaining() int { return len(p.b) - p.off }

func (p *parser) short(what string) *Error {
	return malformed(p.t, what+" runs past the end of the packet")
}

func (p *parser) byte(what string) (byte, error) {
	if p.off >= len(p.b) {
		return 0, p.short(what)
	}
	c := p.b[p.off]
	p.off++
	return c, nil
}

func (p *parser) u16(what string) (uint16, error) {
	if p.remaining() < 2 {
		return 0, p.short(what)
	}
	v := binary.BigEndian.Uint16(p.b[p.off:])
	p.off += 2
	return v, nil
}

func (p *parser) u32(what string) (uint32, error) {
	if p.remaining() < 4 {
		return 0, p.short(what)
	}
	v := binary.BigEndian.Uint32(p.b[p.off:])
	p.off += 4
	return v, nil
}

// vbi reads a variable byte integer (section 1.5.5).
func (p *parser) vbi(what string) (int, error) {
	v, n, err := decodeVBI(p.b[p.off:])
	if err != nil {
		if err == errVBIShort {
			return 0, p.short(what)
		}
		return 0, malformed(p.t, what+": "+err.Error())
	}
	p.off += n
	return v, nil
}

// binary reads two-byte-length-prefixed binary data (section 1.5.6). The result aliases the body.
func (p *parser) binary(what string) ([]byte, error) {
	n, err := p.u16(what)
	if err != nil {
		return nil, err
	}
	if p.remaining() < int(n) {
		return nil, p.short(what)
	}
	b := p.b[p.off : p.off+int(n) : p.off+int(n)]
	p.off += int(n)
	return b, nil
}

// str reads a UTF-8 encoded string (section 1.5.4). When the bytes equal prev, prev is
// returned, so that a struct decoded again and again does not allocate for a string
// that did not change (a device publishing to the same topic, say).
func (p *parser) str(what string, prev string) (string, error) {
	b, err := p.binary(what)
	if err != nil {
		return "", err
	}
	if err := checkUTF8(b); err != nil {
		return "", malformed(p.t, what+": "+err.Error())
	}
	if string(b) == prev {
		return prev, nil
	}
	return string(b), nil
}

// copyBytes returns a copy of b that reuses dst's storage, or nil when b is nil.
func copyBytes(dst, b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(dst[:0], b...)
}

type vbiError string

func (e vbiError) Error() string { return string(e) }

const (
	errVBIShort   vbiError = "variable byte integer runs past the end"
	errVBILong    vbiError = "variable byte integer longer than four bytes"
	errVBINonMini vbiError = "variable byte integer not in its shortest form"
)

// decodeVBI decodes a variable byte integer from the front of b and returns its value
// and length. It rejects encodings longer than four bytes and, as
// [MQTT-1.5.5-1] requires, encodings that are not the shortest.
func decodeVBI(b []byte) (value, n int, err error) {
	mult := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errVBIShort
		}
		c := b[i]
		value += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, errVBINonMini
			}
			return value, i + 1, nil
		}
		mult <<= 7
	}
	return 0, 0, errVBILong
}

// vbiLen is the number of bytes the variable byte integer v takes.
func vbiLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	}
	return 4
}

// appendVBI appends v, which must be at most MaxRemainingLength, as a variable byte integer.
func appendVBI(b []byte, v int) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// appendString appends a length-prefixed string or binary value; the caller has
// checked that it is at most 65535 bytes.
func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = appendU16(b, uint16(len(s)))
	return append(b, s...)
}

type utf8Error string

func (e utf8Error) Error() string { return string(e) }

// checkUTF8 enforces the rules for UTF-8 encoded strings: well-formed UTF-8 without
// surrogate code points [MQTT-1.5.4-1] and without U+0000 [MQTT-1.5.4-2]. Go's UTF-8
// decoder already rejects the encodings of U+D800 to U+DFFF and overlong forms.
func checkUTF8(b []byte) error {
	ascii := true
	for _, c := range b {
		if c == 0 {
			return utf8Error("string holds U+0000")
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(b) {
		return utf8Error("string is not well-formed UTF-8")
	}
	return nil
}

// ValidString reports whether s may be sent as an MQTT UTF-8 encoded string:
// well-formed, no surrogates, no U+0000, at most 65535 bytes.
func ValidString(s string) bool {
	return len(s) <= 65535 && checkUTF8([]byte(s)) == nil
}
