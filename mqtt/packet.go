package mqtt

import "strconv"

// Packet is one MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() PacketType
	// Encode appends the packet as protocol version v encodes it to dst and returns
	// the extended buffer. It fails when the packet cannot be sent in version v.
	Encode(dst []byte, v Version) ([]byte, error)
	// decode fills the packet from the body of a packet with the given fixed header
	// flags, sent in protocol version v, reusing the packet's storage.
	decode(v Version, flags byte, body []byte) error
}

// appendHeader appends a fixed header: the type and flags byte and the remaining length.
func appendHeader(b []byte, t PacketType, flags byte, remaining int) ([]byte, error) {
	if remaining > MaxRemainingLength {
		return b, &Error{Code: PacketTooLarge, Packet: t, Reason: "remaining length " + strconv.Itoa(remaining) + " exceeds the protocol's maximum"}
	}
	b = append(b, byte(t)<<4|flags)
	return appendVBI(b, remaining), nil
}

// newPacket returns a new zero packet of type t, or nil for reserved types.
func newPacket(t PacketType) Packet {
	switch t {
	case CONNECT:
		return new(Connect)
	case CONNACK:
		return new(Connack)
	case PUBLISH:
		return new(Publish)
	case PUBACK:
		return new(Puback)
	case PUBREC:
		return new(Pubrec)
	case PUBREL:
		return new(Pubrel)
	case PUBCOMP:
		return new(Pubcomp)
	case SUBSCRIBE:
		return new(Subscribe)
	case SUBACK:
		return new(Suback)
	case UNSUBSCRIBE:
		return new(Unsubscribe)
	case UNSUBACK:
		return new(Unsuback)
	case PINGREQ:
		return new(Pingreq)
	case PINGRESP:
		return new(Pingresp)
	case DISCONNECT:
		return new(Disconnect)
	case AUTH:
		return new(Auth)
	}
	return nil
}

// checkFixedFlags checks the first byte's low nibble for every type but PUBLISH
// [MQTT-2.1.3-1], and that AUTH only appears in MQTT 5.
func checkHeader(v Version, t PacketType, flags byte) error {
	if t == 0 || t > AUTH {
		return malformed(0, "reserved packet type "+strconv.Itoa(int(t)))
	}
	if t == AUTH && v != Version5 {
		return malformed(AUTH, "AUTH is reserved before MQTT 5")
	}
	if v == Version31 && (t == PUBREL || t == SUBSCRIBE || t == UNSUBSCRIBE) {
		flags &^= 0x08 // MQTT 3.1 sets DUP on these when it sends them again
	}
	if t != PUBLISH && flags != fixedFlags[t] {
		return malformed(t, "reserved flags are 0x"+strconv.FormatUint(uint64(flags), 16))
	}
	return nil
}

// Decode decodes one whole packet, fixed header first, from the front of b as
// protocol version v sends it (for CONNECT, the version is in the packet) and
// returns it with the number of bytes it took. maxSize bounds the packet's total
// size; zero means the protocol's maximum. Decode allocates a new packet, and its
// byte slices alias b; a broker reads with a [Reader] instead.
func Decode(b []byte, v Version, maxSize int) (Packet, int, error) {
	if len(b) < 2 {
		return nil, 0, malformed(0, "packet shorter than a fixed header")
	}
	t, flags := PacketType(b[0]>>4), b[0]&0x0f
	rl, n, err := decodeVBI(b[1:])
	if err != nil {
		return nil, 0, malformed(0, "remaining length: "+err.Error())
	}
	if err := checkHeader(v, t, flags); err != nil {
		return nil, 0, err
	}
	total := 1 + n + rl
	if maxSize > 0 && total > maxSize {
		return nil, 0, &Error{Code: PacketTooLarge, Packet: t, Reason: "packet of " + strconv.Itoa(total) + " bytes exceeds the maximum of " + strconv.Itoa(maxSize)}
	}
	if len(b) < total {
		return nil, 0, malformed(t, "packet runs past the end of the input")
	}
	p := newPacket(t)
	if err := p.decode(v, flags, b[1+n:total:total]); err != nil {
		return p, 0, err
	}
	return p, total, nil
}

// Type returns CONNECT.
func (*Connect) Type() PacketType { return CONNECT }

// Type returns CONNACK.
func (*Connack) Type() PacketType { return CONNACK }

// Type returns PUBLISH.
func (*Publish) Type() PacketType { return PUBLISH }

// Type returns PUBACK.
func (*Puback) Type() PacketType { return PUBACK }

// Type returns PUBREC.
func (*Pubrec) Type() PacketType { return PUBREC }

// Type returns PUBREL.
func (*Pubrel) Type() PacketType { return PUBREL }

// Type returns PUBCOMP.
func (*Pubcomp) Type() PacketType { return PUBCOMP }

// Type returns SUBSCRIBE.
func (*Subscribe) Type() PacketType { return SUBSCRIBE }

// Type returns SUBACK.
func (*Suback) Type() PacketType { return SUBACK }

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }

// Type returns UNSUBACK.
func (*Unsuback) Type() PacketType { return UNSUBACK }

// Type returns PINGREQ.
func (*Pingreq) Type() PacketType { return PINGREQ }

// Type returns PINGRESP.
func (*Pingresp) Type() PacketType { return PINGRESP }

// Type returns DISCONNECT.
func (*Disconnect) Type() PacketType { return DISCONNECT }

// Type returns AUTH.
func (*Auth) Type() PacketType { return AUTH }
