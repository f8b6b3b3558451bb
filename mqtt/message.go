package mqtt

import (
	"strconv"
	"time"
)

// Message is an Application Message as a broker moves it from a publisher to its
// receivers: the topic, the payload and the properties that travel with it
// (section 3.3.2.3 lists which are forwarded unaltered).
//
// A Message is immutable once published: receivers share it, and its Payload and
// Properties, without copying. What differs per receiver (QoS, packet identifier,
// DUP, subscription identifiers, topic alias, the RETAIN flag as sent) is decided
// when the PUBLISH for that receiver is built.
type Message struct {
	Topic   string
	Payload []byte
	QoS     QoS  // the QoS it was published with
	Retain  bool // the RETAIN flag it was published with
	// Properties holds the forwarded properties of an MQTT 5 PUBLISH: payload format
	// indicator, content type, response topic, correlation data and user properties.
	// Message Expiry Interval is kept as Expiry instead. Nil when there are none.
	Properties *Properties
	// Expiry is when the message expires; the zero time means never.
	Expiry time.Time
	// Origin is the client identifier of the publisher, for No Local; empty for
	// messages the broker makes itself.
	Origin string
}

// Expired reports whether the message has expired at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expiry.IsZero() && !now.Before(m.Expiry)
}

// NewMessage makes a Message from a decoded PUBLISH received at now, copying the
// payload and the forwarded properties out of the decoder's buffers. origin is the
// publisher's client identifier.
func NewMessage(p *Publish, origin string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, QoS: p.QoS, Retain: p.Retain, Origin: origin}
	if len(p.Payload) > 0 {
		m.Payload = append(make([]byte, 0, len(p.Payload)), p.Payload...)
	}
	pp := &p.Properties
	if pp.Has(PropMessageExpiry) {
		m.Expiry = now.Add(time.Duration(pp.MessageExpiry) * time.Second)
	}
	const forwarded = 1<<PropPayloadFormat | 1<<PropContentType | 1<<PropResponseTopic | 1<<PropCorrelationData
	if pp.present&forwarded != 0 || len(pp.User) > 0 {
		fp := &Properties{present: pp.present & forwarded}
		fp.PayloadFormat = pp.PayloadFormat
		fp.ContentType = pp.ContentType
		fp.ResponseTopic = pp.ResponseTopic
		if pp.Has(PropCorrelationData) {
			fp.CorrelationData = append([]byte{}, pp.CorrelationData...)
		}
		if len(pp.User) > 0 {
			fp.User = append([]StringPair(nil), pp.User...)
		}
		m.Properties = fp
	}
	return m
}

// Fill sets p to carry m to a receiver at now, with the given QoS and RETAIN flag.
// The packet identifier, DUP, subscription identifiers and topic alias are the
// caller's. p shares m's payload and strings; it does not allocate unless p's
// user property storage must grow. When the message has an expiry, the Message
// Expiry Interval sent is the time that remains, rounded up [MQTT-3.3.2-6].
func (m *Message) Fill(p *Publish, qos QoS, retain bool, now time.Time) {
	p.Dup = false
	p.QoS = qos
	p.Retain = retain
	p.Topic = m.Topic
	p.Payload = m.Payload
	p.PacketID = 0
	p.Properties.Reset()
	if mp := m.Properties; mp != nil {
		p.Properties.present = mp.present
		p.Properties.PayloadFormat = mp.PayloadFormat
		p.Properties.ContentType = mp.ContentType
		p.Properties.ResponseTopic = mp.ResponseTopic
		p.Properties.CorrelationData = mp.CorrelationData
		p.Properties.User = append(p.Properties.User, mp.User...)
	}
	if !m.Expiry.IsZero() {
		left := m.Expiry.Sub(now)
		secs := uint32(0)
		if left > 0 {
			secs = uint32((left + time.Second - 1) / time.Second)
		}
		p.Properties.MessageExpiry = secs
		p.Properties.Set(PropMessageExpiry)
	}
}

// messageFormat is the first byte of a message encoded by AppendBinary.
const messageFormat = 1

// AppendBinary appends m in a form that UnmarshalMessage reads back, for stores:
// a format byte, the expiry in Unix nanoseconds (0 for none), the origin, then the
// message as an MQTT 5 PUBLISH with its forwarded properties.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, messageFormat)
	var exp int64
	if !m.Expiry.IsZero() {
		exp = m.Expiry.UnixNano()
	}
	dst = appendU32(dst, uint32(uint64(exp)>>32))
	dst = appendU32(dst, uint32(exp))
	if len(m.Origin) > 65535 {
		return nil, &Error{Code: ImplementationSpecificError, Reason: "origin longer than 65535 bytes"}
	}
	dst = appendString(dst, m.Origin)
	p := Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload}
	if p.QoS > AtMostOnce {
		p.PacketID = 1
	}
	if m.Properties != nil {
		p.Properties = *m.Properties
	}
	return p.Encode(dst, Version5)
}

// UnmarshalMessage reads a message written by AppendBinary. The message does not
// alias b.
func UnmarshalMessage(b []byte) (*Message, error) {
	ps := parser{b: b}
	format, err := ps.byte("format")
	if err != nil {
		return nil, err
	}
	if format != messageFormat {
		return nil, malformed(0, "unknown message format "+strconv.Itoa(int(format)))
	}
	hi, err := ps.u32("expiry")
	if err != nil {
		return nil, err
	}
	lo, err := ps.u32("expiry")
	if err != nil {
		return nil, err
	}
	origin, err := ps.str("origin", "")
	if err != nil {
		return nil, err
	}
	p, _, err := Decode(b[ps.off:], Version5, 0)
	if err != nil {
		return nil, err
	}
	pub, ok := p.(*Publish)
	if !ok {
		return nil, malformed(0, "stored message is not a PUBLISH")
	}
	m := NewMessage(pub, origin, time.Time{})
	m.Expiry = time.Time{}
	if exp := int64(uint64(hi)<<32 | uint64(lo)); exp != 0 {
		m.Expiry = time.Unix(0, exp)
	}
	return m, nil
}
