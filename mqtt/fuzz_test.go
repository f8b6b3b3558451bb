package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// The fuzzers read their input as a stream of packets of one protocol version, both
// with Decode and with a Reader, and check for each packet that:
//
//   - neither panics;
//   - both agree: the same packets, or the same reason code (a Reader that meets the
//     end of the stream inside a packet returns io.ErrUnexpectedEOF where Decode,
//     given the same bytes, reports a malformed packet);
//   - a decoded packet encodes, decodes again to an equal packet, and encodes again
//     to the same bytes;
//   - a Reader without a size limit allocates about what arrived, not what a fixed
//     header claims.
//
// The second argument chooses how the Reader's stream hands out the input: the
// low five bits give the most bytes one Read returns, bit 5 makes the last Read
// return io.EOF with its data, and the top two bits choose the bufio.Reader's size.

func FuzzDecodeV31(f *testing.F)  { fuzzDecode(f, Version31) }
func FuzzDecodeV311(f *testing.F) { fuzzDecode(f, Version311) }
func FuzzDecodeV5(f *testing.F)   { fuzzDecode(f, Version5) }

// fuzzMaxSize is the maximum packet size both decoders are given.
const fuzzMaxSize = 1 << 20

// fuzzBufSizes are the bufio.Reader sizes the second fuzz argument chooses from: the
// smallest sends nearly every body through the Reader's copying path.
var fuzzBufSizes = [4]int{16, 61, 4096, 4096}

func fuzzDecode(f *testing.F, v Version) {
	for i, b := range fuzzSeeds(f, v) {
		f.Add(b, byte(i*37))
	}
	f.Fuzz(func(t *testing.T, b []byte, split byte) {
		fuzzCheckStream(t, b, v, split)
		fuzzCheckAlloc(t, b, v)
	})
}

// fuzzSeeds returns the seed corpus for version v: every packet type valid in v,
// encoded from structs, the same packets as one stream, a stream that switches
// version at its CONNECT, a packet larger than a bufio.Reader's buffer, and the
// malformed rows of version v.
func fuzzSeeds(tb testing.TB, v Version) [][]byte {
	tb.Helper()
	var seeds [][]byte
	var stream []byte
	for _, p := range fuzzSeedPackets(v) {
		b, err := p.Encode(nil, v)
		if err != nil {
			tb.Fatalf("encode seed %v: %v", p.Type(), err)
		}
		if _, _, err := Decode(b, v, 0); err != nil {
			tb.Fatalf("decode seed %v: %v", p.Type(), err)
		}
		seeds = append(seeds, b)
		stream = append(stream, b...)
	}
	seeds = append(seeds, stream)

	other := Version5 // a CONNECT read as v may carry another version
	if v == Version5 {
		other = Version311
	}
	var switched []byte
	for _, p := range fuzzSeedPackets(other)[:4] { // CONNECT, CONNACK and two PUBLISH
		b, err := p.Encode(nil, other)
		if err != nil {
			tb.Fatalf("encode seed %v: %v", p.Type(), err)
		}
		switched = append(switched, b...)
	}
	seeds = append(seeds, switched)

	big := &Publish{QoS: ExactlyOnce, PacketID: 77, Topic: "bulk/data", Payload: bytes.Repeat([]byte("0123456789"), 500)}
	b, err := big.Encode(nil, v)
	if err != nil {
		tb.Fatalf("encode large PUBLISH: %v", err)
	}
	seeds = append(seeds, b)

	for _, tc := range malformedCases {
		if tc.v == v {
			seeds = append(seeds, hexBytes(tb, tc.bytes))
		}
	}
	// A fixed header claiming 200 MiB, then 10 bytes.
	seeds = append(seeds, []byte{0x30, 0x80, 0x80, 0x80, 0x64, 0x00, 0x03, 'a', '/', 'b', 1, 2, 3, 4, 5})
	return seeds
}

// fuzzSeedPackets returns one valid packet of every type version v has, CONNECT
// first, with most fields and, in 5.0, most properties set.
func fuzzSeedPackets(v Version) []Packet {
	connect := &Connect{Version: v, CleanStart: true, KeepAlive: 30, ClientID: "client-1",
		WillFlag: true, WillQoS: AtLeastOnce, WillRetain: true, WillTopic: "clients/1/status", WillPayload: []byte("offline"),
		UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0x00, 0xff, 's'}}
	connack := &Connack{SessionPresent: true}
	publish := &Publish{Dup: true, QoS: AtLeastOnce, Retain: true, Topic: "sensors/t1", PacketID: 1, Payload: []byte("21.5")}
	puback := &Puback{PacketID: 1}
	pubrec := &Pubrec{PacketID: 2}
	pubrel := &Pubrel{PacketID: 2}
	pubcomp := &Pubcomp{PacketID: 2}
	subscribe := &Subscribe{PacketID: 3, Subscriptions: []Subscription{
		{Filter: "sensors/+/temp", QoS: AtLeastOnce},
		{Filter: "alerts/#", QoS: ExactlyOnce},
		{Filter: "$share/group/jobs", QoS: AtMostOnce},
	}}
	suback := &Suback{PacketID: 3, ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, UnspecifiedError}}
	unsubscribe := &Unsubscribe{PacketID: 4, Filters: []string{"sensors/+/temp", "alerts/#"}}
	unsuback := &Unsuback{PacketID: 4}
	disconnect := &Disconnect{}
	packets := []Packet{
		connect,
		connack,
		publish,
		&Publish{QoS: ExactlyOnce, Topic: "a", PacketID: 65535},
		&Publish{Topic: "$SYS/uptime", Payload: []byte{}},
		&Connect{Version: v, ClientID: ""},
		&Connack{ReasonCode: NotAuthorized},
		puback, pubrec, pubrel, pubcomp,
		subscribe, suback, unsubscribe, unsuback,
		&Pingreq{}, &Pingresp{},
		disconnect,
	}
	if v != Version5 {
		return packets
	}

	cp := &connect.Properties
	cp.SessionExpiry, cp.ReceiveMaximum, cp.MaximumPacketSize, cp.TopicAliasMaximum = 3600, 20, 65536, 10
	cp.RequestResponseInfo, cp.RequestProblemInfo = 1, 0
	cp.AuthMethod, cp.AuthData = "SCRAM-SHA-256", []byte{1, 2, 3}
	for _, id := range []PropertyID{PropSessionExpiry, PropReceiveMaximum, PropMaximumPacketSize, PropTopicAliasMaximum,
		PropRequestResponseInfo, PropRequestProblemInfo, PropAuthMethod, PropAuthData} {
		cp.Set(id)
	}
	cp.User = []StringPair{{"region", "eu"}, {"region", "us"}}
	wp := &connect.WillProperties
	wp.WillDelay, wp.PayloadFormat, wp.MessageExpiry = 5, 1, 60
	wp.ContentType, wp.ResponseTopic, wp.CorrelationData = "text/plain", "clients/1/reply", []byte("id-7")
	for _, id := range []PropertyID{PropWillDelay, PropPayloadFormat, PropMessageExpiry, PropContentType,
		PropResponseTopic, PropCorrelationData} {
		wp.Set(id)
	}
	wp.User = []StringPair{{"k", "v"}}

	ap := &connack.Properties
	ap.SessionExpiry, ap.ReceiveMaximum, ap.MaximumQoS, ap.RetainAvailable = 600, 100, 1, 0
	ap.MaximumPacketSize, ap.AssignedClientID, ap.TopicAliasMaximum = 1<<20, "auto-1", 16
	ap.ReasonString, ap.WildcardSubAvailable, ap.SubIDAvailable, ap.SharedSubAvailable = "welcome", 1, 1, 0
	ap.ServerKeepAlive, ap.ResponseInfo, ap.ServerReference = 45, "replies/", "other:1883"
	ap.AuthMethod, ap.AuthData = "SCRAM-SHA-256", []byte{4, 5}
	for _, id := range []PropertyID{PropSessionExpiry, PropReceiveMaximum, PropMaximumQoS, PropRetainAvailable,
		PropMaximumPacketSize, PropAssignedClientID, PropTopicAliasMaximum, PropReasonString,
		PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable, PropServerKeepAlive,
		PropResponseInfo, PropServerReference, PropAuthMethod, PropAuthData} {
		ap.Set(id)
	}
	ap.User = []StringPair{{"node", "a"}}

	pp := &publish.Properties
	pp.PayloadFormat, pp.MessageExpiry, pp.TopicAlias = 1, 30, 3
	pp.ResponseTopic, pp.CorrelationData, pp.ContentType = "reply/t1", []byte{9, 9}, "text/plain"
	for _, id := range []PropertyID{PropPayloadFormat, PropMessageExpiry, PropTopicAlias, PropResponseTopic,
		PropCorrelationData, PropContentType} {
		pp.Set(id)
	}
	pp.SubscriptionIDs = []uint32{1, 300, MaxSubscriptionID}
	pp.User = []StringPair{{"unit", "C"}}

	aliased := &Publish{Topic: "", Payload: []byte("by alias")}
	aliased.Properties.TopicAlias = 3
	aliased.Properties.Set(PropTopicAlias)

	for _, a := range []*Ack{(*Ack)(puback), (*Ack)(pubrec), (*Ack)(pubcomp)} {
		a.ReasonCode = Success
		a.Properties.ReasonString = "ok"
		a.Properties.Set(PropReasonString)
		a.Properties.User = []StringPair{{"a", "b"}}
	}
	puback.ReasonCode = NoMatchingSubscribers
	pubrec.ReasonCode = QuotaExceeded
	pubrel.ReasonCode = PacketIdentifierNotFound

	subscribe.Properties.SubscriptionIDs = []uint32{42}
	subscribe.Properties.User = []StringPair{{"s", "1"}}
	subscribe.Subscriptions[0].NoLocal = true
	subscribe.Subscriptions[0].RetainAsPublished = true
	subscribe.Subscriptions[1].RetainHandling = 2
	subscribe.Subscriptions[2].RetainHandling = 1

	suback.ReasonCodes = []ReasonCode{GrantedQoS1, GrantedQoS2, SharedSubscriptionsNotSupported}
	suback.Properties.ReasonString = "partly"
	suback.Properties.Set(PropReasonString)
	unsubscribe.Properties.User = []StringPair{{"u", "2"}}
	unsuback.ReasonCodes = []ReasonCode{Success, NoSubscriptionExisted}

	disconnect.ReasonCode = ServerMoved
	dp := &disconnect.Properties
	dp.SessionExpiry, dp.ReasonString, dp.ServerReference = 0, "moving", "other:1883"
	dp.Set(PropSessionExpiry)
	dp.Set(PropReasonString)
	dp.Set(PropServerReference)

	auth := &Auth{ReasonCode: ContinueAuthentication}
	auth.Properties.AuthMethod, auth.Properties.AuthData = "SCRAM-SHA-256", []byte("client-final")
	auth.Properties.Set(PropAuthMethod)
	auth.Properties.Set(PropAuthData)

	return append(packets, aliased, auth, &Auth{}, &Puback{PacketID: 5, ReasonCode: Success}, &Disconnect{ReasonCode: DisconnectWithWillMessage})
}

// fuzzCheckStream reads b as a stream of packets of version v with Decode and with a
// Reader, packet by packet, until the end of b or the first error.
func fuzzCheckStream(t *testing.T, b []byte, v Version, split byte) {
	sr := &splitReader{data: b, step: int(split&0x1f) + 1, eofWithData: split&0x20 != 0}
	r := NewReader(bufio.NewReaderSize(sr, fuzzBufSizes[split>>6]))
	r.Version = v
	r.MaxPacketSize = fuzzMaxSize
	dv := v // the version Decode reads as, following the Reader across a CONNECT
	for off := 0; ; {
		rp, rerr := r.ReadPacket()
		if off == len(b) {
			if rerr != io.EOF {
				t.Fatalf("at the end of the input the Reader returned %v, %v; want io.EOF", rp, rerr)
			}
			return
		}
		dp, n, derr := Decode(b[off:], dv, fuzzMaxSize)
		if derr != nil || rerr != nil {
			fuzzSameError(t, b[off:], rerr, derr)
			return
		}
		if n < 2 || n > len(b)-off {
			t.Fatalf("Decode took %d bytes of %d", n, len(b)-off)
		}
		if !equalPackets(rp, dp) {
			t.Fatalf("packet at byte %d:\nReader %#v\nDecode %#v", off, rp, dp)
		}
		if c, ok := dp.(*Connect); ok {
			dv = c.Version
		}
		fuzzRoundTrip(t, dp, dv)
		off += n
	}
}

// fuzzSameError checks that the Reader's error rerr and Decode's error derr, for the
// packet at the front of b, report the same violation.
func fuzzSameError(t *testing.T, b []byte, rerr, derr error) {
	t.Helper()
	var de *Error
	if !errors.As(derr, &de) {
		t.Fatalf("Decode returned %v and the Reader %v; want both to fail with an *Error", derr, rerr)
	}
	if rerr == io.ErrUnexpectedEOF {
		if de.Code != MalformedPacket || !fuzzCutShort(b) {
			t.Fatalf("the Reader met the end of the stream, Decode returned %v", derr)
		}
		return
	}
	var re *Error
	if !errors.As(rerr, &re) || re.Code != de.Code {
		t.Fatalf("the Reader returned %v, Decode %v", rerr, derr)
	}
}

// fuzzCutShort reports whether b ends before the packet its fixed header frames.
func fuzzCutShort(b []byte) bool {
	if len(b) < 2 {
		return true
	}
	rl, n, err := decodeVBI(b[1:])
	if err != nil {
		return err == errVBIShort
	}
	return 1+n+rl > len(b)
}

// fuzzRoundTrip encodes p as version v (a CONNECT as its own version), decodes the
// result and encodes that again: the packets must be equal and the encodings the same.
func fuzzRoundTrip(t *testing.T, p Packet, v Version) {
	t.Helper()
	enc, err := p.Encode(nil, v)
	if err != nil {
		t.Fatalf("encode decoded %#v as %v: %v", p, v, err)
	}
	p2, n, err := Decode(enc, v, 0)
	if err != nil {
		t.Fatalf("decode of the encoding % x of %#v: %v", enc, p, err)
	}
	if n != len(enc) {
		t.Fatalf("decode took %d of the %d bytes of % x", n, len(enc), enc)
	}
	if !equalPackets(p, p2) {
		t.Fatalf("decode-encode-decode as %v changed the packet:\nfirst  %#v\nsecond %#v\nencoding % x", v, p, p2, enc)
	}
	enc2, err := p2.Encode(nil, v)
	if err != nil {
		t.Fatalf("encode %#v as %v again: %v", p2, v, err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding is not stable:\nfirst  % x\nsecond % x", enc, enc2)
	}
}

// fuzzAllocSlack is what a Reader may allocate beyond a multiple of its input.
const fuzzAllocSlack = 1 << 20

// fuzzCheckAlloc reads b with no maximum packet size when its fixed header claims
// far more than b holds, and checks that the Reader allocated in proportion to b.
func fuzzCheckAlloc(t *testing.T, b []byte, v Version) {
	if len(b) < 2 {
		return
	}
	limit := uint64(fuzzAllocSlack + 8*len(b))
	if rl, _, err := decodeVBI(b[1:]); err != nil || uint64(rl) <= limit {
		return
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(bufio.NewReader(bytes.NewReader(b)))
	r.Version = v
	_, err := r.ReadPacket()
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("read a packet longer than its input")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
		t.Fatalf("allocated %d bytes for a %d-byte input: %v", alloc, len(b), err)
	}
}

// splitReader returns data at most step bytes at a time, as a network connection may.
// With eofWithData the last bytes come with io.EOF instead of before it.
type splitReader struct {
	data        []byte
	step        int
	eofWithData bool
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.data[:min(s.step, len(s.data))])
	s.data = s.data[n:]
	if len(s.data) == 0 && s.eofWithData {
		return n, io.EOF
	}
	return n, nil
}
