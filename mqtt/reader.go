package mqtt

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strconv"
)

// chunk is the step in which a body larger than the bufio.Reader's buffer is read,
// so that memory grows with the bytes that arrive, not with the length a peer claims.
const chunk = 64 << 10

// Reader reads MQTT packets from a buffered stream. It decodes each packet type into
// a struct of its own that it reuses from one packet to the next, so a packet
// returned by ReadPacket, and every byte slice it holds that its documentation says
// aliases the read buffer, is valid only until the next call. A Reader is not safe
// for concurrent use: it belongs to a connection's reader goroutine.
type Reader struct {
	br *bufio.Reader

	// Version is the protocol version of the packets read. Until a CONNECT is read it
	// is zero, and packets other than CONNECT are read as 3.1.1; reading a CONNECT
	// sets it to the CONNECT's version. A client sets it after it sends CONNECT.
	Version Version
	// MaxPacketSize is the largest packet accepted, fixed header included. Zero means
	// the protocol's maximum. It is checked against the fixed header before any of
	// the body is read.
	MaxPacketSize int

	buf []byte // body storage for packets larger than br's buffer

	// The reused packets, made on first use: most connections only ever see a
	// few types, and an idle connection should cost little memory.
	connect     *Connect
	connack     *Connack
	publish     *Publish
	puback      *Puback
	pubrec      *Pubrec
	pubrel      *Pubrel
	pubcomp     *Pubcomp
	subscribe   *Subscribe
	suback      *Suback
	unsubscribe *Unsubscribe
	unsuback    *Unsuback
	disconnect  *Disconnect
	auth        *Auth
}

// reuse returns *p, making it first.
func reuse[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

// NewReader returns a Reader that reads from br.
func NewReader(br *bufio.Reader) *Reader {
	return &Reader{br: br}
}

// Buffered returns the number of bytes read from the stream but not yet decoded.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// PacketBuffered reports whether a whole packet is buffered, so that ReadPacket
// returns without reading the stream. A malformed remaining length reports
// false and is left to ReadPacket.
func (r *Reader) PacketBuffered() bool {
	n := r.br.Buffered()
	if n < 2 {
		return false
	}
	b, _ := r.br.Peek(min(n, 5))
	rl, l, err := decodeVBI(b[1:])
	return err == nil && 1+l+rl <= n
}

func (r *Reader) packet(t PacketType) Packet {
	switch t {
	case CONNECT:
		return reuse(&r.connect)
	case CONNACK:
		return reuse(&r.connack)
	case PUBLISH:
		return reuse(&r.publish)
	case PUBACK:
		return reuse(&r.puback)
	case PUBREC:
		return reuse(&r.pubrec)
	case PUBREL:
		return reuse(&r.pubrel)
	case PUBCOMP:
		return reuse(&r.pubcomp)
	case SUBSCRIBE:
		return reuse(&r.subscribe)
	case SUBACK:
		return reuse(&r.suback)
	case UNSUBSCRIBE:
		return reuse(&r.unsubscribe)
	case UNSUBACK:
		return reuse(&r.unsuback)
	case PINGREQ:
		return pingreq
	case PINGRESP:
		return pingresp
	case DISCONNECT:
		return reuse(&r.disconnect)
	}
	return reuse(&r.auth)
}

// The empty packets need no storage of their own.
var (
	pingreq  = &Pingreq{}
	pingresp = &Pingresp{}
)

// ReadPacket reads and decodes the next packet. It returns io.EOF when the stream
// ends cleanly between packets, io.ErrUnexpectedEOF when it ends inside one, the
// stream's error when reading fails, and an *Error carrying the reason code when
// the packet violates the protocol; after an *Error the stream is not in step and
// the connection must be closed. On a decoding error the returned packet, when not
// nil, holds what was decoded before the violation (a CONNECT's Version, say).
func (r *Reader) ReadPacket() (Packet, error) {
	b0, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	t, flags := PacketType(b0>>4), b0&0x0f
	rl, n := 0, 0
	for mult := 1; ; mult <<= 7 {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		n++
		rl += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if n > 1 && c == 0 { // [MQTT-1.5.5-1]
				return nil, malformed(t, "remaining length not in its shortest form")
			}
			break
		}
		if n == 4 {
			return nil, malformed(t, "remaining length longer than four bytes")
		}
	}
	v := r.Version
	if v == 0 {
		v = Version311
	}
	if err := checkHeader(v, t, flags); err != nil {
		return nil, err
	}
	if total := 1 + n + rl; r.MaxPacketSize > 0 && total > r.MaxPacketSize {
		return nil, &Error{Code: PacketTooLarge, Packet: t,
			Reason: "packet of " + strconv.Itoa(total) + " bytes exceeds the maximum of " + strconv.Itoa(r.MaxPacketSize)}
	}
	body, err := r.body(rl)
	if err != nil {
		return nil, err
	}
	p := r.packet(t)
	if err := p.decode(v, flags, body); err != nil {
		return p, err
	}
	if t == CONNECT {
		r.Version = r.connect.Version
	}
	return p, nil
}

// body reads the next rl bytes. Bodies that fit the bufio.Reader's buffer are not
// copied: the result aliases that buffer until the next read.
func (r *Reader) body(rl int) ([]byte, error) {
	if rl == 0 {
		return nil, nil
	}
	if rl <= r.br.Size() {
		b, err := r.br.Peek(rl)
		if err != nil {
			return nil, unexpected(err)
		}
		_, _ = r.br.Discard(rl) // cannot fail: the bytes are buffered
		return b[:rl:rl], nil
	}
	buf := r.buf[:0]
	for len(buf) < rl {
		step := min(rl-len(buf), chunk)
		buf = slices.Grow(buf, step)
		if _, err := io.ReadFull(r.br, buf[len(buf):len(buf)+step]); err != nil {
			return nil, unexpected(err)
		}
		buf = buf[:len(buf)+step]
	}
	if cap(buf) <= chunk {
		r.buf = buf // keep a moderate buffer for the next large packet; drop larger ones
	} else {
		r.buf = nil
	}
	return buf, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
