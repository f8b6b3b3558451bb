// Package mqtt is the MQTT wire protocol of versions 3.1, 3.1.1 and 5.0: the fifteen
// control packets, MQTT 5 properties and reason codes, the variable byte integer,
// UTF-8 string rules, topic name and topic filter validation, and topic matching.
//
// It knows nothing of brokers, sessions or connections and imports only the
// standard library. A broker reads packets with a [Reader], which enforces a maximum
// packet size from the fixed header before it reads the body, decodes into structs
// it reuses from one packet to the next, and reports a malformed packet as an
// [*Error] that carries the [ReasonCode] to send. Packets are encoded by appending
// to a caller's buffer, so that a broker can move a message without allocating.
//
// The specifications are MQTT Version 3.1 (protocol name "MQIsdp", level 3),
// MQTT Version 3.1.1 (OASIS Standard, level 4) and MQTT Version 5.0 (OASIS
// Standard, level 5). Checks that enforce a normative statement cite it, as in
// [MQTT-3.3.1-4].
package mqtt
