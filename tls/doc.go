// Package tls loads the certificates of Avocet's tls and wss listeners, keeps
// them fresh, and issues throwaway certificates for tests and local use.
//
// A Server holds one listener's certificate, private key and client CA pool,
// read from PEM files. Its TLSConfig is handed to the listener package once;
// every handshake asks the Server for the certificate and CA pool current at
// that moment (through GetConfigForClient), so Reload, which re-reads the
// files, changes what new connections get without touching established ones:
// a certificate can be renewed without a restart and without dropping a
// client. A reload that fails (a missing file, bad PEM, a key that does not
// match its certificate) keeps what was loaded before and returns the error,
// which names the file. Watch polls the files and reloads them when they
// change; the command also reloads on SIGHUP.
//
// The settings each Server applies:
//
//   - Client certificates: with a CA file, a client certificate is verified
//     against it when the client sends one (crypto/tls
//     VerifyClientCertIfGiven), and required when RequireClientCert is set
//     (RequireAndVerifyClientCert). Without a CA file none is asked for.
//     Resumed sessions are checked against the CA pool current at resumption.
//   - Minimum version: TLS 1.2 unless "1.3" is configured.
//   - Cipher suites: TLS 1.2 suites by their Go names, which are the IANA
//     names (crypto/tls.CipherSuites lists them); none given keeps Go's
//     defaults. TLS 1.3 suites are not configurable in Go, so naming one is
//     an error.
//   - ALPN: the protocols given are offered (the command offers "mqtt" on tls
//     listeners). A client that offers ALPN protocols, none of them ours, is
//     refused with the no_application_protocol alert, as RFC 7301 section 3.2
//     requires; a client that offers none is served. The listener package
//     sets "http/1.1" for wss itself, so wss needs none here.
//
// GenerateCA, GenerateServer and GenerateClient issue ECDSA P-256
// certificates: a CA, a server certificate whose subject alternative names
// are the given DNS names and IP addresses, and a client certificate whose
// common name is the client's identity (what use_identity_as_username takes
// as the username). `avocet cert` writes them as PEM files.
//
// What the package is not: it opens no sockets (the listener package does),
// and it does not decide who may connect; the command maps a verified client
// certificate to a username and the auth package takes it from there.
package tls
