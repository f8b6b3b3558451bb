package mqtt

import (
	"errors"
	"fmt"
)

// Error is a protocol violation found while decoding or validating a packet. Code is
// the reason code a broker sends before it closes the connection: in a CONNACK when
// the violation is in CONNECT, otherwise in a DISCONNECT (MQTT 5.0, section 4.13).
// Take it with errors.As.
type Error struct {
	Code   ReasonCode // MalformedPacket, ProtocolError, PacketTooLarge, ...
	Packet PacketType // the packet being decoded; zero when unknown
	Reason string     // what was wrong, for logs
}

// Error describes the violation.
func (e *Error) Error() string {
	if e.Packet != 0 {
		return fmt.Sprintf("mqtt: %s: %s: %s", e.Packet, e.Code, e.Reason)
	}
	return fmt.Sprintf("mqtt: %s: %s", e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrMalformed) and friends match any *Error with that code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Packet == 0 && t.Reason == "" && t.Code == e.Code
	}
	return false
}

// Sentinels for errors.Is: they match every *Error with the same code.
var (
	ErrMalformed      = &Error{Code: MalformedPacket}
	ErrProtocol       = &Error{Code: ProtocolError}
	ErrPacketTooLarge = &Error{Code: PacketTooLarge}
	ErrUnsupported    = &Error{Code: UnsupportedProtocolVersion}
)

func malformed(t PacketType, reason string) *Error {
	return &Error{Code: MalformedPacket, Packet: t, Reason: reason}
}

func protocolErr(t PacketType, reason string) *Error {
	return &Error{Code: ProtocolError, Packet: t, Reason: reason}
}

// CodeOf returns the reason code carried by err, or UnspecifiedError when err is not an *Error.
func CodeOf(err error) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}
