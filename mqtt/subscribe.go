package mqtt

// Subscription is one topic filter of a SUBSCRIBE packet with its subscription
// options (section 3.8.3.1). Before 5.0 only the QoS is carried.
type Subscription struct {
	Filter            string
	QoS               QoS  // maximum QoS
	NoLocal           bool // 5.0: do not send the subscriber's own messages back
	RetainAsPublished bool // 5.0: keep the RETAIN flag of forwarded messages
	RetainHandling    byte // 5.0: 0 send retained, 1 only for a new subscription, 2 never
}

// Subscribe is the SUBSCRIBE packet (section 3.8). A filter that is not a valid
// topic filter is not a decoding error: the broker answers it in the SUBACK.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // 5.0: at most one Subscription Identifier, user properties
	Subscriptions []Subscription
}

func (s *Subscribe) decode(v Version, _ byte, body []byte) error {
	p := parser{b: body, t: SUBSCRIBE}
	var err error
	if s.PacketID, err = p.u16("packet identifier"); err != nil {
		return err
	}
	if s.PacketID == 0 { // [MQTT-2.2.1-3]
		return malformed(SUBSCRIBE, "packet identifier is zero")
	}
	if v == Version5 {
		if err := s.Properties.decode(&p, SUBSCRIBE, false); err != nil {
			return err
		}
	} else {
		s.Properties.Reset()
	}
	subs := s.Subscriptions[:0]
	for p.remaining() > 0 {
		var sub Subscription
		if i := len(subs); i < cap(subs) {
			sub.Filter = subs[:i+1][i].Filter
		}
		if sub.Filter, err = p.str("topic filter", sub.Filter); err != nil {
			return err
		}
		opts, err := p.byte("subscription options")
		if err != nil {
			return err
		}
		sub.QoS = QoS(opts & 3)
		if sub.QoS > ExactlyOnce {
			if v == Version5 { // section 3.8.3.1: a Protocol Error in 5.0
				return protocolErr(SUBSCRIBE, "maximum QoS is 3")
			}
			return malformed(SUBSCRIBE, "requested QoS is 3") // [MQTT-3-8.3-4] (3.1.1)
		}
		if v == Version5 {
			if opts&0xC0 != 0 { // [MQTT-3.8.3-5]
				return malformed(SUBSCRIBE, "reserved subscription option bits are set")
			}
			sub.NoLocal = opts&0x04 != 0
			sub.RetainAsPublished = opts&0x08 != 0
			sub.RetainHandling = opts >> 4 & 3
			if sub.RetainHandling == 3 {
				return protocolErr(SUBSCRIBE, "retain handling is 3")
			}
			if _, _, shared := SplitShared(sub.Filter); shared && sub.NoLocal { // [MQTT-3.8.3-4]
				return protocolErr(SUBSCRIBE, "no local set on a shared subscription")
			}
		} else if opts&0xFC != 0 { // [MQTT-3-8.3-4] (3.1.1)
			return malformed(SUBSCRIBE, "reserved bits of requested QoS are set")
		}
		subs = append(subs, sub)
	}
	s.Subscriptions = subs
	if len(subs) == 0 { // [MQTT-3.8.3-3] (3.1.1 and 5.0)
		return protocolErr(SUBSCRIBE, "no topic filter")
	}
	return nil
}

// Encode appends the SUBSCRIBE packet for protocol version v.
func (s *Subscribe) Encode(dst []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 {
		return dst, protocolErr(SUBSCRIBE, "packet identifier is zero")
	}
	if len(s.Subscriptions) == 0 {
		return dst, protocolErr(SUBSCRIBE, "no topic filter")
	}
	rl := 2
	ps := 0
	if v == Version5 {
		if err := s.Properties.check(SUBSCRIBE); err != nil {
			return dst, err
		}
		ps = s.Properties.size()
		rl += vbiLen(ps) + ps
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		if len(sub.Filter) > 65535 || sub.QoS > ExactlyOnce || sub.RetainHandling > 2 {
			return dst, protocolErr(SUBSCRIBE, "invalid subscription "+sub.Filter)
		}
		rl += 3 + len(sub.Filter)
	}
	b, err := appendHeader(dst, SUBSCRIBE, fixedFlags[SUBSCRIBE], rl)
	if err != nil {
		return dst, err
	}
	b = appendU16(b, s.PacketID)
	if v == Version5 {
		b = s.Properties.appendTo(b, ps)
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		b = appendString(b, sub.Filter)
		opts := byte(sub.QoS)
		if v == Version5 {
			if sub.NoLocal {
				opts |= 0x04
			}
			if sub.RetainAsPublished {
				opts |= 0x08
			}
			opts |= sub.RetainHandling << 4
		}
		b = append(b, opts)
	}
	return b, nil
}

// Suback is the SUBACK packet (section 3.9): one reason code per topic filter, in
// order. Before 5.0 only GrantedQoS0, GrantedQoS1, GrantedQoS2 and 0x80 exist;
// other failure codes are sent to 3.x clients as 0x80.
type Suback struct {
	PacketID    uint16
	Properties  Properties // 5.0 only
	ReasonCodes []ReasonCode
}

func (s *Suback) decode(v Version, _ byte, body []byte) error {
	p := parser{b: body, t: SUBACK}
	var err error
	if s.PacketID, err = p.u16("packet identifier"); err != nil {
		return err
	}
	if s.PacketID == 0 { // [MQTT-2.2.1-3]
		return malformed(SUBACK, "packet identifier is zero")
	}
	if v == Version5 {
		if err := s.Properties.decode(&p, SUBACK, false); err != nil {
			return err
		}
	} else {
		s.Properties.Reset()
	}
	codes := s.ReasonCodes[:0]
	for p.remaining() > 0 {
		c, _ := p.byte("reason code")
		rc := ReasonCode(c)
		if v == Version5 && !rc.ValidFor(SUBACK) || v != Version5 && rc > GrantedQoS2 && rc != UnspecifiedError {
			return protocolErr(SUBACK, "invalid reason code "+rc.String())
		}
		codes = append(codes, rc)
	}
	s.ReasonCodes = codes
	if len(codes) == 0 {
		return protocolErr(SUBACK, "no reason code")
	}
	return nil
}

// Encode appends the SUBACK packet for protocol version v.
func (s *Suback) Encode(dst []byte, v Version) ([]byte, error) {
	rl := 2 + len(s.ReasonCodes)
	ps := 0
	if v == Version5 {
		if err := s.Properties.check(SUBACK); err != nil {
			return dst, err
		}
		ps = s.Properties.size()
		rl += vbiLen(ps) + ps
	}
	b, err := appendHeader(dst, SUBACK, 0, rl)
	if err != nil {
		return dst, err
	}
	b = appendU16(b, s.PacketID)
	if v == Version5 {
		b = s.Properties.appendTo(b, ps)
	}
	for _, rc := range s.ReasonCodes {
		if v != Version5 && rc > GrantedQoS2 {
			rc = UnspecifiedError // the 3.x failure return code 0x80
		}
		b = append(b, byte(rc))
	}
	return b, nil
}

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // 5.0: user properties
	Filters    []string
}

func (u *Unsubscribe) decode(v Version, _ byte, body []byte) error {
	p := parser{b: body, t: UNSUBSCRIBE}
	var err error
	if u.PacketID, err = p.u16("packet identifier"); err != nil {
		return err
	}
	if u.PacketID == 0 { // [MQTT-2.2.1-3]
		return malformed(UNSUBSCRIBE, "packet identifier is zero")
	}
	if v == Version5 {
		if err := u.Properties.decode(&p, UNSUBSCRIBE, false); err != nil {
			return err
		}
	} else {
		u.Properties.Reset()
	}
	filters := u.Filters[:0]
	for p.remaining() > 0 {
		var prev string
		if i := len(filters); i < cap(filters) {
			prev = filters[:i+1][i]
		}
		f, err := p.str("topic filter", prev)
		if err != nil {
			return err
		}
		filters = append(filters, f)
	}
	u.Filters = filters
	if len(filters) == 0 { // [MQTT-3.10.3-2]
		return protocolErr(UNSUBSCRIBE, "no topic filter")
	}
	return nil
}

// Encode appends the UNSUBSCRIBE packet for protocol version v.
func (u *Unsubscribe) Encode(dst []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return dst, protocolErr(UNSUBSCRIBE, "packet identifier is zero")
	}
	if len(u.Filters) == 0 {
		return dst, protocolErr(UNSUBSCRIBE, "no topic filter")
	}
	rl := 2
	ps := 0
	if v == Version5 {
		if err := u.Properties.check(UNSUBSCRIBE); err != nil {
			return dst, err
		}
		ps = u.Properties.size()
		rl += vbiLen(ps) + ps
	}
	for _, f := range u.Filters {
		if len(f) > 65535 {
			return dst, protocolErr(UNSUBSCRIBE, "topic filter longer than 65535 bytes")
		}
		rl += 2 + len(f)
	}
	b, err := appendHeader(dst, UNSUBSCRIBE, fixedFlags[UNSUBSCRIBE], rl)
	if err != nil {
		return dst, err
	}
	b = appendU16(b, u.PacketID)
	if v == Version5 {
		b = u.Properties.appendTo(b, ps)
	}
	for _, f := range u.Filters {
		b = appendString(b, f)
	}
	return b, nil
}

// Unsuback is the UNSUBACK packet (section 3.11). Before 5.0 it carries only the
// packet identifier; ReasonCodes and Properties are 5.0 only.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

func (u *Unsuback) decode(v Version, _ byte, body []byte) error {
	p := parser{b: body, t: UNSUBACK}
	var err error
	if u.PacketID, err = p.u16("packet identifier"); err != nil {
		return err
	}
	if u.PacketID == 0 { // [MQTT-2.2.1-3]
		return malformed(UNSUBACK, "packet identifier is zero")
	}
	codes := u.ReasonCodes[:0]
	if v != Version5 {
		u.Properties.Reset()
		u.ReasonCodes = codes
		if p.remaining() != 0 {
			return malformed(UNSUBACK, "bytes after the packet identifier")
		}
		return nil
	}
	if err := u.Properties.decode(&p, UNSUBACK, false); err != nil {
		return err
	}
	for p.remaining() > 0 {
		c, _ := p.byte("reason code")
		if !ReasonCode(c).ValidFor(UNSUBACK) {
			return protocolErr(UNSUBACK, "invalid reason code "+ReasonCode(c).String())
		}
		codes = append(codes, ReasonCode(c))
	}
	u.ReasonCodes = codes
	if len(codes) == 0 {
		return protocolErr(UNSUBACK, "no reason code")
	}
	return nil
}

// Encode appends the UNSUBACK packet for protocol version v.
func (u *Unsuback) Encode(dst []byte, v Version) ([]byte, error) {
	if v != Version5 {
		b, _ := appendHeader(dst, UNSUBACK, 0, 2)
		return appendU16(b, u.PacketID), nil
	}
	if err := u.Properties.check(UNSUBACK); err != nil {
		return dst, err
	}
	ps := u.Properties.size()
	b, err := appendHeader(dst, UNSUBACK, 0, 2+vbiLen(ps)+ps+len(u.ReasonCodes))
	if err != nil {
		return dst, err
	}
	b = appendU16(b, u.PacketID)
	b = u.Properties.appendTo(b, ps)
	for _, rc := range u.ReasonCodes {
		b = append(b, byte(rc))
	}
	return b, nil
}
