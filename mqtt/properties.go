package mqtt

import (
	"math/bits"
	"strconv"
)

// PropertyID is the identifier of an MQTT 5 property (section 2.2.2.2).
type PropertyID byte

// The MQTT 5 properties.
const (
	PropPayloadFormat        PropertyID = 0x01
	PropMessageExpiry        PropertyID = 0x02
	PropContentType          PropertyID = 0x03
	PropResponseTopic        PropertyID = 0x08
	PropCorrelationData      PropertyID = 0x09
	PropSubscriptionID       PropertyID = 0x0B
	PropSessionExpiry        PropertyID = 0x11
	PropAssignedClientID     PropertyID = 0x12
	PropServerKeepAlive      PropertyID = 0x13
	PropAuthMethod           PropertyID = 0x15
	PropAuthData             PropertyID = 0x16
	PropRequestProblemInfo   PropertyID = 0x17
	PropWillDelay            PropertyID = 0x18
	PropRequestResponseInfo  PropertyID = 0x19
	PropResponseInfo         PropertyID = 0x1A
	PropServerReference      PropertyID = 0x1C
	PropReasonString         PropertyID = 0x1F
	PropReceiveMaximum       PropertyID = 0x21
	PropTopicAliasMaximum    PropertyID = 0x22
	PropTopicAlias           PropertyID = 0x23
	PropMaximumQoS           PropertyID = 0x24
	PropRetainAvailable      PropertyID = 0x25
	PropUserProperty         PropertyID = 0x26
	PropMaximumPacketSize    PropertyID = 0x27
	PropWildcardSubAvailable PropertyID = 0x28
	PropSubIDAvailable       PropertyID = 0x29
	PropSharedSubAvailable   PropertyID = 0x2A
	maxPropertyID                       = 0x2A
	willProperties           PacketType = 0 // pseudo packet type for the will properties of CONNECT
)

type propKind byte

const (
	kindByte propKind = iota + 1
	kindU16
	kindU32
	kindVBI
	kindString
	kindBinary
	kindPair
)

// propSpec is one row of the property table of section 2.2.2.2: its name, data type
// and the packets that may carry it.
type propSpec struct {
	name    string
	kind    propKind
	packets uint16 // bit t set: packet type t may carry it; bit 0: will properties
}

func pk(ts ...PacketType) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

var propSpecs = [maxPropertyID + 1]propSpec{
	PropPayloadFormat:        {"payload format indicator", kindByte, pk(PUBLISH, willProperties)},
	PropMessageExpiry:        {"message expiry interval", kindU32, pk(PUBLISH, willProperties)},
	PropContentType:          {"content type", kindString, pk(PUBLISH, willProperties)},
	PropResponseTopic:        {"response topic", kindString, pk(PUBLISH, willProperties)},
	PropCorrelationData:      {"correlation data", kindBinary, pk(PUBLISH, willProperties)},
	PropSubscriptionID:       {"subscription identifier", kindVBI, pk(PUBLISH, SUBSCRIBE)},
	PropSessionExpiry:        {"session expiry interval", kindU32, pk(CONNECT, CONNACK, DISCONNECT)},
	PropAssignedClientID:     {"assigned client identifier", kindString, pk(CONNACK)},
	PropServerKeepAlive:      {"server keep alive", kindU16, pk(CONNACK)},
	PropAuthMethod:           {"authentication method", kindString, pk(CONNECT, CONNACK, AUTH)},
	PropAuthData:             {"authentication data", kindBinary, pk(CONNECT, CONNACK, AUTH)},
	PropRequestProblemInfo:   {"request problem information", kindByte, pk(CONNECT)},
	PropWillDelay:            {"will delay interval", kindU32, pk(willProperties)},
	PropRequestResponseInfo:  {"request response information", kindByte, pk(CONNECT)},
	PropResponseInfo:         {"response information", kindString, pk(CONNACK)},
	PropServerReference:      {"server reference", kindString, pk(CONNACK, DISCONNECT)},
	PropReasonString:         {"reason string", kindString, pk(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)},
	PropReceiveMaximum:       {"receive maximum", kindU16, pk(CONNECT, CONNACK)},
	PropTopicAliasMaximum:    {"topic alias maximum", kindU16, pk(CONNECT, CONNACK)},
	PropTopicAlias:           {"topic alias", kindU16, pk(PUBLISH)},
	PropMaximumQoS:           {"maximum QoS", kindByte, pk(CONNACK)},
	PropRetainAvailable:      {"retain available", kindByte, pk(CONNACK)},
	PropUserProperty:         {"user property", kindPair, pk(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH, willProperties)},
	PropMaximumPacketSize:    {"maximum packet size", kindU32, pk(CONNECT, CONNACK)},
	PropWildcardSubAvailable: {"wildcard subscription available", kindByte, pk(CONNACK)},
	PropSubIDAvailable:       {"subscription identifier available", kindByte, pk(CONNACK)},
	PropSharedSubAvailable:   {"shared subscription available", kindByte, pk(CONNACK)},
}

// String returns the property's name as the specification writes it.
func (id PropertyID) String() string {
	if int(id) < len(propSpecs) && propSpecs[id].kind != 0 {
		return propSpecs[id].name
	}
	return "property 0x" + strconv.FormatUint(uint64(id), 16)
}

// AllowedIn reports whether a packet of type t may carry property id (section 2.2.2.2).
func (id PropertyID) AllowedIn(t PacketType) bool {
	return int(id) < len(propSpecs) && propSpecs[id].packets&(1<<t) != 0
}

// Properties holds the MQTT 5 properties of a packet or of a will message. Which
// properties are present is tracked apart from their values, because for several
// of them an absent property and a zero value mean different things (an absent
// Maximum QoS means 2, an absent Message Expiry Interval means no expiry). Use Set
// after assigning a field, or the setters, and Has to test. User properties and
// subscription identifiers are present when their slices are not empty.
//
// Byte slices of decoded properties alias the decoded body only where the packet's
// documentation says so; everything else is owned by the struct.
type Properties struct {
	present uint64 // bit id: property id is present

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          string
	ResponseTopic        string
	CorrelationData      []byte
	SubscriptionIDs      []uint32 // PUBLISH may carry several; SUBSCRIBE at most one
	SessionExpiry        uint32
	AssignedClientID     string
	ServerKeepAlive      uint16
	AuthMethod           string
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	User                 []StringPair
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropertyID) bool {
	switch id {
	case PropUserProperty:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return p.present&(1<<id) != 0
}

// Set marks property id present; its value is the field's. User properties and
// subscription identifiers are present by their slices and ignore Set.
func (p *Properties) Set(id PropertyID) {
	if id != PropUserProperty && id != PropSubscriptionID && int(id) < len(propSpecs) && propSpecs[id].kind != 0 {
		p.present |= 1 << id
	}
}

// Clear marks property id absent.
func (p *Properties) Clear(id PropertyID) {
	p.present &^= 1 << id
	switch id {
	case PropUserProperty:
		p.User = p.User[:0]
	case PropSubscriptionID:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

// Reset makes every property absent, keeping the storage of the user property and
// subscription identifier slices for reuse. Binary values are dropped, not reused,
// because they may alias a decoded body.
func (p *Properties) Reset() {
	user, ids := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: user, SubscriptionIDs: ids}
}

// The getters below apply the specification's value for an absent property.

// ReceiveMax returns Receive Maximum, 65535 when absent (section 3.1.2.11.3).
func (p *Properties) ReceiveMax() uint16 {
	if p.Has(PropReceiveMaximum) {
		return p.ReceiveMaximum
	}
	return 65535
}

// MaxQoS returns Maximum QoS, 2 when absent (section 3.2.2.3.4).
func (p *Properties) MaxQoS() QoS {
	if p.Has(PropMaximumQoS) {
		return QoS(p.MaximumQoS)
	}
	return ExactlyOnce
}

// ProblemInfo reports Request Problem Information, true when absent (section 3.1.2.11.7).
func (p *Properties) ProblemInfo() bool {
	return !p.Has(PropRequestProblemInfo) || p.RequestProblemInfo == 1
}

// bytePtr and friends give the field of a property by id, for the table-driven codec.
func (p *Properties) bytePtr(id PropertyID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvailable
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	return nil
}

func (p *Properties) u16Ptr(id PropertyID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	}
	return nil
}

func (p *Properties) u32Ptr(id PropertyID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	}
	return nil
}

func (p *Properties) stringPtr(id PropertyID) *string {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

func (p *Properties) binaryPtr(id PropertyID) *[]byte {
	switch id {
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAuthData:
		return &p.AuthData
	}
	return nil
}

// decode reads a property length and the properties of a packet of type t. With
// alias set, binary values alias the body instead of being copied.
func (p *Properties) decode(ps *parser, t PacketType, alias bool) error {
	p.Reset()
	n, err := ps.vbi("property length")
	if err != nil {
		return err
	}
	if n > ps.remaining() {
		return malformed(ps.t, "property length runs past the end of the packet")
	}
	end := ps.off + n
	sub := parser{b: ps.b[:end], off: ps.off, t: ps.t}
	for sub.off < end {
		idv, err := sub.vbi("property identifier")
		if err != nil {
			return err
		}
		if idv > maxPropertyID || propSpecs[idv].kind == 0 {
			return malformed(ps.t, "unknown property identifier 0x"+strconv.FormatUint(uint64(idv), 16))
		}
		id := PropertyID(idv)
		spec := &propSpecs[id]
		if spec.packets&(1<<t) == 0 {
			return protocolErr(ps.t, spec.name+" is not allowed here")
		}
		if id != PropUserProperty && (id != PropSubscriptionID || t == SUBSCRIBE) && p.Has(id) {
			// Section 3.x.2.2: it is a Protocol Error to include a property more than once,
			// but for User Property and PUBLISH's Subscription Identifier.
			return protocolErr(ps.t, spec.name+" appears more than once")
		}
		switch spec.kind {
		case kindByte:
			v, err := sub.byte(spec.name)
			if err != nil {
				return err
			}
			if v > 1 { // every byte property takes 0 or 1, Maximum QoS included section 2.2.2.2
				return protocolErr(ps.t, spec.name+" has a value other than 0 or 1")
			}
			*p.bytePtr(id) = v
		case kindU16:
			v, err := sub.u16(spec.name)
			if err != nil {
				return err
			}
			if v == 0 && (id == PropReceiveMaximum || id == PropTopicAlias) {
				// Receive Maximum 0 and Topic Alias 0 are protocol errors.
				return protocolErr(ps.t, spec.name+" is zero")
			}
			*p.u16Ptr(id) = v
		case kindU32:
			v, err := sub.u32(spec.name)
			if err != nil {
				return err
			}
			if v == 0 && id == PropMaximumPacketSize {
				return protocolErr(ps.t, spec.name+" is zero")
			}
			*p.u32Ptr(id) = v
		case kindVBI:
			v, err := sub.vbi(spec.name)
			if err != nil {
				return err
			}
			if v == 0 { // subscription identifier, 1 to 268,435,455
				return protocolErr(ps.t, spec.name+" is zero")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
			continue
		case kindString:
			dst := p.stringPtr(id)
			s, err := sub.str(spec.name, *dst)
			if err != nil {
				return err
			}
			*dst = s
		case kindBinary:
			b, err := sub.binary(spec.name)
			if err != nil {
				return err
			}
			dst := p.binaryPtr(id)
			if alias {
				*dst = b
			} else {
				*dst = append([]byte{}, b...)
			}
		case kindPair:
			var kv StringPair
			i := len(p.User)
			if i < cap(p.User) {
				kv = p.User[:i+1][i] // reuse the strings if unchanged
			}
			if kv.Name, err = sub.str(spec.name+" name", kv.Name); err != nil {
				return err
			}
			if kv.Value, err = sub.str(spec.name+" value", kv.Value); err != nil {
				return err
			}
			p.User = append(p.User, kv)
			continue
		}
		p.present |= 1 << id
	}
	ps.off = end
	return nil
}

// size returns the encoded length of the properties, without the property length.
func (p *Properties) size() int {
	n := 0
	for m := p.present; m != 0; m &= m - 1 {
		id := PropertyID(bits.TrailingZeros64(m))
		switch propSpecs[id].kind {
		case kindByte:
			n += 2
		case kindU16:
			n += 3
		case kindU32:
			n += 5
		case kindString:
			n += 3 + len(*p.stringPtr(id))
		case kindBinary:
			n += 3 + len(*p.binaryPtr(id))
		}
	}
	for _, v := range p.SubscriptionIDs {
		n += 1 + vbiLen(int(v))
	}
	for _, kv := range p.User {
		n += 5 + len(kv.Name) + len(kv.Value)
	}
	return n
}

// allowedMask holds, per packet type (0: will properties), the presence bits of the
// properties it may carry.
var allowedMask = func() (m [AUTH + 1]uint64) {
	for id, spec := range propSpecs {
		for t := range m {
			if spec.packets&(1<<t) != 0 {
				m[t] |= 1 << id
			}
		}
	}
	return m
}()

// check verifies that the properties may be sent in a packet of type t.
func (p *Properties) check(t PacketType) error {
	if p.present&^allowedMask[t] != 0 {
		bad := PropertyID(bits.TrailingZeros64(p.present &^ allowedMask[t]))
		return &Error{Code: ProtocolError, Packet: t, Reason: "cannot send " + bad.String() + " in this packet"}
	}
	if len(p.User) > 0 && allowedMask[t]&(1<<PropUserProperty) == 0 {
		return &Error{Code: ProtocolError, Packet: t, Reason: "cannot send user property in this packet"}
	}
	if len(p.SubscriptionIDs) > 0 {
		if allowedMask[t]&(1<<PropSubscriptionID) == 0 || t == SUBSCRIBE && len(p.SubscriptionIDs) > 1 {
			return &Error{Code: ProtocolError, Packet: t, Reason: "cannot send these subscription identifiers in this packet"}
		}
		for _, v := range p.SubscriptionIDs {
			if v == 0 || v > MaxSubscriptionID {
				return &Error{Code: ProtocolError, Packet: t, Reason: "subscription identifier out of range"}
			}
		}
	}
	for m := p.present; m != 0; m &= m - 1 {
		id := PropertyID(bits.TrailingZeros64(m))
		switch propSpecs[id].kind {
		case kindString:
			if len(*p.stringPtr(id)) > 65535 {
				return &Error{Code: ProtocolError, Packet: t, Reason: id.String() + " longer than 65535 bytes"}
			}
		case kindBinary:
			if len(*p.binaryPtr(id)) > 65535 {
				return &Error{Code: ProtocolError, Packet: t, Reason: id.String() + " longer than 65535 bytes"}
			}
		}
	}
	for _, kv := range p.User {
		if len(kv.Name) > 65535 || len(kv.Value) > 65535 {
			return &Error{Code: ProtocolError, Packet: t, Reason: "user property longer than 65535 bytes"}
		}
	}
	return nil
}

// appendTo appends the property length and the properties, in the order of their
// identifiers. size is p.size().
func (p *Properties) appendTo(b []byte, size int) []byte {
	b = appendVBI(b, size)
	if p.Empty() {
		return b
	}
	for id := PropertyID(1); id <= maxPropertyID; id++ {
		switch id {
		case PropSubscriptionID:
			for _, v := range p.SubscriptionIDs {
				b = append(b, byte(PropSubscriptionID))
				b = appendVBI(b, int(v))
			}
			continue
		case PropUserProperty:
			for _, kv := range p.User {
				b = append(b, byte(PropUserProperty))
				b = appendString(b, kv.Name)
				b = appendString(b, kv.Value)
			}
			continue
		}
		if p.present&(1<<id) == 0 {
			continue
		}
		b = append(b, byte(id))
		switch propSpecs[id].kind {
		case kindByte:
			b = append(b, *p.bytePtr(id))
		case kindU16:
			b = appendU16(b, *p.u16Ptr(id))
		case kindU32:
			b = appendU32(b, *p.u32Ptr(id))
		case kindString:
			b = appendString(b, *p.stringPtr(id))
		case kindBinary:
			b = appendString(b, *p.binaryPtr(id))
		}
	}
	return b
}
