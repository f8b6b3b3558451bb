package mqtt

import (
	"bytes"
	"testing"
)

// golden is one packet written out byte by byte from the specifications' figures
// and examples, with the struct it decodes to.
type golden struct {
	name   string
	v      Version
	bytes  string // annotated hex
	packet Packet
}

func props(f func(p *Properties)) Properties {
	var p Properties
	f(&p)
	return p
}

var goldens = []golden{
	// CONNECT: section 3.1.2.10 of 3.1.1 (variable header example) and 3.1.2.12 of 5.0.
	{"CONNECT 3.1.1 spec example", Version311, `
		10 1e                 // CONNECT, remaining length 30
		00 04 4d 51 54 54     // protocol name "MQTT"
		04                    // level 4
		ce                    // user name, password, will QoS 1, will flag, clean session
		00 0a                 // keep alive 10
		00 03 63 6c 69        // client id "cli"
		00 01 77              // will topic "w"
		00 03 62 79 65        // will payload "bye"
		00 01 75              // user name "u"
		00 02 70 77           // password "pw"`,
		&Connect{ProtocolName: "MQTT", Version: Version311, CleanStart: true, KeepAlive: 10, ClientID: "cli",
			WillFlag: true, WillQoS: 1, WillTopic: "w", WillPayload: []byte("bye"),
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")}},
	{"CONNECT 3.1 MQIsdp", Version31, `
		10 12                       // CONNECT, remaining length 18
		00 06 4d 51 49 73 64 70     // protocol name "MQIsdp"
		03                          // level 3
		02                          // clean session
		00 3c                       // keep alive 60
		00 04 64 65 76 31           // client id "dev1"`,
		&Connect{ProtocolName: "MQIsdp", Version: Version31, CleanStart: true, KeepAlive: 60, ClientID: "dev1"}},
	{"CONNECT 3.1.1 empty client id, will retain QoS 2", Version311, `
		10 13                 // CONNECT, remaining length 19
		00 04 4d 51 54 54     // "MQTT"
		04                    // level 4
		36                    // will retain, will QoS 2, will flag, clean session
		00 00                 // keep alive 0
		00 00                 // client id ""
		00 03 61 2f 62        // will topic "a/b"
		00 00                 // will payload empty`,
		&Connect{ProtocolName: "MQTT", Version: Version311, CleanStart: true, WillFlag: true, WillQoS: 2,
			WillRetain: true, WillTopic: "a/b", WillPayload: []byte{}}},
	{"CONNECT 5.0 spec example with session expiry", Version5, `
		10 15                 // CONNECT, remaining length 21
		00 04 4d 51 54 54     // "MQTT"
		05                    // level 5
		02                    // clean start
		00 0a                 // keep alive 10
		05                    // property length 5
		11 00 00 00 0a        // session expiry interval 10
		00 03 63 6c 69        // client id "cli"`,
		&Connect{ProtocolName: "MQTT", Version: Version5, CleanStart: true, KeepAlive: 10, ClientID: "cli",
			Properties: props(func(p *Properties) { p.SessionExpiry = 10; p.Set(PropSessionExpiry) })}},
	{"CONNECT 5.0 all properties and will properties", Version5, `
		10 7a                 // CONNECT, remaining length 122
		00 04 4d 51 54 54     // "MQTT"
		05                    // level 5
		ec                    // user name, password, will retain, will QoS 1, will flag
		00 1e                 // keep alive 30
		28                    // property length 40
		11 00 00 0e 10        // session expiry interval 3600
		15 00 05 53 43 52 41 4d // authentication method "SCRAM"
		16 00 02 01 02        // authentication data 01 02
		17 00                 // request problem information 0
		19 01                 // request response information 1
		21 00 14              // receive maximum 20
		22 00 05              // topic alias maximum 5
		26 00 01 6b 00 01 76  // user property "k" "v"
		27 00 00 10 00        // maximum packet size 4096
		00 02 69 64           // client id "id"
		2f                    // will property length 47
		01 01                 // payload format indicator 1
		02 00 00 00 3c        // message expiry interval 60
		03 00 04 74 65 78 74  // content type "text"
		08 00 05 72 65 70 6c 79 // response topic "reply"
		09 00 03 63 6f 72     // correlation data "cor"
		18 00 00 00 05        // will delay interval 5
		26 00 01 61 00 01 62  // user property "a" "b"
		26 00 01 61 00 01 63  // user property "a" "c" (repeats are allowed)
		00 03 77 2f 78        // will topic "w/x"
		00 02 68 69           // will payload "hi"
		00 03 62 6f 62        // user name "bob"
		00 03 73 65 63        // password "sec"`,
		&Connect{ProtocolName: "MQTT", Version: Version5, KeepAlive: 30, ClientID: "id",
			Properties: props(func(p *Properties) {
				p.SessionExpiry, p.ReceiveMaximum, p.MaximumPacketSize, p.TopicAliasMaximum = 3600, 20, 4096, 5
				p.RequestResponseInfo, p.RequestProblemInfo = 1, 0
				p.AuthMethod, p.AuthData = "SCRAM", []byte{1, 2}
				p.User = []StringPair{{"k", "v"}}
				for _, id := range []PropertyID{PropSessionExpiry, PropReceiveMaximum, PropMaximumPacketSize,
					PropTopicAliasMaximum, PropRequestResponseInfo, PropRequestProblemInfo, PropAuthMethod, PropAuthData} {
					p.Set(id)
				}
			}),
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/x", WillPayload: []byte("hi"),
			WillProperties: props(func(p *Properties) {
				p.WillDelay, p.PayloadFormat, p.MessageExpiry = 5, 1, 60
				p.ContentType, p.ResponseTopic, p.CorrelationData = "text", "reply", []byte("cor")
				p.User = []StringPair{{"a", "b"}, {"a", "c"}}
				for _, id := range []PropertyID{PropWillDelay, PropPayloadFormat, PropMessageExpiry,
					PropContentType, PropResponseTopic, PropCorrelationData} {
					p.Set(id)
				}
			}),
			UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte("sec")}},
	{"CONNECT 5.0 password without user name", Version5, `
		10 12                 // CONNECT, remaining length 18
		00 04 4d 51 54 54     // "MQTT"
		05                    // level 5
		40                    // password only: allowed in 5.0
		00 00                 // keep alive 0
		00                    // property length 0
		00 01 78              // client id "x"
		00 02 70 77           // password "pw"`,
		&Connect{ProtocolName: "MQTT", Version: Version5, ClientID: "x", PasswordFlag: true, Password: []byte("pw")}},

	// CONNACK: section 3.2.
	{"CONNACK 3.1.1 accepted, session present", Version311, `20 02 01 00`,
		&Connack{SessionPresent: true, ReasonCode: Success}},
	{"CONNACK 3.1.1 refused: identifier rejected", Version311, `20 02 00 02`,
		&Connack{ReasonCode: ClientIdentifierNotValid}},
	{"CONNACK 3.1.1 refused: not authorized", Version311, `20 02 00 05`,
		&Connack{ReasonCode: NotAuthorized}},
	{"CONNACK 3.1 refused: unacceptable protocol version", Version31, `20 02 00 01`,
		&Connack{ReasonCode: UnsupportedProtocolVersion}},
	{"CONNACK 5.0 with the server's properties", Version5, `
		20 37                 // CONNACK, remaining length 55
		00                    // no session present
		00                    // success
		34                    // property length 52
		11 00 00 00 78        // session expiry interval 120
		12 00 04 61 75 74 6f  // assigned client identifier "auto"
		13 00 1e              // server keep alive 30
		1a 00 03 72 2f 31     // response information "r/1"
		1c 00 02 73 32        // server reference "s2"
		1f 00 02 6f 6b        // reason string "ok"
		21 00 0a              // receive maximum 10
		22 00 08              // topic alias maximum 8
		24 01                 // maximum QoS 1
		25 00                 // retain available 0
		27 00 01 00 00        // maximum packet size 65536
		28 00                 // wildcard subscription available 0
		29 01                 // subscription identifier available 1
		2a 00                 // shared subscription available 0`,
		&Connack{ReasonCode: Success, Properties: props(func(p *Properties) {
			p.SessionExpiry, p.AssignedClientID, p.ServerKeepAlive = 120, "auto", 30
			p.ResponseInfo, p.ServerReference, p.ReasonString = "r/1", "s2", "ok"
			p.ReceiveMaximum, p.TopicAliasMaximum, p.MaximumQoS, p.RetainAvailable = 10, 8, 1, 0
			p.MaximumPacketSize, p.WildcardSubAvailable, p.SubIDAvailable, p.SharedSubAvailable = 65536, 0, 1, 0
			for _, id := range []PropertyID{PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive,
				PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
				PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropMaximumPacketSize,
				PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable} {
				p.Set(id)
			}
		})}},
	{"CONNACK 5.0 refused: bad user name or password", Version5, `20 03 00 86 00`,
		&Connack{ReasonCode: BadUserNameOrPassword}},

	// PUBLISH: section 3.3, the example of 3.3.2.3 (topic "a/b", packet identifier 10).
	{"PUBLISH 3.1.1 spec example QoS 1", Version311, `
		32 0a                 // PUBLISH QoS 1, remaining length 10
		00 03 61 2f 62        // topic "a/b"
		00 0a                 // packet identifier 10
		68 65 6c              // payload "hel"`,
		&Publish{QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hel")}},
	{"PUBLISH 3.1.1 QoS 0 retain", Version311, `
		31 07                 // PUBLISH QoS 0 retain, remaining length 7
		00 03 61 2f 62        // topic "a/b"
		6f 6b                 // payload "ok"`,
		&Publish{Retain: true, Topic: "a/b", Payload: []byte("ok")}},
	{"PUBLISH 3.1 QoS 2 dup, empty payload", Version31, `
		3c 07                 // PUBLISH DUP QoS 2, remaining length 7
		00 03 61 2f 62        // topic "a/b"
		ff ff                 // packet identifier 65535`,
		&Publish{Dup: true, QoS: 2, Topic: "a/b", PacketID: 65535}},
	{"PUBLISH 5.0 spec example", Version5, `
		32 08                 // PUBLISH QoS 1, remaining length 8
		00 03 61 2f 62        // topic "a/b"
		00 0a                 // packet identifier 10
		00                    // property length 0`,
		&Publish{QoS: 1, Topic: "a/b", PacketID: 10}},
	{"PUBLISH 5.0 with every PUBLISH property", Version5, `
		3b 34                 // PUBLISH DUP QoS 1 retain, remaining length 52
		00 03 61 2f 62        // topic "a/b"
		00 0b                 // packet identifier 11
		2a                    // property length 42
		01 01                 // payload format indicator 1
		02 00 00 01 2c        // message expiry interval 300
		03 00 04 6a 73 6f 6e  // content type "json"
		08 00 03 72 2f 78     // response topic "r/x"
		09 00 02 ab cd        // correlation data ab cd
		0b 05                 // subscription identifier 5
		0b 80 01              // subscription identifier 128
		23 00 07              // topic alias 7
		26 00 02 69 64 00 02 34 32 // user property "id" "42"
		7b 7d                 // payload "{}"`,
		&Publish{Dup: true, QoS: 1, Retain: true, Topic: "a/b", PacketID: 11, Payload: []byte("{}"),
			Properties: props(func(p *Properties) {
				p.PayloadFormat, p.MessageExpiry, p.ContentType, p.ResponseTopic = 1, 300, "json", "r/x"
				p.CorrelationData, p.SubscriptionIDs, p.TopicAlias = []byte{0xab, 0xcd}, []uint32{5, 128}, 7
				p.User = []StringPair{{"id", "42"}}
				for _, id := range []PropertyID{PropPayloadFormat, PropMessageExpiry, PropContentType,
					PropResponseTopic, PropCorrelationData, PropTopicAlias} {
					p.Set(id)
				}
			})}},
	{"PUBLISH 5.0 empty topic with topic alias", Version5, `
		30 07                 // PUBLISH QoS 0, remaining length 7
		00 00                 // topic "" (the alias names it)
		03 23 00 01           // property length 3, topic alias 1
		78                    // payload "x"`,
		&Publish{Payload: []byte("x"), Properties: props(func(p *Properties) { p.TopicAlias = 1; p.Set(PropTopicAlias) })}},
	{"PUBLISH 5.0 UTF-8 topic", Version5, `
		30 0c                 // PUBLISH QoS 0, remaining length 12
		00 09 c3 a9 74 c3 a9 2f e2 82 ac // topic "été/€"
		00                    // property length 0`,
		&Publish{Topic: "été/€"}},

	// PUBACK, PUBREC, PUBREL, PUBCOMP: sections 3.4 to 3.7.
	{"PUBACK 3.1.1", Version311, `40 02 00 0a`, &Puback{PacketID: 10}},
	{"PUBREC 3.1.1", Version311, `50 02 00 0a`, &Pubrec{PacketID: 10}},
	{"PUBREL 3.1.1 flags 0010", Version311, `62 02 00 0a`, &Pubrel{PacketID: 10}},
	{"PUBCOMP 3.1.1", Version311, `70 02 00 0a`, &Pubcomp{PacketID: 10}},
	{"PUBREL 3.1", Version31, `62 02 12 34`, &Pubrel{PacketID: 0x1234}},
	{"PUBACK 5.0 success, shortest form", Version5, `40 02 00 0a`, &Puback{PacketID: 10}},
	{"PUBACK 5.0 no matching subscribers", Version5, `40 03 00 0a 10`, &Puback{PacketID: 10, ReasonCode: NoMatchingSubscribers}},
	{"PUBREC 5.0 not authorized with reason string", Version5, `
		50 09                 // PUBREC, remaining length 9
		00 0a                 // packet identifier 10
		87                    // not authorized
		05 1f 00 02 6e 6f     // property length 5, reason string "no"`,
		&Pubrec{PacketID: 10, ReasonCode: NotAuthorized,
			Properties: props(func(p *Properties) { p.ReasonString = "no"; p.Set(PropReasonString) })}},
	{"PUBREL 5.0 packet identifier not found", Version5, `62 03 00 0a 92`, &Pubrel{PacketID: 10, ReasonCode: PacketIdentifierNotFound}},
	{"PUBCOMP 5.0 with user property", Version5, `
		70 0b                 // PUBCOMP, remaining length 11
		00 0a 00              // packet identifier 10, success
		07 26 00 01 6b 00 01 76 // property length 7, user property "k" "v"`,
		&Pubcomp{PacketID: 10, Properties: props(func(p *Properties) { p.User = []StringPair{{"k", "v"}} })}},

	// SUBSCRIBE: section 3.8, the payload example of 3.8.3 ("a/b" QoS 1, "c/d" QoS 2).
	{"SUBSCRIBE 3.1.1 spec example", Version311, `
		82 0e                 // SUBSCRIBE flags 0010, remaining length 14
		00 0a                 // packet identifier 10
		00 03 61 2f 62 01     // "a/b" QoS 1
		00 03 63 2f 64 02     // "c/d" QoS 2`,
		&Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}}},
	{"SUBSCRIBE 3.1 wildcard", Version31, `
		82 06                 // SUBSCRIBE, remaining length 6
		00 01                 // packet identifier 1
		00 01 23 00           // "#" QoS 0`,
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "#"}}}},
	{"SUBSCRIBE 5.0 options and subscription identifier", Version5, `
		82 1b                 // SUBSCRIBE, remaining length 27
		00 0a                 // packet identifier 10
		03 0b 81 01           // property length 3, subscription identifier 129
		00 03 61 2f 62 2e     // "a/b": retain handling 2, retain as published, no local, QoS 2
		00 0c 24 73 68 61 72 65 2f 67 2f 63 2f 2b 19 // "$share/g/c/+": retain handling 1, retain as published, QoS 1`,
		&Subscribe{PacketID: 10,
			Properties: props(func(p *Properties) { p.SubscriptionIDs = []uint32{129} }),
			Subscriptions: []Subscription{
				{Filter: "a/b", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "$share/g/c/+", QoS: 1, RetainAsPublished: true, RetainHandling: 1},
			}}},

	// SUBACK: section 3.9, the example of 3.9.3 (0, 2 and failure).
	{"SUBACK 3.1.1 spec example", Version311, `90 05 00 0a 00 02 80`,
		&Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, UnspecifiedError}}},
	{"SUBACK 5.0 with reason codes", Version5, `90 07 00 0a 00 01 87 8f a2`,
		&Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS1, NotAuthorized, TopicFilterInvalid, WildcardSubscriptionsNotSupported}}},

	// UNSUBSCRIBE and UNSUBACK: sections 3.10 and 3.11.
	{"UNSUBSCRIBE 3.1.1 spec example", Version311, `
		a2 0c                 // UNSUBSCRIBE flags 0010, remaining length 12
		00 0a                 // packet identifier 10
		00 03 61 2f 62        // "a/b"
		00 03 63 2f 64        // "c/d"`,
		&Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}}},
	{"UNSUBSCRIBE 5.0", Version5, `
		a2 0b                 // UNSUBSCRIBE, remaining length 11
		00 0b                 // packet identifier 11
		00                    // property length 0
		00 06 24 73 68 61 72 65 // "$share"`,
		&Unsubscribe{PacketID: 11, Filters: []string{"$share"}}},
	{"UNSUBACK 3.1.1", Version311, `b0 02 00 0a`, &Unsuback{PacketID: 10}},
	{"UNSUBACK 5.0", Version5, `b0 05 00 0a 00 00 11`,
		&Unsuback{PacketID: 10, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}}},

	// PINGREQ, PINGRESP, DISCONNECT, AUTH: sections 3.12 to 3.15.
	{"PINGREQ", Version311, `c0 00`, &Pingreq{}},
	{"PINGRESP", Version5, `d0 00`, &Pingresp{}},
	{"DISCONNECT 3.1.1", Version311, `e0 00`, &Disconnect{}},
	{"DISCONNECT 5.0 normal, shortest form", Version5, `e0 00`, &Disconnect{}},
	{"DISCONNECT 5.0 with will message", Version5, `e0 01 04`, &Disconnect{ReasonCode: DisconnectWithWillMessage}},
	{"DISCONNECT 5.0 session taken over with properties", Version5, `
		e0 0d                 // DISCONNECT, remaining length 13
		8e                    // session taken over
		0b                    // property length 11
		11 00 00 00 00        // session expiry interval 0
		1c 00 03 68 2f 32     // server reference "h/2"`,
		&Disconnect{ReasonCode: SessionTakenOver, Properties: props(func(p *Properties) {
			p.ServerReference = "h/2"
			p.Set(PropSessionExpiry)
			p.Set(PropServerReference)
		})}},
	{"AUTH 5.0 success, shortest form", Version5, `f0 00`, &Auth{}},
	{"AUTH 5.0 continue", Version5, `
		f0 0f                 // AUTH, remaining length 15
		18                    // continue authentication
		0d                    // property length 13
		15 00 05 53 43 52 41 4d // authentication method "SCRAM"
		16 00 02 aa bb        // authentication data aa bb`,
		&Auth{ReasonCode: ContinueAuthentication, Properties: props(func(p *Properties) {
			p.AuthMethod, p.AuthData = "SCRAM", []byte{0xaa, 0xbb}
			p.Set(PropAuthMethod)
			p.Set(PropAuthData)
		})}},
}

func TestGoldenDecode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b := hexBytes(t, g.bytes)
			got, n, err := Decode(b, g.v, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(b) {
				t.Fatalf("Decode took %d of %d bytes", n, len(b))
			}
			if !equalPackets(got, g.packet) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, g.packet)
			}
			got, err = readOne(b, g.v, len(b))
			if err != nil {
				t.Fatalf("Reader: %v", err)
			}
			if !equalPackets(got, g.packet) {
				t.Fatalf("Reader:\n got %#v\nwant %#v", got, g.packet)
			}
		})
	}
}

func TestGoldenEncode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			want := hexBytes(t, g.bytes)
			got, err := g.packet.Encode(nil, g.v)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode:\n got % x\nwant % x", got, want)
			}
			if p, ok := g.packet.(*Publish); ok && p.Size(g.v) != len(want) {
				t.Fatalf("Size = %d, want %d", p.Size(g.v), len(want))
			}
		})
	}
}

// TestReaderStream reads every golden packet of a version from one stream through
// one Reader, so that reused structs and buffer boundaries are exercised.
func TestReaderStream(t *testing.T) {
	for _, v := range []Version{Version31, Version311, Version5} {
		var stream []byte
		var want []golden
		for _, g := range goldens {
			if g.v == v && g.packet.Type() != CONNECT {
				stream = append(stream, hexBytes(t, g.bytes)...)
				want = append(want, g)
			}
		}
		r := NewReader(bufioSmall(stream))
		r.Version = v
		for _, g := range want {
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			if !equalPackets(p, g.packet) {
				t.Fatalf("%s:\n got %#v\nwant %#v", g.name, p, g.packet)
			}
		}
		if _, err := r.ReadPacket(); err == nil {
			t.Fatalf("version %v: read past the end of the stream", v)
		}
	}
}

// TestV31DupOnRetransmission: MQTT 3.1 marks PUBREL, SUBSCRIBE and UNSUBSCRIBE sent
// again with DUP (their fixed header carries QoS 1 and DUP); 3.1.1 made those bits
// reserved. A 3.1 retransmission decodes like the first transmission.
func TestV31DupOnRetransmission(t *testing.T) {
	for _, tt := range []struct {
		bytes string
		want  Packet
	}{
		{"8a 06 00 01 00 01 23 00", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "#"}}}},
		{"aa 05 00 02 00 01 23", &Unsubscribe{PacketID: 2, Filters: []string{"#"}}},
		{"6a 02 00 03", &Pubrel{PacketID: 3}},
	} {
		b := hexBytes(t, tt.bytes)
		got, _, err := Decode(b, Version31, 0)
		if err != nil || !equalPackets(got, tt.want) {
			t.Errorf("3.1 %s: got %#v, %v", tt.bytes, got, err)
		}
		if _, _, err := Decode(b, Version311, 0); CodeOf(err) != MalformedPacket {
			t.Errorf("3.1.1 %s: got %v, want malformed [MQTT-2.1.3-1]", tt.bytes, err)
		}
	}
}
