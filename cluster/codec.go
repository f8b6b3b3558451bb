package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format. Every message and every node metadata blob begins with
// wireVersion; a peer that sees another version drops the message. Integers are
// unsigned varints; strings are a varint length followed by the bytes.
//
//	update: version, kindUpdate, origin, incarnation, seq, op, filter
//	state:  version, kindState, count, count x (name, incarnation, seq, n, n x filter)
//	meta:   version, link address
const (
	wireVersion byte = 1

	kindUpdate byte = 1
	kindState  byte = 2

	opAdd    byte = 1
	opRemove byte = 2
)

// Bounds on what a peer may send.
const (
	maxNameLen      = 512
	maxFilterLen    = 65535
	maxStateNodes   = 4096
	maxStateFilters = 1 << 20
	maxMessageSize  = 64 << 20
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed cluster message")

// update is one change to one origin's set of topic filters.
type update struct {
	origin      string
	incarnation uint64
	seq         uint64
	op          byte
	filter      string
}

// nodeState is one origin's whole set of topic filters at (incarnation, seq).
type nodeState struct {
	name        string
	incarnation uint64
	seq         uint64
	filters     []string
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeUpdate(u update) []byte {
	b := make([]byte, 0, 24+len(u.origin)+len(u.filter))
	b = append(b, wireVersion, kindUpdate)
	b = appendString(b, u.origin)
	b = binary.AppendUvarint(b, u.incarnation)
	b = binary.AppendUvarint(b, u.seq)
	b = append(b, u.op)
	return appendString(b, u.filter)
}

func encodeState(states []nodeState) []byte {
	b := []byte{wireVersion, kindState}
	b = binary.AppendUvarint(b, uint64(len(states)))
	for _, s := range states {
		b = appendString(b, s.name)
		b = binary.AppendUvarint(b, s.incarnation)
		b = binary.AppendUvarint(b, s.seq)
		b = binary.AppendUvarint(b, uint64(len(s.filters)))
		for _, f := range s.filters {
			b = appendString(b, f)
		}
	}
	return b
}

func encodeMeta(linkAddr string) []byte {
	return appendString([]byte{wireVersion}, linkAddr)
}

// reader decodes from a byte slice it does not retain: strings are copied.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(what + ": short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what + ": bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string(what string, limit int) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail(what + ": too long")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a count of items that take at least one byte each, so that it
// can never ask for more than the rest of the message holds.
func (r *reader) count(what string, limit int) int {
	n := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail(what + ": too many")
		return 0
	}
	return int(n)
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}

// decodeHeader checks the version and returns the kind and the rest.
func decodeHeader(b []byte) (kind byte, rest []byte, err error) {
	if len(b) > maxMessageSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("%w: short header", errMalformed)
	}
	if b[0] != wireVersion {
		return 0, nil, fmt.Errorf("%w: version %d", errMalformed, b[0])
	}
	return b[1], b[2:], nil
}

func decodeUpdate(b []byte) (update, error) {
	r := reader{b: b}
	u := update{
		origin:      r.string("origin", maxNameLen),
		incarnation: r.uvarint("incarnation"),
		seq:         r.uvarint("seq"),
		op:          r.byte("op"),
		filter:      r.string("filter", maxFilterLen),
	}
	if r.err == nil && u.op != opAdd && u.op != opRemove {
		r.fail(fmt.Sprintf("op %d", u.op))
	}
	if r.err == nil && (u.origin == "" || u.filter == "") {
		r.fail("empty origin or filter")
	}
	return u, r.end()
}

func decodeState(b []byte) ([]nodeState, error) {
	r := reader{b: b}
	n := r.count("nodes", maxStateNodes)
	states := make([]nodeState, 0, n)
	for range n {
		s := nodeState{
			name:        r.string("name", maxNameLen),
			incarnation: r.uvarint("incarnation"),
			seq:         r.uvarint("seq"),
		}
		nf := r.count("filters", maxStateFilters)
		if r.err != nil {
			break
		}
		if s.name == "" {
			r.fail("empty name")
			break
		}
		s.filters = make([]string, 0, nf)
		for range nf {
			f := r.string("filter", maxFilterLen)
			if r.err != nil {
				break
			}
			if f == "" {
				r.fail("empty filter")
				break
			}
			s.filters = append(s.filters, f)
		}
		states = append(states, s)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return states, nil
}

func decodeMeta(b []byte) (linkAddr string, err error) {
	if len(b) == 0 || b[0] != wireVersion {
		return "", fmt.Errorf("%w: node metadata", errMalformed)
	}
	r := reader{b: b[1:]}
	linkAddr = r.string("link address", maxNameLen)
	return linkAddr, r.end()
}
