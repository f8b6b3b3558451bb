package mqtt

import "strconv"

// Version is the protocol level carried in CONNECT.
type Version byte

// Protocol levels.
const (
	Version31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	Version311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	Version5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// Valid reports whether v is a protocol level this package speaks.
func (v Version) Valid() bool { return v >= Version31 && v <= Version5 }

// String returns the version as users write it.
func (v Version) String() string {
	switch v {
	case Version31:
		return "3.1"
	case Version311:
		return "3.1.1"
	case Version5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// PacketType is the control packet type of the fixed header (bits 7-4 of its first byte).
type PacketType byte

// The control packet types. Zero is reserved and never valid.
const (
	CONNECT PacketType = iota + 1
	CONNACK
	PUBLISH
	PUBACK
	PUBREC
	PUBREL
	PUBCOMP
	SUBSCRIBE
	SUBACK
	UNSUBSCRIBE
	UNSUBACK
	PINGREQ
	PINGRESP
	DISCONNECT
	AUTH
)

var packetTypeNames = [...]string{"", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name as the specifications write it.
func (t PacketType) String() string {
	if t >= CONNECT && t <= AUTH {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// fixedFlags holds the required flag bits of every packet type but PUBLISH [MQTT-2.1.3-1].
var fixedFlags = [...]byte{PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2, AUTH: 0}

// QoS is a quality of service level.
type QoS byte

// The quality of service levels.
const (
	AtMostOnce  QoS = 0
	AtLeastOnce QoS = 1
	ExactlyOnce QoS = 2
)

// String returns "QoS 0", "QoS 1" or "QoS 2".
func (q QoS) String() string { return "QoS " + strconv.Itoa(int(q)) }

// MaxRemainingLength is the largest remaining length a variable byte integer can carry.
const MaxRemainingLength = 268435455

// MaxPacketSize is the largest packet the protocol allows: a fixed header of five bytes
// and the largest remaining length.
const MaxPacketSize = MaxRemainingLength + 5

// MaxSubscriptionID is the largest subscription identifier.
const MaxSubscriptionID = MaxRemainingLength

// StringPair is a name and value pair, as in an MQTT 5 user property.
type StringPair struct {
	Name  string
	Value string
}
