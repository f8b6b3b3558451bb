package mqtt

// Pingreq is the PINGREQ packet (section 3.12).
type Pingreq struct{}

// Pingresp is the PINGRESP packet (section 3.13).
type Pingresp struct{}

func decodeEmpty(t PacketType, body []byte) error {
	if len(body) != 0 {
		return malformed(t, "remaining length is not zero")
	}
	return nil
}

func (*Pingreq) decode(_ Version, _ byte, body []byte) error { return decodeEmpty(PINGREQ, body) }

// Encode appends the PINGREQ packet.
func (*Pingreq) Encode(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

func (*Pingresp) decode(_ Version, _ byte, body []byte) error { return decodeEmpty(PINGRESP, body) }

// Encode appends the PINGRESP packet.
func (*Pingresp) Encode(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// reasonPacket is the shape of DISCONNECT and AUTH in 5.0: a reason code and
// properties, both omitted when the remaining length is 0 (sections 3.14.2.1 and 3.15.2.1).
type reasonPacket struct {
	ReasonCode ReasonCode
	Properties Properties
}

func (r *reasonPacket) decode(t PacketType, body []byte) error {
	r.ReasonCode = Success
	r.Properties.Reset()
	p := parser{b: body, t: t}
	if p.remaining() > 0 {
		c, _ := p.byte("reason code")
		r.ReasonCode = ReasonCode(c)
		if !r.ReasonCode.ValidFor(t) {
			return protocolErr(t, "invalid reason code "+r.ReasonCode.String())
		}
	}
	if p.remaining() > 0 {
		if err := r.Properties.decode(&p, t, false); err != nil {
			return err
		}
	}
	if p.remaining() != 0 {
		return malformed(t, "bytes after the properties")
	}
	return nil
}

func (r *reasonPacket) encode(dst []byte, t PacketType) ([]byte, error) {
	if r.Properties.Empty() {
		if r.ReasonCode == Success {
			return append(dst, byte(t)<<4, 0), nil
		}
		return append(dst, byte(t)<<4, 1, byte(r.ReasonCode)), nil
	}
	if err := r.Properties.check(t); err != nil {
		return dst, err
	}
	ps := r.Properties.size()
	b, err := appendHeader(dst, t, 0, 1+vbiLen(ps)+ps)
	if err != nil {
		return dst, err
	}
	b = append(b, byte(r.ReasonCode))
	return r.Properties.appendTo(b, ps), nil
}

// Disconnect is the DISCONNECT packet (section 3.14). Before 5.0 it is empty and
// ReasonCode and Properties are not sent.
type Disconnect struct {
	ReasonCode ReasonCode // NormalDisconnection when absent
	Properties Properties
}

func (d *Disconnect) decode(v Version, _ byte, body []byte) error {
	if v != Version5 {
		d.ReasonCode = NormalDisconnection
		d.Properties.Reset()
		return decodeEmpty(DISCONNECT, body)
	}
	return (*reasonPacket)(d).decode(DISCONNECT, body)
}

// Encode appends the DISCONNECT packet for protocol version v.
func (d *Disconnect) Encode(dst []byte, v Version) ([]byte, error) {
	if v != Version5 {
		return append(dst, byte(DISCONNECT)<<4, 0), nil
	}
	return (*reasonPacket)(d).encode(dst, DISCONNECT)
}

// Auth is the AUTH packet of MQTT 5.0 (section 3.15), for enhanced authentication.
type Auth struct {
	ReasonCode ReasonCode // Success when absent
	Properties Properties
}

func (a *Auth) decode(_ Version, _ byte, body []byte) error {
	if err := (*reasonPacket)(a).decode(AUTH, body); err != nil {
		return err
	}
	// Section 3.15.2.2.2: the Authentication Method is required, but in the
	// shortest form (Success without properties) that section 3.15.2.1 allows.
	if len(body) > 0 && !a.Properties.Has(PropAuthMethod) {
		return protocolErr(AUTH, "no authentication method")
	}
	return nil
}

// Encode appends the AUTH packet; it exists only in 5.0.
func (a *Auth) Encode(dst []byte, v Version) ([]byte, error) {
	if v != Version5 {
		return dst, protocolErr(AUTH, "AUTH exists only in MQTT 5")
	}
	return (*reasonPacket)(a).encode(dst, AUTH)
}
