package mqtt

import "strconv"

// Protocol names carried in CONNECT.
const (
	ProtocolNameV31 = "MQIsdp" // MQTT 3.1
	ProtocolName    = "MQTT"   // MQTT 3.1.1 and 5.0
)

// Connect flags (section 3.1.2.3).
const (
	connectReserved     = 0x01
	connectCleanStart   = 0x02
	connectWill         = 0x04
	connectWillQoSShift = 3
	connectWillRetain   = 0x20
	connectPassword     = 0x40
	connectUsername     = 0x80
)

// Connect is the CONNECT packet (section 3.1). Decoded, its strings and byte slices
// are owned by the struct. When decoding fails, Version holds the protocol level
// if it was read, so that a broker can answer in the client's version.
type Connect struct {
	ProtocolName string  // "MQTT", or "MQIsdp" for 3.1
	Version      Version // protocol level
	CleanStart   bool    // Clean Start in 5.0, Clean Session in 3.x
	KeepAlive    uint16  // seconds; 0 disables keep alive
	Properties   Properties
	ClientID     string

	WillFlag       bool
	WillQoS        QoS
	WillRetain     bool
	WillProperties Properties // 5.0 only
	WillTopic      string
	WillPayload    []byte

	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
}

func (c *Connect) reset() {
	props, willProps := c.Properties, c.WillProperties
	props.Reset()
	willProps.Reset()
	*c = Connect{Properties: props, WillProperties: willProps}
}

func (c *Connect) decode(_ Version, _ byte, body []byte) error {
	c.reset()
	p := parser{b: body, t: CONNECT}
	name, err := p.str("protocol name", "")
	if err != nil {
		return err
	}
	c.ProtocolName = name
	level, err := p.byte("protocol level")
	if err != nil {
		return err
	}
	c.Version = Version(level)
	switch {
	case name == ProtocolName && (c.Version == Version311 || c.Version == Version5):
	case name == ProtocolNameV31 && c.Version == Version31:
	default: // [MQTT-3.1.2-1] [MQTT-3.1.2-2]
		return &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT, Reason: "protocol " + strconv.Quote(name) + " level " + c.Version.String()}
	}
	flags, err := p.byte("connect flags")
	if err != nil {
		return err
	}
	if flags&connectReserved != 0 { // [MQTT-3.1.2-3]
		return malformed(CONNECT, "reserved connect flag is set")
	}
	c.CleanStart = flags&connectCleanStart != 0
	c.WillFlag = flags&connectWill != 0
	c.WillQoS = QoS(flags >> connectWillQoSShift & 3)
	c.WillRetain = flags&connectWillRetain != 0
	c.UsernameFlag = flags&connectUsername != 0
	c.PasswordFlag = flags&connectPassword != 0
	if c.WillQoS > ExactlyOnce { // [MQTT-3.1.2-12] (5.0), [MQTT-3.1.2-14] (3.1.1)
		return malformed(CONNECT, "will QoS is 3")
	}
	if !c.WillFlag && (c.WillQoS != 0 || c.WillRetain) { // [MQTT-3.1.2-11] [MQTT-3.1.2-13]
		return malformed(CONNECT, "will QoS or will retain set without the will flag")
	}
	if c.Version < Version5 && c.PasswordFlag && !c.UsernameFlag { // [MQTT-3.1.2-22] (3.1.1)
		return malformed(CONNECT, "password flag set without the user name flag")
	}
	if c.KeepAlive, err = p.u16("keep alive"); err != nil {
		return err
	}
	if c.Version == Version5 {
		if err := c.Properties.decode(&p, CONNECT, false); err != nil {
			return err
		}
		if c.Properties.Has(PropAuthData) && !c.Properties.Has(PropAuthMethod) { // section 3.1.2.11.10
			return protocolErr(CONNECT, "authentication data without authentication method")
		}
	}
	if c.ClientID, err = p.str("client identifier", ""); err != nil { // [MQTT-3.1.3-3]
		return err
	}
	if c.WillFlag {
		if c.Version == Version5 {
			if err := c.WillProperties.decode(&p, willProperties, false); err != nil {
				return err
			}
		}
		if wp := &c.WillProperties; wp.Has(PropResponseTopic) && ValidTopicName(wp.ResponseTopic) != nil {
			return protocolErr(CONNECT, "will response topic is not a valid topic name") // section 3.1.3.2.5
		}
		if c.WillTopic, err = p.str("will topic", ""); err != nil {
			return err
		}
		if err := ValidTopicName(c.WillTopic); err != nil {
			return &Error{Code: TopicNameInvalid, Packet: CONNECT, Reason: "will topic: " + err.(*Error).Reason}
		}
		payload, err := p.binary("will payload")
		if err != nil {
			return err
		}
		c.WillPayload = append([]byte{}, payload...)
	}
	if c.UsernameFlag {
		if c.Username, err = p.str("user name", ""); err != nil {
			return err
		}
	}
	if c.PasswordFlag {
		pw, err := p.binary("password")
		if err != nil {
			return err
		}
		c.Password = append([]byte{}, pw...)
	}
	if p.remaining() != 0 {
		return malformed(CONNECT, "bytes after the payload")
	}
	return nil
}

// Encode appends the CONNECT packet. v is ignored: the packet carries its own
// Version, and an empty ProtocolName is filled in from it.
func (c *Connect) Encode(dst []byte, _ Version) ([]byte, error) {
	v := c.Version
	if !v.Valid() {
		return dst, &Error{Code: UnsupportedProtocolVersion, Packet: CONNECT, Reason: "cannot encode level " + v.String()}
	}
	name := c.ProtocolName
	if name == "" {
		name = ProtocolName
		if v == Version31 {
			name = ProtocolNameV31
		}
	}
	if c.WillQoS > ExactlyOnce || (!c.WillFlag && (c.WillQoS != 0 || c.WillRetain)) {
		return dst, protocolErr(CONNECT, "will QoS or retain inconsistent with the will flag")
	}
	if v < Version5 && c.PasswordFlag && !c.UsernameFlag {
		return dst, protocolErr(CONNECT, "password without user name before MQTT 5")
	}
	if len(c.ClientID) > 65535 || len(c.WillTopic) > 65535 || len(c.WillPayload) > 65535 ||
		len(c.Username) > 65535 || len(c.Password) > 65535 {
		return dst, protocolErr(CONNECT, "a field is longer than 65535 bytes")
	}
	var flags byte
	if c.CleanStart {
		flags |= connectCleanStart
	}
	if c.WillFlag {
		flags |= connectWill | byte(c.WillQoS)<<connectWillQoSShift
		if c.WillRetain {
			flags |= connectWillRetain
		}
	}
	if c.UsernameFlag {
		flags |= connectUsername
	}
	if c.PasswordFlag {
		flags |= connectPassword
	}
	rl := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	var ps, wps int
	if v == Version5 {
		if err := c.Properties.check(CONNECT); err != nil {
			return dst, err
		}
		ps = c.Properties.size()
		rl += vbiLen(ps) + ps
	}
	if c.WillFlag {
		if v == Version5 {
			if err := c.WillProperties.check(willProperties); err != nil {
				return dst, err
			}
			wps = c.WillProperties.size()
			rl += vbiLen(wps) + wps
		}
		rl += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
	}
	if c.UsernameFlag {
		rl += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		rl += 2 + len(c.Password)
	}
	b, err := appendHeader(dst, CONNECT, 0, rl)
	if err != nil {
		return dst, err
	}
	b = appendString(b, name)
	b = append(b, byte(v), flags)
	b = appendU16(b, c.KeepAlive)
	if v == Version5 {
		b = c.Properties.appendTo(b, ps)
	}
	b = appendString(b, c.ClientID)
	if c.WillFlag {
		if v == Version5 {
			b = c.WillProperties.appendTo(b, wps)
		}
		b = appendString(b, c.WillTopic)
		b = appendString(b, c.WillPayload)
	}
	if c.UsernameFlag {
		b = appendString(b, c.Username)
	}
	if c.PasswordFlag {
		b = appendString(b, c.Password)
	}
	return b, nil
}

// Connack is the CONNACK packet (section 3.2). ReasonCode holds an MQTT 5 reason
// code in every version: 3.x return codes are mapped to and from it (0x01 is
// UnsupportedProtocolVersion, 0x02 ClientIdentifierNotValid, 0x03
// ServerUnavailable, 0x04 BadUserNameOrPassword, 0x05 NotAuthorized), and other
// reason codes are sent to 3.x clients as the nearest return code.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties // 5.0 only
}

func (c *Connack) decode(v Version, _ byte, body []byte) error {
	c.Properties.Reset()
	p := parser{b: body, t: CONNACK}
	flags, err := p.byte("acknowledge flags")
	if err != nil {
		return err
	}
	if v != Version31 && flags&^1 != 0 { // [MQTT-3.2.2-1]; 3.1 has an unused byte here
		return malformed(CONNACK, "reserved acknowledge flags are set")
	}
	c.SessionPresent = v != Version31 && flags&1 != 0
	code, err := p.byte("reason code")
	if err != nil {
		return err
	}
	if v == Version5 {
		c.ReasonCode = ReasonCode(code)
		if !c.ReasonCode.ValidFor(CONNACK) {
			return protocolErr(CONNACK, "invalid reason code "+c.ReasonCode.String())
		}
		// The property length is read leniently: a CONNACK of two bytes has no properties.
		if p.remaining() > 0 {
			if err := c.Properties.decode(&p, CONNACK, false); err != nil {
				return err
			}
		}
	} else {
		rc, ok := v5FromV3Connack(code)
		if !ok {
			return protocolErr(CONNACK, "invalid return code")
		}
		c.ReasonCode = rc
	}
	if c.SessionPresent && c.ReasonCode != Success { // [MQTT-3.2.2-6] (5.0), [MQTT-3.2.2-4] (3.1.1)
		return protocolErr(CONNACK, "session present with a refusal")
	}
	if p.remaining() != 0 {
		return malformed(CONNACK, "bytes after the variable header")
	}
	return nil
}

// Encode appends the CONNACK packet for protocol version v.
func (c *Connack) Encode(dst []byte, v Version) ([]byte, error) {
	var flags byte
	if c.SessionPresent && v != Version31 {
		flags = 1
	}
	if v != Version5 {
		b, _ := appendHeader(dst, CONNACK, 0, 2)
		return append(b, flags, v3ConnackCode(c.ReasonCode)), nil
	}
	if err := c.Properties.check(CONNACK); err != nil {
		return dst, err
	}
	ps := c.Properties.size()
	b, err := appendHeader(dst, CONNACK, 0, 2+vbiLen(ps)+ps)
	if err != nil {
		return dst, err
	}
	b = append(b, flags, byte(c.ReasonCode))
	return c.Properties.appendTo(b, ps), nil
}
