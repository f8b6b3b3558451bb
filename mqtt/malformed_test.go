package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// malformedCase is one packet that breaks one rule of the specifications, written
// out byte by byte, with the reason code the decoder must report for it.
type malformedCase struct {
	name  string // the normative statement or section broken, then what breaks it
	v     Version
	max   int    // maximum packet size; zero means the protocol's maximum
	bytes string // annotated hex
	code  ReasonCode
}

// malformedCases holds one row per rule a decoder can check. Every row is one whole
// packet as its fixed header frames it, unless the row is about the fixed header
// itself, so that the error comes from the rule and not from a short input.
var malformedCases = []malformedCase{
	// Rules enforced beyond the packet layouts.
	{"section 3.15.2.2.2 AUTH continue without an authentication method", Version5, 0, `
		f0 02 // AUTH, remaining length 2
		18 00 // continue authentication, property length 0`, ProtocolError},
	{"section 3.15.2.2.2 AUTH with data but no method", Version5, 0, `
		f0 07 // AUTH, remaining length 7
		18 05 16 00 02 aa bb // continue authentication, authentication data only`, ProtocolError},
	{"[MQTT-3.3.2-14] response topic with a wildcard", Version5, 0, `
		30 0a       // PUBLISH QoS 0, remaining length 10
		00 01 61    // topic "a"
		06 08 00 03 61 2f 23 // property length 6, response topic "a/#"`, ProtocolError},
	{"section 3.1.3.2.5 will response topic with a wildcard", Version5, 0, `
		10 19             // CONNECT, remaining length 25
		00 04 4d 51 54 54 // "MQTT"
		05 04 00 00 00    // level 5, will flag, keep alive 0, property length 0
		00 01 63          // client id "c"
		05 08 00 02 61 2b // will property length 5, response topic "a+"
		00 01 77          // will topic "w"
		00 00             // will payload empty`, ProtocolError},
	// Fixed header: packet type and flags (section 2.1).
	{"section 2.1.2 reserved packet type 0", Version311, 0, `
		00 00 // type 0, remaining length 0`, MalformedPacket},
	{"section 2.1.2 reserved packet type 0", Version5, 0, `
		00 02 // type 0, remaining length 2
		00 01 // body`, MalformedPacket},
	{"section 2.1.2 AUTH is reserved in 3.1.1", Version311, 0, `
		f0 00 // AUTH, remaining length 0`, MalformedPacket},
	{"section 2.1.2 AUTH is reserved in 3.1", Version31, 0, `
		f0 02 // AUTH, remaining length 2
		18 00 // reason code, property length`, MalformedPacket},
	{"[MQTT-2.1.3-1] CONNECT flags 0001", Version5, 0, `
		11 0e             // CONNECT with flags 0001, remaining length 14
		00 04 4d 51 54 54 // protocol name "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-2.1.3-1] CONNACK flags 1000", Version5, 0, `
		28 03 // CONNACK with flags 1000, remaining length 3
		00    // acknowledge flags
		00    // reason code success
		00    // property length 0`, MalformedPacket},
	{"[MQTT-2.1.3-1] PUBACK flags 0001", Version5, 0, `
		41 02 // PUBACK with flags 0001, remaining length 2
		00 01 // packet id 1`, MalformedPacket},
	{"[MQTT-2.1.3-1] PUBREC flags 1000", Version5, 0, `
		58 02 // PUBREC with flags 1000, remaining length 2
		00 01 // packet id 1`, MalformedPacket},
	{"[MQTT-2.1.3-1] PUBREL flags 0000", Version5, 0, `
		60 02 // PUBREL with flags 0000 instead of 0010, remaining length 2
		00 01 // packet id 1`, MalformedPacket},
	{"[MQTT-2.1.3-1] PUBCOMP flags 0010", Version5, 0, `
		72 02 // PUBCOMP with flags 0010, remaining length 2
		00 01 // packet id 1`, MalformedPacket},
	{"[MQTT-2.1.3-1] SUBSCRIBE flags 0000", Version5, 0, `
		80 07    // SUBSCRIBE with flags 0000 instead of 0010, remaining length 7
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		00       // options`, MalformedPacket},
	{"[MQTT-2.1.3-1] SUBACK flags 0001", Version5, 0, `
		91 04 // SUBACK with flags 0001, remaining length 4
		00 01 // packet id 1
		00    // property length 0
		00    // granted QoS 0`, MalformedPacket},
	{"[MQTT-2.1.3-1] UNSUBSCRIBE flags 0011", Version5, 0, `
		a3 06    // UNSUBSCRIBE with flags 0011 instead of 0010, remaining length 6
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"`, MalformedPacket},
	{"[MQTT-2.1.3-1] UNSUBACK flags 1000", Version5, 0, `
		b8 04 // UNSUBACK with flags 1000, remaining length 4
		00 01 // packet id 1
		00    // property length 0
		00    // success`, MalformedPacket},
	{"[MQTT-2.1.3-1] PINGREQ flags 0001", Version5, 0, `
		c1 00 // PINGREQ with flags 0001, remaining length 0`, MalformedPacket},
	{"[MQTT-2.1.3-1] PINGRESP flags 0010", Version5, 0, `
		d2 00 // PINGRESP with flags 0010, remaining length 0`, MalformedPacket},
	{"[MQTT-2.1.3-1] DISCONNECT flags 0100", Version5, 0, `
		e4 00 // DISCONNECT with flags 0100, remaining length 0`, MalformedPacket},
	{"[MQTT-2.1.3-1] AUTH flags 1111", Version5, 0, `
		ff 00 // AUTH with flags 1111, remaining length 0`, MalformedPacket},
	{"[MQTT-2.2.2-2] PUBREL flags 0000", Version311, 0, `
		60 02 // PUBREL with flags 0000 instead of 0010, remaining length 2
		00 01 // packet id 1`, MalformedPacket},
	{"[MQTT-2.2.2-2] SUBSCRIBE flags 0000", Version311, 0, `
		80 06    // SUBSCRIBE with flags 0000 instead of 0010, remaining length 6
		00 01    // packet id 1
		00 01 61 // filter "a"
		00       // QoS 0`, MalformedPacket},
	{"[MQTT-2.2.2-2] UNSUBSCRIBE flags 0000", Version311, 0, `
		a0 05    // UNSUBSCRIBE with flags 0000 instead of 0010, remaining length 5
		00 01    // packet id 1
		00 01 61 // filter "a"`, MalformedPacket},
	{"[MQTT-2.2.2-2] CONNECT flags 1111", Version311, 0, `
		1f 0d             // CONNECT with flags 1111, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-2.2.2-2] DISCONNECT flags 0010", Version311, 0, `
		e2 00 // DISCONNECT with flags 0010, remaining length 0`, MalformedPacket},

	// Fixed header: remaining length (section 2.1.4, 1.5.5).
	{"section 1.5.5 remaining length of five bytes", Version311, 0, `
		30             // PUBLISH QoS 0
		ff ff ff ff 01 // remaining length with a fifth byte`, MalformedPacket},
	{"section 1.5.5 remaining length of five bytes", Version5, 0, `
		c0             // PINGREQ
		80 80 80 80 00 // remaining length 0 in five bytes`, MalformedPacket},
	{"[MQTT-1.5.5-1] remaining length 0 in two bytes", Version311, 0, `
		c0    // PINGREQ
		80 00 // remaining length 0, not in its shortest form`, MalformedPacket},
	{"[MQTT-1.5.5-1] remaining length 3 in two bytes", Version5, 0, `
		30       // PUBLISH QoS 0
		83 00    // remaining length 3, not in its shortest form
		00 01 61 // topic "a"`, MalformedPacket},
	{"[MQTT-1.5.5-1] remaining length 128 in three bytes", Version311, 0, `
		30       // PUBLISH QoS 0
		80 81 00 // remaining length 128, not in its shortest form`, MalformedPacket},

	// Maximum packet size, from the fixed header (section 3.1.2.11.4, 4.13).
	{"section 3.1.2.11.4 PUBLISH one byte over the maximum", Version311, 11, `
		30 0a          // PUBLISH QoS 0, remaining length 10, 12 bytes in all
		00 03 61 2f 62 // topic "a/b"
		68 65 6c 6c 6f // payload "hello"`, PacketTooLarge},
	{"section 3.1.2.11.4 CONNECT one byte over the maximum", Version5, 15, `
		10 0e             // CONNECT, remaining length 14, 16 bytes in all
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, PacketTooLarge},
	{"section 3.1.2.11.4 fixed header alone claims too much", Version5, 1024, `
		30       // PUBLISH QoS 0
		ff ff 7f // remaining length 2097151, no body follows`, PacketTooLarge},
	{"section 3.1.2.11.4 SUBSCRIBE claims the protocol's maximum", Version311, 1 << 20, `
		82          // SUBSCRIBE
		ff ff ff 7f // remaining length 268435455, no body follows`, PacketTooLarge},

	// CONNECT (section 3.1).
	{"[MQTT-3.1.2-1] protocol name MQTX", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 58 // protocol name "MQTX"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-1] protocol name MQIsdp with level 4", Version311, 0, `
		10 0f                   // CONNECT, remaining length 15
		00 06 4d 51 49 73 64 70 // protocol name "MQIsdp"
		04                      // level 4
		02                      // clean session
		00 3c                   // keep alive 60
		00 01 63                // client id "c"`, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-1] protocol name MQTT with level 3", Version31, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // protocol name "MQTT"
		03                // level 3, which is named "MQIsdp"
		02                // clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-2] protocol level 6", Version5, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		06                // level 6
		02                // clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-2] protocol level 0", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		00                // level 0
		02                // clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-3] reserved connect flag", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		03                // clean session and the reserved bit 0
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-3] reserved connect flag", Version5, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		01                // the reserved bit 0
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-14] will QoS 3", Version311, 0, `
		10 13             // CONNECT, remaining length 19
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		1e                // will QoS 3, will flag, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 77          // will topic "w"
		00 01 78          // will payload "x"`, MalformedPacket},
	{"[MQTT-3.1.2-12] will QoS 3", Version5, 0, `
		10 15             // CONNECT, remaining length 21
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		1e                // will QoS 3, will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		00                // will property length 0
		00 01 77          // will topic "w"
		00 01 78          // will payload "x"`, MalformedPacket},
	{"[MQTT-3.1.2-13] will QoS 1 without the will flag", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		0a                // will QoS 1, clean session, no will flag
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-11] will QoS 2 without the will flag", Version5, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		12                // will QoS 2, clean start, no will flag
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-15] will retain without the will flag", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		22                // will retain, clean session, no will flag
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-13] will retain without the will flag", Version5, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		20                // will retain, no will flag
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-22] password without user name", Version311, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		42                // password, clean session, no user name
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 70          // password "p"`, MalformedPacket},
	{"section 3.1.2.9 password without user name", Version31, 0, `
		10 12                   // CONNECT, remaining length 18
		00 06 4d 51 49 73 64 70 // "MQIsdp"
		03                      // level 3
		42                      // password, clean session, no user name
		00 3c                   // keep alive 60
		00 01 63                // client id "c"
		00 01 70                // password "p"`, MalformedPacket},
	{"[MQTT-3.1.2-18] bytes after the payload", Version311, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session, no user name
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 75          // a user name that no flag announces`, MalformedPacket},
	{"[MQTT-3.1.2-18] bytes after the payload", Version5, 0, `
		10 11             // CONNECT, remaining length 17
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start, no password
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		00 01 70          // a password that no flag announces`, MalformedPacket},
	{"[MQTT-4.7.1-1] will topic with '#'", Version311, 0, `
		10 12             // CONNECT, remaining length 18
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		06                // will flag, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 23          // will topic "#"
		00 00             // will payload empty`, TopicNameInvalid},
	{"[MQTT-4.7.0-1] will topic with '+'", Version5, 0, `
		10 16             // CONNECT, remaining length 22
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		00                // will property length 0
		00 03 61 2f 2b    // will topic "a/+"
		00 00             // will payload empty`, TopicNameInvalid},
	{"[MQTT-4.7.3-1] empty will topic", Version311, 0, `
		10 11             // CONNECT, remaining length 17
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		06                // will flag, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 00             // will topic ""
		00 00             // will payload empty`, TopicNameInvalid},
	{"section 3.1.2.11.10 authentication data without method", Version5, 0, `
		10 12             // CONNECT, remaining length 18
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		04                // property length 4
		16 00 01 aa       // authentication data aa
		00 01 63          // client id "c"`, ProtocolError},
	{"section 2.2.2.2 topic alias in CONNECT", Version5, 0, `
		10 11             // CONNECT, remaining length 17
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		03                // property length 3
		23 00 01          // topic alias 1, a PUBLISH property
		00 01 63          // client id "c"`, ProtocolError},
	{"section 2.2.2.2 session expiry in will properties", Version5, 0, `
		10 19             // CONNECT, remaining length 25
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		05                // will property length 5
		11 00 00 00 0a    // session expiry interval, a CONNECT property
		00 01 77          // will topic "w"
		00 00             // will payload empty`, ProtocolError},
	{"section 3.1.2.11.2 session expiry interval twice", Version5, 0, `
		10 18             // CONNECT, remaining length 24
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		0a                // property length 10
		11 00 00 00 0a    // session expiry interval 10
		11 00 00 00 0a    // session expiry interval 10 again
		00 01 63          // client id "c"`, ProtocolError},
	{"section 3.1.3.2.2 will delay interval twice", Version5, 0, `
		10 1e             // CONNECT, remaining length 30
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		0a                // will property length 10
		18 00 00 00 01    // will delay interval 1
		18 00 00 00 02    // will delay interval 2
		00 01 77          // will topic "w"
		00 00             // will payload empty`, ProtocolError},
	{"section 2.2.2.2 unknown property identifier 0x07", Version5, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		02                // property length 2
		07 00             // property 0x07, which no packet has
		00 01 63          // client id "c"`, MalformedPacket},
	{"section 2.2.2.2 unknown property identifier 0x00", Version5, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		02                // property length 2
		00 00             // property 0x00
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-1.5.5-1] property identifier not in its shortest form", Version5, 0, `
		10 11             // CONNECT, remaining length 17
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		03                // property length 3
		91 00 00          // property 0x11 written as a two-byte integer
		00 01 63          // client id "c"`, MalformedPacket},
	{"section 3.1.2.11.3 receive maximum 0", Version5, 0, `
		10 11             // CONNECT, remaining length 17
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		03                // property length 3
		21 00 00          // receive maximum 0
		00 01 63          // client id "c"`, ProtocolError},
	{"section 3.1.2.11.4 maximum packet size 0", Version5, 0, `
		10 13             // CONNECT, remaining length 19
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		05                // property length 5
		27 00 00 00 00    // maximum packet size 0
		00 01 63          // client id "c"`, ProtocolError},
	{"section 3.1.2.11.7 request problem information 2", Version5, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		02                // property length 2
		17 02             // request problem information 2
		00 01 63          // client id "c"`, ProtocolError},
	{"section 3.1.2.11.6 request response information 2", Version5, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		02                // property length 2
		19 02             // request response information 2
		00 01 63          // client id "c"`, ProtocolError},
	{"section 3.1.3.2.3 will payload format indicator 2", Version5, 0, `
		10 16             // CONNECT, remaining length 22
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		02                // will property length 2
		01 02             // payload format indicator 2
		00 01 77          // will topic "w"
		00 00             // will payload empty`, ProtocolError},

	// UTF-8 encoded strings (section 1.5.4), in CONNECT's fields.
	{"[MQTT-1.5.3-2] client id holds U+0000", Version311, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 02 61 00       // client id "a\x00"`, MalformedPacket},
	{"[MQTT-1.5.3-1] client id holds a surrogate", Version311, 0, `
		10 0f             // CONNECT, remaining length 15
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 03 ed a0 80    // client id: U+D800 encoded`, MalformedPacket},
	{"[MQTT-1.5.3-1] client id is not UTF-8", Version311, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 02 c3 28       // client id: c3 starts a pair, 28 does not continue it`, MalformedPacket},
	{"[MQTT-1.5.3-1] client id with an overlong encoding", Version311, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 02 c0 80       // client id: U+0000 in two bytes`, MalformedPacket},
	{"[MQTT-1.5.3-1] client id past U+10FFFF", Version311, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 04 f4 90 80 80 // client id: U+110000`, MalformedPacket},
	{"[MQTT-1.5.3-1] client id ends inside a character", Version311, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 02 e2 82       // client id: two of the three bytes of U+20AC`, MalformedPacket},
	{"[MQTT-1.5.4-2] user name holds U+0000", Version5, 0, `
		10 12             // CONNECT, remaining length 18
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		82                // user name, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		00 02 75 00       // user name "u\x00"`, MalformedPacket},
	{"[MQTT-1.5.4-1] will topic holds a surrogate", Version5, 0, `
		10 16             // CONNECT, remaining length 22
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c"
		00                // will property length 0
		00 03 ed b0 80    // will topic: U+DC00 encoded
		00 00             // will payload empty`, MalformedPacket},
	{"[MQTT-1.5.4-1] user property name is not UTF-8", Version5, 0, `
		10 16             // CONNECT, remaining length 22
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		08                // property length 8
		26                // user property
		00 02 c3 28       // name: not UTF-8
		00 01 76          // value "v"
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-1.5.4-1] authentication method with an overlong encoding", Version5, 0, `
		10 13             // CONNECT, remaining length 19
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		05                // property length 5
		15 00 02 c0 80    // authentication method: U+0000 in two bytes
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-1.5.3-1] protocol name is not UTF-8", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 c3 28 // protocol name "MQ" and a broken pair
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"`, MalformedPacket},

	// CONNECT cut short inside its body.
	{"section 3.1.2.1 protocol name runs past the end", Version311, 0, `
		10 04       // CONNECT, remaining length 4
		00 04 4d 51 // protocol name of 4 bytes, 2 present`, MalformedPacket},
	{"section 3.1.2.2 protocol level missing", Version311, 0, `
		10 06             // CONNECT, remaining length 6
		00 04 4d 51 54 54 // "MQTT"`, MalformedPacket},
	{"section 3.1.2.3 connect flags missing", Version311, 0, `
		10 07             // CONNECT, remaining length 7
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4`, MalformedPacket},
	{"section 3.1.2.10 keep alive cut short", Version311, 0, `
		10 09             // CONNECT, remaining length 9
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00                // one byte of the keep alive`, MalformedPacket},
	{"section 3.1.3.1 client id missing", Version311, 0, `
		10 0a             // CONNECT, remaining length 10
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60`, MalformedPacket},
	{"section 3.1.3.1 client id runs past the end", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		02                // clean session
		00 3c             // keep alive 60
		00 05 63          // client id of 5 bytes, 1 present`, MalformedPacket},
	{"[MQTT-3.1.2-9] will topic missing", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		06                // will flag, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c", and no will topic`, MalformedPacket},
	{"[MQTT-3.1.2-9] will payload missing", Version311, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		06                // will flag, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 77          // will topic "w", and no will payload`, MalformedPacket},
	{"[MQTT-3.1.2-19] user name missing", Version311, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		82                // user name, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c", and no user name`, MalformedPacket},
	{"[MQTT-3.1.2-21] password missing", Version311, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		04                // level 4
		c2                // user name, password, clean session
		00 3c             // keep alive 60
		00 01 63          // client id "c"
		00 01 75          // user name "u", and no password`, MalformedPacket},
	{"section 3.1.2.11.1 property length missing", Version5, 0, `
		10 0a             // CONNECT, remaining length 10
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60`, MalformedPacket},
	{"section 3.1.2.11.1 property length runs past the end", Version5, 0, `
		10 0d             // CONNECT, remaining length 13
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		05                // property length 5
		11 00             // two bytes follow`, MalformedPacket},
	{"section 3.1.2.11.2 session expiry runs past its property length", Version5, 0, `
		10 10             // CONNECT, remaining length 16
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		02                // clean start
		00 3c             // keep alive 60
		02                // property length 2
		11 00             // session expiry interval with one of its four bytes
		00 01 63          // client id "c"`, MalformedPacket},
	{"[MQTT-3.1.2-9] will properties missing", Version5, 0, `
		10 0e             // CONNECT, remaining length 14
		00 04 4d 51 54 54 // "MQTT"
		05                // level 5
		06                // will flag, clean start
		00 3c             // keep alive 60
		00                // property length 0
		00 01 63          // client id "c", and nothing of the will`, MalformedPacket},

	// CONNACK (section 3.2).
	{"section 3.2.2.1 reserved acknowledge flags", Version311, 0, `
		20 02 // CONNACK, remaining length 2
		02    // acknowledge flags: bit 1 set
		00    // accepted`, MalformedPacket},
	{"[MQTT-3.2.2-1] reserved acknowledge flags", Version5, 0, `
		20 03 // CONNACK, remaining length 3
		80    // acknowledge flags: bit 7 set
		00    // success
		00    // property length 0`, MalformedPacket},
	{"[MQTT-3.2.2-4] session present with a refusal", Version311, 0, `
		20 02 // CONNACK, remaining length 2
		01    // session present
		05    // refused, not authorized`, ProtocolError},
	{"[MQTT-3.2.2-6] session present with a refusal", Version5, 0, `
		20 03 // CONNACK, remaining length 3
		01    // session present
		87    // not authorized
		00    // property length 0`, ProtocolError},
	{"section 3.2.2.3 CONNACK return code 6", Version311, 0, `
		20 02 // CONNACK, remaining length 2
		00    // acknowledge flags
		06    // return code 6, reserved`, ProtocolError},
	{"section 3.2.2.2 CONNACK reason code 0x10", Version5, 0, `
		20 03 // CONNACK, remaining length 3
		00    // acknowledge flags
		10    // no matching subscribers, a PUBACK reason
		00    // property length 0`, ProtocolError},
	{"section 3.2 CONNACK cut short", Version311, 0, `
		20 01 // CONNACK, remaining length 1
		00    // acknowledge flags, and no return code`, MalformedPacket},
	{"section 3.2 CONNACK cut short", Version5, 0, `
		20 01 // CONNACK, remaining length 1
		00    // acknowledge flags, and no reason code`, MalformedPacket},
	{"section 3.2 bytes after the return code", Version311, 0, `
		20 03 // CONNACK, remaining length 3
		00    // acknowledge flags
		00    // accepted
		00    // one byte too many`, MalformedPacket},
	{"section 3.2 bytes after the properties", Version5, 0, `
		20 04 // CONNACK, remaining length 4
		00    // acknowledge flags
		00    // success
		00    // property length 0
		00    // one byte too many`, MalformedPacket},
	{"section 2.2.2.2 topic alias in CONNACK", Version5, 0, `
		20 06    // CONNACK, remaining length 6
		00       // acknowledge flags
		00       // success
		03       // property length 3
		23 00 01 // topic alias 1`, ProtocolError},
	{"section 3.2.2.3.4 maximum QoS 2", Version5, 0, `
		20 05 // CONNACK, remaining length 5
		00    // acknowledge flags
		00    // success
		02    // property length 2
		24 02 // maximum QoS 2`, ProtocolError},
	{"section 3.2.2.3.5 retain available 2", Version5, 0, `
		20 05 // CONNACK, remaining length 5
		00    // acknowledge flags
		00    // success
		02    // property length 2
		25 02 // retain available 2`, ProtocolError},

	// PUBLISH (section 3.3).
	{"[MQTT-3.3.1-4] PUBLISH QoS 3", Version311, 0, `
		36 06    // PUBLISH QoS 3, remaining length 6
		00 01 61 // topic "a"
		00 01    // packet id 1
		78       // payload "x"`, MalformedPacket},
	{"[MQTT-3.3.1-4] PUBLISH QoS 3", Version5, 0, `
		36 07    // PUBLISH QoS 3, remaining length 7
		00 01 61 // topic "a"
		00 01    // packet id 1
		00       // property length 0
		78       // payload "x"`, MalformedPacket},
	{"[MQTT-3.3.1-2] DUP with QoS 0", Version311, 0, `
		38 04    // PUBLISH DUP QoS 0, remaining length 4
		00 01 61 // topic "a"
		78       // payload "x"`, MalformedPacket},
	{"[MQTT-3.3.1-2] DUP with QoS 0", Version5, 0, `
		39 05    // PUBLISH DUP QoS 0 retain, remaining length 5
		00 01 61 // topic "a"
		00       // property length 0
		78       // payload "x"`, MalformedPacket},
	{"[MQTT-2.3.1-1] PUBLISH QoS 1 packet id 0", Version311, 0, `
		32 05    // PUBLISH QoS 1, remaining length 5
		00 01 61 // topic "a"
		00 00    // packet id 0`, MalformedPacket},
	{"[MQTT-2.2.1-3] PUBLISH QoS 2 packet id 0", Version5, 0, `
		34 06    // PUBLISH QoS 2, remaining length 6
		00 01 61 // topic "a"
		00 00    // packet id 0
		00       // property length 0`, MalformedPacket},
	{"[MQTT-3.3.2-2] topic name with '+'", Version311, 0, `
		30 05          // PUBLISH QoS 0, remaining length 5
		00 03 61 2f 2b // topic "a/+"`, TopicNameInvalid},
	{"[MQTT-3.3.2-2] topic name with '#'", Version311, 0, `
		30 03    // PUBLISH QoS 0, remaining length 3
		00 01 23 // topic "#"`, TopicNameInvalid},
	{"[MQTT-3.3.2-2] topic name with '+'", Version5, 0, `
		32 08          // PUBLISH QoS 1, remaining length 8
		00 03 2b 2f 62 // topic "+/b"
		00 01          // packet id 1
		00             // property length 0`, TopicNameInvalid},
	{"[MQTT-3.3.2-2] topic name with '#'", Version5, 0, `
		30 06          // PUBLISH QoS 0, remaining length 6
		00 03 61 2f 23 // topic "a/#"
		00             // property length 0`, TopicNameInvalid},
	{"[MQTT-4.7.3-1] empty topic name", Version311, 0, `
		30 03 // PUBLISH QoS 0, remaining length 3
		00 00 // topic ""
		78    // payload "x"`, ProtocolError},
	{"[MQTT-4.7.3-1] empty topic name", Version31, 0, `
		32 04 // PUBLISH QoS 1, remaining length 4
		00 00 // topic ""
		00 01 // packet id 1`, ProtocolError},
	{"section 3.3.2.1 empty topic name without a topic alias", Version5, 0, `
		30 04 // PUBLISH QoS 0, remaining length 4
		00 00 // topic ""
		00    // property length 0
		78    // payload "x"`, ProtocolError},
	{"section 3.3.2.1 empty topic name with properties but no topic alias", Version5, 0, `
		30 06 // PUBLISH QoS 0, remaining length 6
		00 00 // topic ""
		02    // property length 2
		01 01 // payload format indicator 1
		78    // payload "x"`, ProtocolError},
	{"[MQTT-3.3.2-8] topic alias 0", Version5, 0, `
		30 07    // PUBLISH QoS 0, remaining length 7
		00 01 61 // topic "a"
		03       // property length 3
		23 00 00 // topic alias 0`, ProtocolError},
	{"section 3.3.2.3.4 topic alias twice", Version5, 0, `
		30 0a    // PUBLISH QoS 0, remaining length 10
		00 01 61 // topic "a"
		06       // property length 6
		23 00 01 // topic alias 1
		23 00 02 // topic alias 2`, ProtocolError},
	{"section 3.3.2.3.2 payload format indicator 2", Version5, 0, `
		30 06    // PUBLISH QoS 0, remaining length 6
		00 01 61 // topic "a"
		02       // property length 2
		01 02    // payload format indicator 2`, ProtocolError},
	{"section 3.3.2.3.8 subscription identifier 0", Version5, 0, `
		30 06    // PUBLISH QoS 0, remaining length 6
		00 01 61 // topic "a"
		02       // property length 2
		0b 00    // subscription identifier 0`, ProtocolError},
	{"section 2.2.2.2 session expiry in PUBLISH", Version5, 0, `
		30 09          // PUBLISH QoS 0, remaining length 9
		00 01 61       // topic "a"
		05             // property length 5
		11 00 00 00 0a // session expiry interval, a CONNECT property`, ProtocolError},
	{"section 3.3.2.3.9 content type twice", Version5, 0, `
		30 0c       // PUBLISH QoS 0, remaining length 12
		00 01 61    // topic "a"
		08          // property length 8
		03 00 01 74 // content type "t"
		03 00 01 74 // content type "t" again`, ProtocolError},
	{"[MQTT-3.3.2-13] response topic is not UTF-8", Version5, 0, `
		30 09          // PUBLISH QoS 0, remaining length 9
		00 01 61       // topic "a"
		05             // property length 5
		08 00 02 c3 28 // response topic: not UTF-8`, MalformedPacket},
	{"[MQTT-1.5.5-1] subscription identifier not in its shortest form", Version5, 0, `
		30 07    // PUBLISH QoS 0, remaining length 7
		00 01 61 // topic "a"
		03       // property length 3
		0b 81 00 // subscription identifier 1 in two bytes`, MalformedPacket},
	{"section 2.2.2.1 property length runs past the end", Version5, 0, `
		30 05    // PUBLISH QoS 0, remaining length 5
		00 01 61 // topic "a"
		05       // property length 5
		01       // one byte follows`, MalformedPacket},
	{"section 2.2.2.1 property length missing", Version5, 0, `
		30 03    // PUBLISH QoS 0, remaining length 3
		00 01 61 // topic "a", and nothing else`, MalformedPacket},
	{"section 2.2.2.1 property length of five bytes", Version5, 0, `
		30 08          // PUBLISH QoS 0, remaining length 8
		00 01 61       // topic "a"
		80 80 80 80 00 // property length with a fifth byte`, MalformedPacket},
	{"[MQTT-1.5.3-2] topic name holds U+0000", Version311, 0, `
		30 04       // PUBLISH QoS 0, remaining length 4
		00 02 61 00 // topic "a\x00"`, MalformedPacket},
	{"[MQTT-1.5.4-1] topic name holds a surrogate", Version5, 0, `
		30 06          // PUBLISH QoS 0, remaining length 6
		00 03 ed a0 80 // topic: U+D800 encoded
		00             // property length 0`, MalformedPacket},
	{"[MQTT-1.5.3-1] topic name is not UTF-8", Version311, 0, `
		30 04       // PUBLISH QoS 0, remaining length 4
		00 02 c3 28 // topic: not UTF-8`, MalformedPacket},
	{"section 3.3.2.1 topic name runs past the end", Version311, 0, `
		30 02 // PUBLISH QoS 0, remaining length 2
		00 05 // topic of 5 bytes, none present`, MalformedPacket},
	{"section 3.3.2.2 packet id cut short", Version311, 0, `
		32 04    // PUBLISH QoS 1, remaining length 4
		00 01 61 // topic "a"
		00       // one byte of the packet id`, MalformedPacket},
	{"section 3.3.2 topic name missing", Version5, 0, `
		30 01 // PUBLISH QoS 0, remaining length 1
		00    // one byte of the topic length`, MalformedPacket},

	// PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4 to 3.7).
	{"[MQTT-2.3.1-1] PUBACK packet id 0", Version311, 0, `
		40 02 // PUBACK, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"[MQTT-2.3.1-1] PUBREC packet id 0", Version311, 0, `
		50 02 // PUBREC, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"[MQTT-2.3.1-1] PUBREL packet id 0", Version311, 0, `
		62 02 // PUBREL, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"[MQTT-2.3.1-1] PUBCOMP packet id 0", Version311, 0, `
		70 02 // PUBCOMP, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"[MQTT-2.2.1-3] PUBACK packet id 0", Version5, 0, `
		40 03 // PUBACK, remaining length 3
		00 00 // packet id 0
		00    // success`, MalformedPacket},
	{"[MQTT-2.2.1-3] PUBCOMP packet id 0", Version5, 0, `
		70 02 // PUBCOMP, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"section 3.4.2.1 PUBACK reason code 0x92", Version5, 0, `
		40 03 // PUBACK, remaining length 3
		00 01 // packet id 1
		92    // packet identifier not found, a PUBREL reason`, ProtocolError},
	{"section 3.5.2.1 PUBREC reason code 0x8f", Version5, 0, `
		50 04 // PUBREC, remaining length 4
		00 01 // packet id 1
		8f    // topic filter invalid, a SUBACK reason
		00    // property length 0`, ProtocolError},
	{"section 3.6.2.1 PUBREL reason code 0x10", Version5, 0, `
		62 03 // PUBREL, remaining length 3
		00 01 // packet id 1
		10    // no matching subscribers, a PUBACK reason`, ProtocolError},
	{"section 3.7.2.1 PUBCOMP reason code 0x80", Version5, 0, `
		70 03 // PUBCOMP, remaining length 3
		00 01 // packet id 1
		80    // unspecified error, not a PUBCOMP reason`, ProtocolError},
	{"section 3.4.2 PUBACK bytes after the packet id", Version311, 0, `
		40 03 // PUBACK, remaining length 3
		00 01 // packet id 1
		00    // a 5.0 reason code`, MalformedPacket},
	{"section 3.5.2 PUBREC bytes after the packet id", Version311, 0, `
		50 03 // PUBREC, remaining length 3
		00 01 // packet id 1
		00    // a 5.0 reason code`, MalformedPacket},
	{"section 3.6.2 PUBREL bytes after the packet id", Version311, 0, `
		62 04 // PUBREL, remaining length 4
		00 01 // packet id 1
		00 00 // a 5.0 reason code and property length`, MalformedPacket},
	{"section 3.7.2 PUBCOMP bytes after the packet id", Version31, 0, `
		70 03 // PUBCOMP, remaining length 3
		00 01 // packet id 1
		00    // a 5.0 reason code`, MalformedPacket},
	{"section 3.4.2 PUBACK packet id cut short", Version311, 0, `
		40 01 // PUBACK, remaining length 1
		00    // one byte of the packet id`, MalformedPacket},
	{"section 3.5.2 PUBREC packet id missing", Version5, 0, `
		50 00 // PUBREC, remaining length 0`, MalformedPacket},
	{"section 3.6.2 PUBREL packet id cut short", Version5, 0, `
		62 01 // PUBREL, remaining length 1
		00    // one byte of the packet id`, MalformedPacket},
	{"section 3.7.2 PUBCOMP packet id missing", Version311, 0, `
		70 00 // PUBCOMP, remaining length 0`, MalformedPacket},
	{"section 3.4.2.2 PUBACK property length runs past the end", Version5, 0, `
		40 04 // PUBACK, remaining length 4
		00 01 // packet id 1
		00    // success
		05    // property length 5, nothing follows`, MalformedPacket},
	{"section 3.4.2.2 reason string runs past its property length", Version5, 0, `
		40 08 // PUBACK, remaining length 8
		00 01 // packet id 1
		00    // success
		02    // property length 2
		1f 00 // reason string with one byte of its length
		00 00 // bytes that the property length leaves out`, MalformedPacket},
	{"section 3.4.2 PUBACK bytes after the properties", Version5, 0, `
		40 05 // PUBACK, remaining length 5
		00 01 // packet id 1
		00    // success
		00    // property length 0
		ff    // one byte too many`, MalformedPacket},
	{"section 2.2.2.2 topic alias in PUBREC", Version5, 0, `
		50 07    // PUBREC, remaining length 7
		00 01    // packet id 1
		00       // success
		03       // property length 3
		23 00 01 // topic alias 1`, ProtocolError},
	{"section 3.6.2.2.2 reason string twice", Version5, 0, `
		62 0c       // PUBREL, remaining length 12
		00 01       // packet id 1
		92          // packet identifier not found
		08          // property length 8
		1f 00 01 72 // reason string "r"
		1f 00 01 72 // reason string "r" again`, ProtocolError},

	// SUBSCRIBE (section 3.8).
	{"[MQTT-3.8.3-3] SUBSCRIBE without a topic filter", Version311, 0, `
		82 02 // SUBSCRIBE, remaining length 2
		00 01 // packet id 1, and no payload`, ProtocolError},
	{"[MQTT-3.8.3-2] SUBSCRIBE without a topic filter", Version5, 0, `
		82 03 // SUBSCRIBE, remaining length 3
		00 01 // packet id 1
		00    // property length 0, and no payload`, ProtocolError},
	{"[MQTT-2.3.1-1] SUBSCRIBE packet id 0", Version311, 0, `
		82 06    // SUBSCRIBE, remaining length 6
		00 00    // packet id 0
		00 01 61 // filter "a"
		00       // QoS 0`, MalformedPacket},
	{"[MQTT-2.2.1-3] SUBSCRIBE packet id 0", Version5, 0, `
		82 07    // SUBSCRIBE, remaining length 7
		00 00    // packet id 0
		00       // property length 0
		00 01 61 // filter "a"
		00       // options`, MalformedPacket},
	{"[MQTT-3-8.3-4] requested QoS 3", Version311, 0, `
		82 06    // SUBSCRIBE, remaining length 6
		00 01    // packet id 1
		00 01 61 // filter "a"
		03       // QoS 3`, MalformedPacket},
	{"section 3.8.3.1 maximum QoS 3", Version5, 0, `
		82 07    // SUBSCRIBE, remaining length 7
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		03       // options: QoS 3`, ProtocolError},
	{"[MQTT-3-8.3-4] reserved bits of the requested QoS byte", Version311, 0, `
		82 06    // SUBSCRIBE, remaining length 6
		00 01    // packet id 1
		00 01 61 // filter "a"
		04       // QoS 0 and bit 2, the 5.0 no local option`, MalformedPacket},
	{"[MQTT-3-8.3-4] high bit of the requested QoS byte", Version31, 0, `
		82 06    // SUBSCRIBE, remaining length 6
		00 01    // packet id 1
		00 01 61 // filter "a"
		81       // QoS 1 and bit 7`, MalformedPacket},
	{"[MQTT-3.8.3-5] reserved subscription option bit 6", Version5, 0, `
		82 07    // SUBSCRIBE, remaining length 7
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		41       // options: QoS 1 and bit 6`, MalformedPacket},
	{"[MQTT-3.8.3-5] reserved subscription option bit 7", Version5, 0, `
		82 07    // SUBSCRIBE, remaining length 7
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		80       // options: bit 7`, MalformedPacket},
	{"section 3.8.3.1 retain handling 3", Version5, 0, `
		82 07    // SUBSCRIBE, remaining length 7
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		30       // options: retain handling 3`, ProtocolError},
	{"[MQTT-3.8.3-4] no local on a shared subscription", Version5, 0, `
		82 10                         // SUBSCRIBE, remaining length 16
		00 01                         // packet id 1
		00                            // property length 0
		00 0a 24 73 68 61 72 65 2f 67 // filter "$share/g/a"
		2f 61
		04                            // options: no local`, ProtocolError},
	{"section 3.8.2.1.2 two subscription identifiers", Version5, 0, `
		82 0b       // SUBSCRIBE, remaining length 11
		00 01       // packet id 1
		04          // property length 4
		0b 01       // subscription identifier 1
		0b 02       // subscription identifier 2
		00 01 61    // filter "a"
		00          // options`, ProtocolError},
	{"section 3.8.2.1.2 subscription identifier 0", Version5, 0, `
		82 09    // SUBSCRIBE, remaining length 9
		00 01    // packet id 1
		02       // property length 2
		0b 00    // subscription identifier 0
		00 01 61 // filter "a"
		00       // options`, ProtocolError},
	{"section 2.2.2.2 topic alias in SUBSCRIBE", Version5, 0, `
		82 0a    // SUBSCRIBE, remaining length 10
		00 01    // packet id 1
		03       // property length 3
		23 00 01 // topic alias 1
		00 01 61 // filter "a"
		00       // options`, ProtocolError},
	{"[MQTT-3.8.3-1] topic filter is not UTF-8", Version311, 0, `
		82 07       // SUBSCRIBE, remaining length 7
		00 01       // packet id 1
		00 02 c3 28 // filter: not UTF-8
		00          // QoS 0`, MalformedPacket},
	{"[MQTT-3.8.3-1] topic filter holds U+0000", Version5, 0, `
		82 08       // SUBSCRIBE, remaining length 8
		00 01       // packet id 1
		00          // property length 0
		00 02 61 00 // filter "a\x00"
		00          // options`, MalformedPacket},
	{"section 3.8.3 subscription options missing", Version311, 0, `
		82 05    // SUBSCRIBE, remaining length 5
		00 01    // packet id 1
		00 01 61 // filter "a", and no QoS byte`, MalformedPacket},
	{"section 3.8.3 second subscription options missing", Version5, 0, `
		82 0a    // SUBSCRIBE, remaining length 10
		00 01    // packet id 1
		00       // property length 0
		00 01 61 // filter "a"
		01       // options: QoS 1
		00 01 62 // filter "b", and no options`, MalformedPacket},
	{"section 3.8.3 topic filter runs past the end", Version311, 0, `
		82 05    // SUBSCRIBE, remaining length 5
		00 01    // packet id 1
		00 05 61 // filter of 5 bytes, 1 present`, MalformedPacket},
	{"section 3.8.2 SUBSCRIBE packet id cut short", Version311, 0, `
		82 01 // SUBSCRIBE, remaining length 1
		00    // one byte of the packet id`, MalformedPacket},
	{"section 3.8.2.1 property length runs past the end", Version5, 0, `
		82 03 // SUBSCRIBE, remaining length 3
		00 01 // packet id 1
		05    // property length 5, nothing follows`, MalformedPacket},

	// SUBACK (section 3.9).
	{"[MQTT-2.3.1-1] SUBACK packet id 0", Version311, 0, `
		90 03 // SUBACK, remaining length 3
		00 00 // packet id 0
		00    // granted QoS 0`, MalformedPacket},
	{"section 3.9.3 SUBACK return code 3", Version311, 0, `
		90 03 // SUBACK, remaining length 3
		00 01 // packet id 1
		03    // return code 3, reserved`, ProtocolError},
	{"section 3.9.3 SUBACK return code 0x81", Version311, 0, `
		90 03 // SUBACK, remaining length 3
		00 01 // packet id 1
		81    // return code 0x81, reserved`, ProtocolError},
	{"section 3.9.3 SUBACK without a return code", Version311, 0, `
		90 02 // SUBACK, remaining length 2
		00 01 // packet id 1`, ProtocolError},
	{"section 3.9.3 SUBACK reason code 0x81", Version5, 0, `
		90 04 // SUBACK, remaining length 4
		00 01 // packet id 1
		00    // property length 0
		81    // malformed packet, not a SUBACK reason`, ProtocolError},
	{"section 3.9.3 SUBACK without a reason code", Version5, 0, `
		90 03 // SUBACK, remaining length 3
		00 01 // packet id 1
		00    // property length 0`, ProtocolError},
	{"section 3.9.2 SUBACK packet id cut short", Version5, 0, `
		90 01 // SUBACK, remaining length 1
		00    // one byte of the packet id`, MalformedPacket},
	{"section 2.2.2.2 subscription identifier in SUBACK", Version5, 0, `
		90 06 // SUBACK, remaining length 6
		00 01 // packet id 1
		02    // property length 2
		0b 01 // subscription identifier 1
		00    // granted QoS 0`, ProtocolError},

	// UNSUBSCRIBE (section 3.10).
	{"[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter", Version311, 0, `
		a2 02 // UNSUBSCRIBE, remaining length 2
		00 01 // packet id 1, and no payload`, ProtocolError},
	{"[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter", Version5, 0, `
		a2 03 // UNSUBSCRIBE, remaining length 3
		00 01 // packet id 1
		00    // property length 0, and no payload`, ProtocolError},
	{"[MQTT-2.3.1-1] UNSUBSCRIBE packet id 0", Version311, 0, `
		a2 05    // UNSUBSCRIBE, remaining length 5
		00 00    // packet id 0
		00 01 61 // filter "a"`, MalformedPacket},
	{"[MQTT-2.2.1-3] UNSUBSCRIBE packet id 0", Version5, 0, `
		a2 06    // UNSUBSCRIBE, remaining length 6
		00 00    // packet id 0
		00       // property length 0
		00 01 61 // filter "a"`, MalformedPacket},
	{"[MQTT-3.10.3-1] topic filter holds U+0000", Version311, 0, `
		a2 05    // UNSUBSCRIBE, remaining length 5
		00 01    // packet id 1
		00 01 00 // filter "\x00"`, MalformedPacket},
	{"[MQTT-3.10.3-1] topic filter with an overlong encoding", Version5, 0, `
		a2 07       // UNSUBSCRIBE, remaining length 7
		00 01       // packet id 1
		00          // property length 0
		00 02 c0 af // filter: '/' in two bytes`, MalformedPacket},
	{"section 3.10.3 topic filter runs past the end", Version311, 0, `
		a2 04 // UNSUBSCRIBE, remaining length 4
		00 01 // packet id 1
		00 05 // filter of 5 bytes, none present`, MalformedPacket},
	{"section 2.2.2.2 subscription identifier in UNSUBSCRIBE", Version5, 0, `
		a2 08    // UNSUBSCRIBE, remaining length 8
		00 01    // packet id 1
		02       // property length 2
		0b 01    // subscription identifier 1
		00 01 61 // filter "a"`, ProtocolError},

	// UNSUBACK (section 3.11).
	{"[MQTT-2.3.1-1] UNSUBACK packet id 0", Version311, 0, `
		b0 02 // UNSUBACK, remaining length 2
		00 00 // packet id 0`, MalformedPacket},
	{"section 3.11.2 UNSUBACK bytes after the packet id", Version311, 0, `
		b0 03 // UNSUBACK, remaining length 3
		00 01 // packet id 1
		00    // a 5.0 property length`, MalformedPacket},
	{"section 3.11.3 UNSUBACK without a reason code", Version5, 0, `
		b0 03 // UNSUBACK, remaining length 3
		00 01 // packet id 1
		00    // property length 0`, ProtocolError},
	{"section 3.11.3 UNSUBACK reason code 0x02", Version5, 0, `
		b0 04 // UNSUBACK, remaining length 4
		00 01 // packet id 1
		00    // property length 0
		02    // granted QoS 2, a SUBACK reason`, ProtocolError},
	{"section 3.11.2 UNSUBACK packet id cut short", Version311, 0, `
		b0 01 // UNSUBACK, remaining length 1
		00    // one byte of the packet id`, MalformedPacket},

	// PINGREQ, PINGRESP (sections 3.12, 3.13).
	{"section 3.12 PINGREQ with a body", Version311, 0, `
		c0 01 // PINGREQ, remaining length 1
		00    // a body it cannot have`, MalformedPacket},
	{"section 3.12 PINGREQ with a body", Version5, 0, `
		c0 02 // PINGREQ, remaining length 2
		00 00 // a body it cannot have`, MalformedPacket},
	{"section 3.13 PINGRESP with a body", Version311, 0, `
		d0 01 // PINGRESP, remaining length 1
		00    // a body it cannot have`, MalformedPacket},
	{"section 3.13 PINGRESP with a body", Version5, 0, `
		d0 01 // PINGRESP, remaining length 1
		00    // a body it cannot have`, MalformedPacket},

	// DISCONNECT (section 3.14).
	{"section 3.14 DISCONNECT with a body", Version311, 0, `
		e0 01 // DISCONNECT, remaining length 1
		00    // a 5.0 reason code`, MalformedPacket},
	{"section 3.14 DISCONNECT with a body", Version31, 0, `
		e0 02 // DISCONNECT, remaining length 2
		00 00 // a 5.0 reason code and property length`, MalformedPacket},
	{"section 3.14.2.1 DISCONNECT reason code 0x03", Version5, 0, `
		e0 01 // DISCONNECT, remaining length 1
		03    // reason code 0x03, not defined`, ProtocolError},
	{"section 3.14.2.1 DISCONNECT reason code 0x18", Version5, 0, `
		e0 02 // DISCONNECT, remaining length 2
		18    // continue authentication, an AUTH reason
		00    // property length 0`, ProtocolError},
	{"section 2.2.2.2 topic alias in DISCONNECT", Version5, 0, `
		e0 05    // DISCONNECT, remaining length 5
		00       // normal disconnection
		03       // property length 3
		23 00 01 // topic alias 1`, ProtocolError},
	{"section 3.14.2.2.2 session expiry interval twice", Version5, 0, `
		e0 0c          // DISCONNECT, remaining length 12
		00             // normal disconnection
		0a             // property length 10
		11 00 00 00 01 // session expiry interval 1
		11 00 00 00 02 // session expiry interval 2`, ProtocolError},
	{"section 3.14.2.2.1 property length runs past the end", Version5, 0, `
		e0 02 // DISCONNECT, remaining length 2
		00    // normal disconnection
		05    // property length 5, nothing follows`, MalformedPacket},
	{"section 3.14.2 bytes after the properties", Version5, 0, `
		e0 03 // DISCONNECT, remaining length 3
		00    // normal disconnection
		00    // property length 0
		00    // one byte too many`, MalformedPacket},

	// AUTH (section 3.15).
	{"section 3.15.2.1 AUTH reason code 0x87", Version5, 0, `
		f0 01 // AUTH, remaining length 1
		87    // not authorized, not an AUTH reason`, ProtocolError},
	{"section 2.2.2.2 session expiry in AUTH", Version5, 0, `
		f0 07          // AUTH, remaining length 7
		18             // continue authentication
		05             // property length 5
		11 00 00 00 0a // session expiry interval, a CONNECT property`, ProtocolError},
	{"section 3.15.2.2.2 authentication method twice", Version5, 0, `
		f0 0a       // AUTH, remaining length 10
		18          // continue authentication
		08          // property length 8
		15 00 01 6d // authentication method "m"
		15 00 01 6d // authentication method "m" again`, ProtocolError},
	{"section 3.15.2.2.1 property length runs past the end", Version5, 0, `
		f0 02 // AUTH, remaining length 2
		18    // continue authentication
		03    // property length 3, nothing follows`, MalformedPacket},
}

// TestMalformed decodes every malformed row through Decode and through a Reader and
// checks that both report the row's reason code.
func TestMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.v.String()+" "+tc.name, func(t *testing.T) {
			b := hexBytes(t, tc.bytes)
			if rl, n, err := decodeVBI(b[1:]); err == nil && tc.max == 0 && 1+n+rl != len(b) {
				t.Fatalf("row is %d bytes, its fixed header frames %d", len(b), 1+n+rl)
			}
			_, _, err := Decode(b, tc.v, tc.max)
			checkCode(t, "Decode", err, tc.code)
			_, err = readOne(b, tc.v, tc.max)
			checkCode(t, "Reader", err, tc.code)
		})
	}
}

func checkCode(t *testing.T, via string, err error, want ReasonCode) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v, want an *Error with %v (0x%02x)", via, err, want, byte(want))
	}
	if e.Code != want {
		t.Fatalf("%s: %v: code %v (0x%02x), want %v (0x%02x)", via, e, e.Code, byte(e.Code), want, byte(want))
	}
}

// TestPacketTooLargeFromFixedHeader gives the Reader nothing but a fixed header that
// claims a packet larger than the maximum: it must refuse the packet from the header
// alone, without reading, or waiting for, the body.
func TestPacketTooLargeFromFixedHeader(t *testing.T) {
	header := []byte{0x30, 0xff, 0xff, 0x7f} // PUBLISH, remaining length 2097151
	errBody := errors.New("the Reader read past the fixed header")
	streams := map[string]io.Reader{
		"header then EOF":   bytes.NewReader(header),
		"header then error": io.MultiReader(bytes.NewReader(header), &errReader{errBody}),
	}
	for name, stream := range streams {
		t.Run(name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(stream))
			r.Version = Version5
			r.MaxPacketSize = 1024
			_, err := r.ReadPacket()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errBody) {
				t.Fatalf("ReadPacket = %v, want packet too large from the fixed header", err)
			}
			checkCode(t, "Reader", err, PacketTooLarge)
		})
	}
}

// errReader fails every Read with err.
type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestMaxPacketSizeBoundary checks that a packet of exactly the maximum size is read.
func TestMaxPacketSizeBoundary(t *testing.T) {
	b := hexBytes(t, `
		30 0a          // PUBLISH QoS 0, remaining length 10, 12 bytes in all
		00 03 61 2f 62 // topic "a/b"
		68 65 6c 6c 6f // payload "hello"`)
	if _, _, err := Decode(b, Version311, len(b)); err != nil {
		t.Fatalf("Decode with maximum %d: %v", len(b), err)
	}
	if _, err := readOne(b, Version311, len(b)); err != nil {
		t.Fatalf("Reader with maximum %d: %v", len(b), err)
	}
}

// TestReaderTruncatedStream cuts a stream of packets at every byte: the Reader must
// return io.EOF when the cut falls between packets and io.ErrUnexpectedEOF when it
// falls inside one, in the fixed header or in the body, and Decode must report the
// packet cut short as malformed.
func TestReaderTruncatedStream(t *testing.T) {
	big := &Publish{QoS: AtLeastOnce, PacketID: 9, Topic: "big", Payload: bytes.Repeat([]byte{0xab}, 5000)}
	packets := []Packet{
		&Connect{Version: Version5, CleanStart: true, KeepAlive: 30, ClientID: "c"},
		&Publish{Topic: "a/b", Payload: []byte("hello")},
		&Pingreq{},
		big, // larger than the bufio.Reader's buffer: read in chunks
		&Puback{PacketID: 9, ReasonCode: NoMatchingSubscribers},
		&Disconnect{},
	}
	var stream []byte
	ends := map[int]bool{0: true}
	for _, p := range packets {
		var err error
		start := len(stream)
		if stream, err = p.Encode(stream, Version5); err != nil {
			t.Fatalf("encode %v: %v", p.Type(), err)
		}
		ends[len(stream)] = true
		for cut := start + 1; cut < len(stream); cut++ {
			if _, _, err := Decode(stream[start:cut], Version5, 0); CodeOf(err) != MalformedPacket {
				t.Fatalf("Decode of %v cut to %d of %d bytes: %v, want malformed packet", p.Type(), cut-start, len(stream)-start, err)
			}
		}
	}
	for cut := 0; cut <= len(stream); cut++ {
		r := NewReader(bufio.NewReader(bytes.NewReader(stream[:cut])))
		read := 0
		var err error
		for err == nil {
			if _, err = r.ReadPacket(); err == nil {
				read++
			}
		}
		want := io.ErrUnexpectedEOF
		if ends[cut] {
			want = io.EOF
		}
		if err != want {
			t.Fatalf("stream cut at byte %d of %d: error %v after %d packets, want %v", cut, len(stream), err, read, want)
		}
	}
}

// TestReaderDoesNotTrustLength sends a fixed header that claims 200 MB, with no
// maximum packet size, then 10 bytes and the end of the stream. The Reader must
// fail with io.ErrUnexpectedEOF having allocated about what arrived, not what was
// claimed.
func TestReaderDoesNotTrustLength(t *testing.T) {
	const claimed = 200 << 20
	stream := []byte{0x30, 0x80, 0x80, 0x80, 0x64} // PUBLISH, remaining length 100·128³ = 200 MiB
	if rl, _, err := decodeVBI(stream[1:]); err != nil || rl != claimed {
		t.Fatalf("header claims %d (%v), want %d", rl, err, claimed)
	}
	stream = append(stream, 0x00, 0x03, 'a', '/', 'b', 1, 2, 3, 4, 5) // 10 bytes of body
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewReader(bufio.NewReader(bytes.NewReader(stream)))
	r.Version = Version311
	_, err := r.ReadPacket()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadPacket = %v, want io.ErrUnexpectedEOF", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("allocated %d bytes for a 15-byte stream claiming %d", alloc, claimed)
	}
}
