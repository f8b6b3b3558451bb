package cluster

import (
	"encoding/binary"
	"fmt"

	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/session"
)

// Items a Cluster sends over node-to-node links. Integers are unsigned varints
// unless said otherwise; strings and byte strings are a varint length and the
// bytes; a message is as mqtt.Message.AppendBinary writes it, to the end.
//
//	publish:        group, number, count, count x (node, incarnation, sequence
//	                number), message: the number identifies the message among
//	                those the sender routed (0: none); the nodes are those the
//	                sender forwarded it to, each with the version of its routes
//	                in the sender's tree
//	retain:         stamp time (8 bytes, big endian, Unix nanoseconds), stamp node,
//	                flags (1: cleared), topic, [message when not cleared]
//	register:       request id, flags (1: keep the session), client id
//	registerReply:  request id, flags (1: found, 2: failed), count,
//	                count x (key, value)
//	handover:       count, count x (key, value): a session a leaving node hands over
//	relay:          client id, QoS (1 byte), flags (1: retain), group, count,
//	                count x subscription identifier, origin node, number,
//	                message: a message for a session that moved to the receiver,
//	                as the sender matched it, and the message's identity
//	moved:          client id, incarnation, sequence number: the session the
//	                receiver exported is installed, and the sender's routes are
//	                at that version
//	fence:          node, incarnation, sequence number: answer with fenced once
//	                the routes of node at that version route messages here
//	fenced:         node, incarnation, sequence number
//	relayEnded:     client id: the sender no longer relays to the session
//	route:          a change of the sender's filters, as gossip carries it
//	routeState:     the sender's filters, as push/pull carries them
//	leaving:        no body: the sender is about to leave the cluster
const (
	itemPublish       byte = 1
	itemRetain        byte = 2
	itemRegister      byte = 3
	itemRegisterReply byte = 4
	itemHandover      byte = 5
	itemRelay         byte = 6
	itemMoved         byte = 7
	itemFence         byte = 8
	itemFenced        byte = 9
	itemRelayEnded    byte = 10
	itemRoute         byte = 11
	itemRouteState    byte = 12
	itemLeaving       byte = 13
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

// maxListLen bounds the subscription identifiers of a relay item.
const maxListLen = 1 << 16

// sentTo is a node a message was forwarded to, with the version of that node's
// routes the forwarding node routed by.
type sentTo struct {
	node string
	v    version
}

func encodePublish(m *mqtt.Message, group string, n uint64, sent []sentTo) ([]byte, error) {
	b := appendString(make([]byte, 0, 64+16*len(sent)+len(m.Topic)+len(m.Payload)), group)
	b = binary.AppendUvarint(b, n)
	b = binary.AppendUvarint(b, uint64(len(sent)))
	for _, s := range sent {
		b = appendString(b, s.node)
		b = binary.AppendUvarint(b, s.v.incarnation)
		b = binary.AppendUvarint(b, s.v.seq)
	}
	return m.AppendBinary(b)
}

func decodePublish(b []byte) (m *mqtt.Message, group string, n uint64, sent []sentTo, err error) {
	r := reader{b: b}
	group = r.string("group", maxFilterLen)
	n = r.uvarint("number")
	count := r.count("nodes", maxListLen)
	for i := 0; i < count && r.err == nil; i++ {
		s := sentTo{node: r.string("node", maxNameLen)}
		s.v.incarnation = r.uvarint("incarnation")
		s.v.seq = r.uvarint("sequence number")
		sent = append(sent, s)
	}
	if r.err != nil {
		return nil, "", 0, nil, r.err
	}
	if m, err = mqtt.UnmarshalMessage(r.b); err != nil {
		return nil, "", 0, nil, fmt.Errorf("%w: publish: %w", errMalformed, err)
	}
	return m, group, n, sent, nil
}

// relay is a message for a session that moved to the receiving node, as the
// sending node matched it.
type relay struct {
	client string
	qos    mqtt.QoS
	retain bool
	group  string
	ids    []uint32
	ref    broker.MsgRef
	msg    *mqtt.Message
}

func encodeRelay(rl relay) ([]byte, error) {
	b := appendString(make([]byte, 0, 64+len(rl.client)+len(rl.msg.Topic)+len(rl.msg.Payload)), rl.client)
	var flags byte
	if rl.retain {
		flags = 1
	}
	b = append(b, byte(rl.qos), flags)
	b = appendString(b, rl.group)
	b = binary.AppendUvarint(b, uint64(len(rl.ids)))
	for _, id := range rl.ids {
		b = binary.AppendUvarint(b, uint64(id))
	}
	b = appendString(b, rl.ref.Node)
	b = binary.AppendUvarint(b, rl.ref.N)
	return rl.msg.AppendBinary(b)
}

func decodeRelay(b []byte) (rl relay, err error) {
	r := reader{b: b}
	rl.client = r.string("client id", maxClientIDLen)
	q := r.byte("qos")
	rl.retain = r.byte("flags")&1 != 0
	rl.group = r.string("group", maxFilterLen)
	n := r.count("subscription identifiers", maxListLen)
	for i := 0; i < n && r.err == nil; i++ {
		id := r.uvarint("subscription identifier")
		if id == 0 || id > 268435455 {
			r.fail("subscription identifier")
		}
		rl.ids = append(rl.ids, uint32(id))
	}
	rl.ref.Node = r.string("origin", maxNameLen)
	rl.ref.N = r.uvarint("number")
	if r.err != nil {
		return rl, r.err
	}
	if q > byte(mqtt.ExactlyOnce) {
		return rl, fmt.Errorf("%w: relay: QoS %d", errMalformed, q)
	}
	rl.qos = mqtt.QoS(q)
	if rl.msg, err = mqtt.UnmarshalMessage(r.b); err != nil {
		return rl, fmt.Errorf("%w: relay: %w", errMalformed, err)
	}
	return rl, nil
}

// version is a point in the sequence of a node's route changes.
type version struct {
	incarnation, seq uint64
}

// covers reports whether routes at v include every change up to w.
func (v version) covers(w version) bool {
	return v.incarnation > w.incarnation || v.incarnation == w.incarnation && v.seq >= w.seq
}

func encodeVersioned(name string, v version) []byte {
	b := appendString(nil, name)
	b = binary.AppendUvarint(b, v.incarnation)
	return binary.AppendUvarint(b, v.seq)
}

func decodeVersioned(b []byte, what string, limit int) (name string, v version, err error) {
	r := reader{b: b}
	name = r.string(what, limit)
	v.incarnation = r.uvarint("incarnation")
	v.seq = r.uvarint("sequence number")
	return name, v, r.end()
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
	from    string // the node that answered; not sent
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
