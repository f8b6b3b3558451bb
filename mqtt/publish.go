package mqtt

// Publish is the PUBLISH packet (section 3.3).
//
// Decoded by a [Reader], Payload and Properties.CorrelationData alias the Reader's
// buffer and are valid only until the next read: a broker that keeps a message
// copies them once. Strings are owned by the struct.
type Publish struct {
	Dup        bool
	QoS        QoS
	Retain     bool
	Topic      string // may be empty in 5.0 when Properties carries a Topic Alias
	PacketID   uint16 // QoS 1 and 2 only
	Properties Properties
	Payload    []byte
}

func (p *Publish) decode(v Version, flags byte, body []byte) error {
	p.Dup = flags&0x08 != 0
	p.QoS = QoS(flags >> 1 & 3)
	p.Retain = flags&0x01 != 0
	if p.QoS > ExactlyOnce { // [MQTT-3.3.1-4]
		return malformed(PUBLISH, "QoS is 3")
	}
	if p.Dup && p.QoS == AtMostOnce { // [MQTT-3.3.1-2]
		return malformed(PUBLISH, "DUP set on a QoS 0 message")
	}
	ps := parser{b: body, t: PUBLISH}
	var err error
	if p.Topic, err = ps.str("topic name", p.Topic); err != nil {
		return err
	}
	p.PacketID = 0
	if p.QoS > AtMostOnce {
		if p.PacketID, err = ps.u16("packet identifier"); err != nil {
			return err
		}
		if p.PacketID == 0 { // [MQTT-2.2.1-3]
			return malformed(PUBLISH, "packet identifier is zero")
		}
	}
	if v == Version5 {
		if err := p.Properties.decode(&ps, PUBLISH, true); err != nil {
			return err
		}
	} else {
		p.Properties.Reset()
	}
	if p.Topic == "" {
		if v != Version5 || !p.Properties.Has(PropTopicAlias) { // [MQTT-3.3.2-1] [MQTT-4.7.3-1]
			return &Error{Code: ProtocolError, Packet: PUBLISH, Reason: "empty topic name without a topic alias"}
		}
	} else if err := ValidTopicName(p.Topic); err != nil { // [MQTT-3.3.2-2]
		return &Error{Code: TopicNameInvalid, Packet: PUBLISH, Reason: err.(*Error).Reason}
	}
	if p.Properties.Has(PropResponseTopic) && ValidTopicName(p.Properties.ResponseTopic) != nil { // [MQTT-3.3.2-14]
		return protocolErr(PUBLISH, "response topic is not a valid topic name")
	}
	p.Payload = body[ps.off:len(body):len(body)]
	return nil
}

// Size returns the number of bytes Encode appends for protocol version v, so that a
// broker can compare it with a client's Maximum Packet Size before encoding.
func (p *Publish) Size(v Version) int {
	rl := p.remaining(v, p.propsSize(v))
	return 1 + vbiLen(rl) + rl
}

func (p *Publish) propsSize(v Version) int {
	if v != Version5 {
		return 0
	}
	return p.Properties.size()
}

func (p *Publish) remaining(v Version, ps int) int {
	rl := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > AtMostOnce {
		rl += 2
	}
	if v == Version5 {
		rl += vbiLen(ps) + ps
	}
	return rl
}

// Encode appends the PUBLISH packet for protocol version v. It does not allocate
// when dst has room for the packet.
func (p *Publish) Encode(dst []byte, v Version) ([]byte, error) {
	if p.QoS > ExactlyOnce {
		return dst, malformed(PUBLISH, "QoS is 3")
	}
	if p.QoS > AtMostOnce && p.PacketID == 0 {
		return dst, protocolErr(PUBLISH, "QoS 1 or 2 without a packet identifier")
	}
	if len(p.Topic) > 65535 {
		return dst, &Error{Code: TopicNameInvalid, Packet: PUBLISH, Reason: "topic name longer than 65535 bytes"}
	}
	ps := 0
	if v == Version5 {
		if !p.Properties.Empty() {
			if err := p.Properties.check(PUBLISH); err != nil {
				return dst, err
			}
		}
		ps = p.Properties.size()
	}
	flags := byte(p.QoS) << 1
	if p.Dup && p.QoS > AtMostOnce {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 0x01
	}
	b, err := appendHeader(dst, PUBLISH, flags, p.remaining(v, ps))
	if err != nil {
		return dst, err
	}
	b = appendString(b, p.Topic)
	if p.QoS > AtMostOnce {
		b = appendU16(b, p.PacketID)
	}
	if v == Version5 {
		b = p.Properties.appendTo(b, ps)
	}
	return append(b, p.Payload...), nil
}

// Ack is the shape shared by PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to
// 3.7): a packet identifier and, in 5.0, a reason code and properties. The four
// packet types are distinct types with this layout.
type Ack struct {
	PacketID   uint16
	ReasonCode ReasonCode // 5.0 only
	Properties Properties // 5.0 only
}

// Puback is the PUBACK packet (section 3.4).
type Puback Ack

// Pubrec is the PUBREC packet (section 3.5).
type Pubrec Ack

// Pubrel is the PUBREL packet (section 3.6).
type Pubrel Ack

// Pubcomp is the PUBCOMP packet (section 3.7).
type Pubcomp Ack

func (a *Ack) decode(t PacketType, v Version, body []byte) error {
	a.ReasonCode = Success
	a.Properties.Reset()
	p := parser{b: body, t: t}
	var err error
	if a.PacketID, err = p.u16("packet identifier"); err != nil {
		return err
	}
	if a.PacketID == 0 { // [MQTT-2.2.1-3]
		return malformed(t, "packet identifier is zero")
	}
	if v != Version5 {
		if p.remaining() != 0 {
			return malformed(t, "bytes after the packet identifier")
		}
		return nil
	}
	// Section 3.4.2.1: the reason code and the property length may be omitted.
	if p.remaining() > 0 {
		c, _ := p.byte("reason code")
		a.ReasonCode = ReasonCode(c)
		if !a.ReasonCode.ValidFor(t) {
			return protocolErr(t, "invalid reason code "+a.ReasonCode.String())
		}
	}
	if p.remaining() > 0 {
		if err := a.Properties.decode(&p, t, false); err != nil {
			return err
		}
	}
	if p.remaining() != 0 {
		return malformed(t, "bytes after the properties")
	}
	return nil
}

func (a *Ack) encode(dst []byte, t PacketType, flags byte, v Version) ([]byte, error) {
	if a.PacketID == 0 {
		return dst, protocolErr(t, "packet identifier is zero")
	}
	if v != Version5 {
		b, _ := appendHeader(dst, t, flags, 2)
		return appendU16(b, a.PacketID), nil
	}
	if a.Properties.Empty() {
		if a.ReasonCode == Success { // section 3.4.2.1: the shortest form
			b, _ := appendHeader(dst, t, flags, 2)
			return appendU16(b, a.PacketID), nil
		}
		b, _ := appendHeader(dst, t, flags, 3)
		b = appendU16(b, a.PacketID)
		return append(b, byte(a.ReasonCode)), nil
	}
	if err := a.Properties.check(t); err != nil {
		return dst, err
	}
	ps := a.Properties.size()
	b, err := appendHeader(dst, t, flags, 3+vbiLen(ps)+ps)
	if err != nil {
		return dst, err
	}
	b = appendU16(b, a.PacketID)
	b = append(b, byte(a.ReasonCode))
	return a.Properties.appendTo(b, ps), nil
}

func (a *Puback) decode(v Version, _ byte, body []byte) error {
	return (*Ack)(a).decode(PUBACK, v, body)
}

// Encode appends the PUBACK packet for protocol version v.
func (a *Puback) Encode(dst []byte, v Version) ([]byte, error) {
	return (*Ack)(a).encode(dst, PUBACK, 0, v)
}

func (a *Pubrec) decode(v Version, _ byte, body []byte) error {
	return (*Ack)(a).decode(PUBREC, v, body)
}

// Encode appends the PUBREC packet for protocol version v.
func (a *Pubrec) Encode(dst []byte, v Version) ([]byte, error) {
	return (*Ack)(a).encode(dst, PUBREC, 0, v)
}

func (a *Pubrel) decode(v Version, _ byte, body []byte) error {
	return (*Ack)(a).decode(PUBREL, v, body)
}

// Encode appends the PUBREL packet for protocol version v; its fixed header flags are 0010 [MQTT-3.6.1-1].
func (a *Pubrel) Encode(dst []byte, v Version) ([]byte, error) {
	return (*Ack)(a).encode(dst, PUBREL, fixedFlags[PUBREL], v)
}

func (a *Pubcomp) decode(v Version, _ byte, body []byte) error {
	return (*Ack)(a).decode(PUBCOMP, v, body)
}

// Encode appends the PUBCOMP packet for protocol version v.
func (a *Pubcomp) Encode(dst []byte, v Version) ([]byte, error) {
	return (*Ack)(a).encode(dst, PUBCOMP, 0, v)
}
