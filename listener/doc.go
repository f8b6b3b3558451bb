// Package listener opens the network endpoints MQTT clients connect to and
// yields each client connection as a net.Conn carrying the MQTT byte stream.
//
// Four kinds exist, one per Config.Kind:
//
//   - "tcp": plain TCP (default port 1883).
//   - "tls": TLS over TCP (default port 8883).
//   - "ws":  WebSocket, served by an HTTP server on Config.Path (default port 8080).
//   - "wss": WebSocket over TLS (default port 8443).
//
// The broker calls Listen once per configured listener and then Accept in a
// loop, running the MQTT protocol on every connection it gets. It owns those
// connections: it must Close each one, and closing a Listener never closes
// them.
//
// What the package is not: it knows nothing of MQTT packets, so it enforces
// neither the maximum packet size nor the CONNECT timeout; the broker does,
// by reading and by setting deadlines. It does not load certificates either:
// the tls package builds the *tls.Config and the caller passes it in.
//
// # TLS
//
// For the tls kind, the TLS handshake runs lazily on the connection's first
// Read or Write (crypto/tls does that), in the broker's goroutine for that
// connection, so a slow or failing handshake never delays Accept of other
// connections. The broker's CONNECT timeout (a read deadline) covers the
// handshake; a failed handshake surfaces as an error from that first Read.
// For the wss kind the HTTP server completes the handshake before the
// WebSocket upgrade, bounded by Config.ReadHeaderTimeout. TLSState gives the
// negotiated state, including client certificates, of either kind.
//
// # WebSocket
//
// This covers section 6 of MQTT 3.1.1 and of MQTT 5.0, "Using WebSocket as a
// network transport":
//
//   - [MQTT-6.0.0-1] Only binary data frames carry MQTT. A text frame makes
//     the connection's Read fail and closes the WebSocket with status 1003
//     (unsupported data).
//   - [MQTT-6.0.0-2] Frame boundaries mean nothing: the connection is a byte
//     stream, so one frame may hold several packets and one packet may span
//     several frames. Each Write is sent as one binary message.
//   - [MQTT-6.0.0-3] and [MQTT-6.0.0-4] The subprotocol "mqtt" is selected
//     when the client offers it; "mqttv3.1", used by MQTT 3.1 clients, is
//     accepted too. A client offering no subprotocol at all is accepted
//     without one, because many embedded clients omit the header; a client
//     offering only other subprotocols is refused with 400 Bad Request.
//
// Requests for paths other than Config.Path get 404. Any Origin is accepted:
// MQTT clients running in browser pages served from other origins are the
// normal case, and MQTT authenticates clients itself at CONNECT.
//
// WebSocket connections differ from TCP ones in two ways. A deadline that
// expires closes the connection whenever a Read or Write is in progress at
// that moment, or starts just as it expires, so treat an expired deadline
// as the end of the connection (the broker does: an expired keep-alive
// closes it anyway). The Read or Write still fails with an error for which
// errors.Is(err, os.ErrDeadlineExceeded) holds, as on TCP. And Close first
// tries the WebSocket close handshake, which waits for the peer's answer
// for up to two seconds.
package listener
