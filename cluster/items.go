package cluster

import (
	"encoding/binary"
	"fmt"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// Items a Cluster sends over node-to-node links. Integers are unsigned varints
// unless said otherwise; strings and byte strings are a varint length and the
// bytes; a message is as mqtt.Message.AppendBinary writes it, to the end.
//
//	publish:        group, message
//	retain:         stamp time (8 bytes, big endian, Unix nanoseconds), stamp node,
//	                flags (1: cleared), topic, [message when not cleared]
//	register:       request id, flags (1: keep the session), client id
//	registerReply:  request id, flags (1: found, 2: failed), count,
//	                count x (key, value)
//	handover:       count, count x (key, value): a session a leaving node hands over
const (
	itemPublish       byte = 1
	itemRetain        byte = 2
	itemRegister      byte = 3
	itemRegisterReply byte = 4
	itemHandover      byte = 5
)

const (
	maxClientIDLen = 65535
	maxRecords     = 1 << 24
)

// stamp orders the changes of one retained topic across the cluster: the later
// time wins, and the node name breaks ties (last writer wins).
type stamp struct {
	time int64
	node string
}

func (s stamp) after(o stamp) bool {
	return s.time > o.time || s.time == o.time && s.node > o.node
}

func encodePublish(m *mqtt.Message, group string) ([]byte, error) {
	b := appendString(make([]byte, 0, 64+len(m.Topic)+len(m.Payload)), group)
	return m.AppendBinary(b)
}

func decodePublish(b []byte) (m *mqtt.Message, group string, err error) {
	r := reader{b: b}
	group = r.string("group", maxFilterLen)
	if r.err != nil {
		return nil, "", r.err
	}
	if m, err = mqtt.UnmarshalMessage(r.b); err != nil {
		return nil, "", fmt.Errorf("%w: publish: %w", errMalformed, err)
	}
	return m, group, nil
}

// retainChange is a retained message set (msg not nil) or cleared on topic.
type retainChange struct {
	stamp stamp
	topic string
	msg   *mqtt.Message
}

func encodeRetain(c retainChange) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.stamp.time))
	b = appendString(b, c.stamp.node)
	if c.msg == nil {
		b = append(b, 1)
		return appendString(b, c.topic), nil
	}
	b = append(b, 0)
	b = appendString(b, c.topic)
	return c.msg.AppendBinary(b)
}

func decodeRetain(b []byte) (retainChange, error) {
	var c retainChange
	if len(b) < 8 {
		return c, fmt.Errorf("%w: retain: short", errMalformed)
	}
	c.stamp.time = int64(binary.BigEndian.Uint64(b))
	r := reader{b: b[8:]}
	c.stamp.node = r.string("stamp node", maxNameLen)
	flags := r.byte("flags")
	c.topic = r.string("topic", maxFilterLen)
	if r.err != nil {
		return c, r.err
	}
	if flags&1 != 0 {
		return c, r.end()
	}
	m, err := mqtt.UnmarshalMessage(r.b)
	if err != nil {
		return c, fmt.Errorf("%w: retain: %w", errMalformed, err)
	}
	if m.Topic != c.topic {
		return c, fmt.Errorf("%w: retain: topic %q carries a message for %q", errMalformed, c.topic, m.Topic)
	}
	c.msg = m
	return c, nil
}

func encodeRegister(id uint64, keep bool, clientID string) []byte {
	b := binary.AppendUvarint(nil, id)
	var flags byte
	if keep {
		flags = 1
	}
	return appendString(append(b, flags), clientID)
}

func decodeRegister(b []byte) (id uint64, keep bool, clientID string, err error) {
	r := reader{b: b}
	id = r.uvarint("request id")
	keep = r.byte("flags")&1 != 0
	clientID = r.string("client id", maxClientIDLen)
	return id, keep, clientID, r.end()
}

// registerReply is a node's answer to a register request.
type registerReply struct {
	found   bool
	failed  bool
	records []session.Record
}

func appendRecords(b []byte, recs []session.Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = appendString(b, r.Key)
		b = appendString(b, string(r.Value))
	}
	return b
}

func (r *reader) records() []session.Record {
	n := r.count("records", maxRecords)
	recs := make([]session.Record, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.string("record key", maxFilterLen+maxClientIDLen+64)
		v := r.string("record value", maxMessageSize)
		recs = append(recs, session.Record{Key: k, Value: []byte(v)})
	}
	return recs
}

func encodeRegisterReply(id uint64, rep registerReply) []byte {
	b := binary.AppendUvarint(nil, id)
	var flags byte
	if rep.found {
		flags |= 1
	}
	if rep.failed {
		flags |= 2
	}
	return appendRecords(append(b, flags), rep.records)
}

func decodeRegisterReply(b []byte) (uint64, registerReply, error) {
	r := reader{b: b}
	id := r.uvarint("request id")
	flags := r.byte("flags")
	rep := registerReply{found: flags&1 != 0, failed: flags&2 != 0}
	rep.records = r.records()
	if len(rep.records) == 0 {
		rep.records = nil
	}
	return id, rep, r.end()
}

func encodeHandover(recs []session.Record) []byte { return appendRecords(nil, recs) }

func decodeHandover(b []byte) ([]session.Record, error) {
	r := reader{b: b}
	recs := r.records()
	return recs, r.end()
}
