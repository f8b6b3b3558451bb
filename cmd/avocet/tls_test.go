package main

import (
	"bufio"
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/avocet-mqtt/avocet/mqtt"
	avtls "github.com/avocet-mqtt/avocet/tls"
)

const certValidity = 24 * time.Hour

// testPKI is a CA and a server certificate for 127.0.0.1, generated for one
// test and written to its files.
type testPKI struct {
	ca                        *avtls.KeyPair
	server                    *avtls.KeyPair
	caFile, certFile, keyFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server.key"),
	}
	var err error
	if p.ca, err = avtls.GenerateCA("avocet test CA", certValidity); err != nil {
		t.Fatal(err)
	}
	if err := p.ca.WriteFiles(p.caFile, filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if p.server, err = avtls.GenerateServer(p.ca, []string{"127.0.0.1", "localhost"}, certValidity); err != nil {
		t.Fatal(err)
	}
	if err := p.server.WriteFiles(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientCert issues a client certificate of ca with common name name.
func clientCert(t *testing.T, ca *avtls.KeyPair, name string) cryptotls.Certificate {
	t.Helper()
	kp, err := avtls.GenerateClient(ca, name, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	return kp.TLSCertificate()
}

// clientTLS trusts p's CA and presents certs.
func (p *testPKI) clientTLS(certs ...cryptotls.Certificate) *cryptotls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return &cryptotls.Config{RootCAs: pool, Certificates: certs}
}

// tlsConfig is a configuration with a tcp listener and a tls listener on
// p's files, with extra lines in the tls listener's table, then rest.
func (p *testPKI) tlsConfig(dir, listenerExtra, rest string) string {
	return fmt.Sprintf(`
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[[listener]]
kind = "tls"
address = "127.0.0.1:0"
cert_file = %q
key_file = %q
ca_file = %q
%s
[admin]
address = ""

[mqtt]
sys_interval = "0s"

[store]
dir = %q
%s`, p.certFile, p.keyFile, p.caFile, listenerExtra, dir, rest)
}

// dialTLS connects to addr with cc and completes the handshake.
func dialTLS(t *testing.T, addr string, cc *cryptotls.Config) (*cryptotls.Conn, error) {
	t.Helper()
	c, err := cryptotls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cc)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mqttOverTLS connects an MQTT client of version v over TLS.
func mqttOverTLS(t *testing.T, addr string, cc *cryptotls.Config, v mqtt.Version, id string) (*mqttClient, *cryptotls.Conn) {
	t.Helper()
	c, err := dialTLS(t, addr, cc)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return newClient(t, c, v, id), c
}

// tlsRefusal dials with cc, sends CONNECT and returns the error that ends the
// connection before a CONNACK, or nil if a CONNACK came. A TLS 1.3 server
// refuses a client certificate after the client's side of the handshake is
// done, so the refusal may show only on the first read.
func tlsRefusal(t *testing.T, addr string, cc *cryptotls.Config) error {
	t.Helper()
	c, err := dialTLS(t, addr, cc)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	b, err := (&mqtt.Connect{Version: mqtt.Version311, CleanStart: true, ClientID: "refused", KeepAlive: 30}).Encode(nil, mqtt.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		return err
	}
	r := mqtt.NewReader(bufio.NewReader(c))
	r.Version = mqtt.Version311
	if _, err := r.ReadPacket(); err != nil {
		return err
	}
	return nil
}

func TestTLSListener(t *testing.T) {
	p := newTestPKI(t)
	_, addrs := startAvocet(t, p.tlsConfig(t.TempDir(), "", ""))

	tcp, err := net.Dial("tcp", addrs["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sub := newClient(t, tcp, mqtt.Version311, "tcp-sub")
	sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "secure/#", QoS: 1}}})
	if ack, ok := sub.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK: %#v", ack)
	}

	cc := p.clientTLS()
	cc.NextProtos = []string{"mqtt"}
	pub, conn := mqttOverTLS(t, addrs["tls"], cc, mqtt.Version5, "tls-pub")
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != "mqtt" || st.Version < cryptotls.VersionTLS12 ||
		st.PeerCertificates[0].SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatalf("TLS state: ALPN %q, version %s, certificate %v", st.NegotiatedProtocol, cryptotls.VersionName(st.Version), st.PeerCertificates[0].Subject)
	}
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 3, Topic: "secure/hello", Payload: []byte("over TLS")})
	if ack, ok := pub.read().(*mqtt.Puback); !ok || ack.PacketID != 3 || ack.ReasonCode.IsError() {
		t.Fatalf("PUBACK: %#v", ack)
	}
	if got, ok := sub.read().(*mqtt.Publish); !ok || got.Topic != "secure/hello" || string(got.Payload) != "over TLS" {
		t.Fatalf("delivered: %#v", got)
	}

	// A client certificate is optional here, and one of the CA is accepted.
	if _, err := dialTLS(t, addrs["tls"], p.clientTLS(clientCert(t, p.ca, "device-1"))); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
}

func TestTLSClientCertificateRequired(t *testing.T) {
	p := newTestPKI(t)
	_, addrs := startAvocet(t, p.tlsConfig(t.TempDir(), "require_client_cert = true\n", ""))
	addr := addrs["tls"]

	if err := tlsRefusal(t, addr, p.clientTLS()); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("client without a certificate: %v, want the certificate required alert", err)
	}
	otherCA, err := avtls.GenerateCA("avocet test CA", certValidity) // the same name, another key
	if err != nil {
		t.Fatal(err)
	}
	err = tlsRefusal(t, addr, p.clientTLS(clientCert(t, otherCA, "device-1")))
	if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("client with a certificate of another CA: %v, want the unknown CA alert", err)
	}
	// TLS 1.2 fails the handshake itself.
	cc := p.clientTLS()
	cc.MaxVersion = cryptotls.VersionTLS12
	if _, err := dialTLS(t, addr, cc); err == nil {
		t.Fatal("TLS 1.2 client without a certificate: handshake succeeded")
	}

	c, _ := mqttOverTLS(t, addr, p.clientTLS(clientCert(t, p.ca, "device-1")), mqtt.Version311, "device-1")
	c.send(&mqtt.Pingreq{})
	if _, ok := c.read().(*mqtt.Pingresp); !ok {
		t.Fatal("no PINGRESP")
	}
}

func TestTLSIdentityAsUsername(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	aclFile := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclFile, []byte("user device-1\ntopic readwrite devices/device-1/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := p.tlsConfig(dir, "require_client_cert = true\nuse_identity_as_username = true\n",
		fmt.Sprintf("\n[auth]\nallow_anonymous = false\nacl_file = %q\n", aclFile))
	_, addrs := startAvocet(t, cfg)

	dev, _ := mqttOverTLS(t, addrs["tls"], p.clientTLS(clientCert(t, p.ca, "device-1")), mqtt.Version5, "dev")
	dev.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "devices/device-1/#", QoS: 1}}})
	if ack, ok := dev.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK for device-1: %#v", ack)
	}
	dev.send(&mqtt.Publish{QoS: 1, PacketID: 2, Topic: "devices/device-1/temp", Payload: []byte("21.5")})
	var acked, delivered bool
	for !acked || !delivered {
		switch pk := dev.read().(type) {
		case *mqtt.Puback:
			if pk.PacketID != 2 || pk.ReasonCode.IsError() {
				t.Fatalf("PUBACK for device-1: %#v", pk)
			}
			acked = true
		case *mqtt.Publish:
			if pk.Topic != "devices/device-1/temp" || string(pk.Payload) != "21.5" {
				t.Fatalf("delivered: %#v", pk)
			}
			if pk.QoS > 0 {
				dev.send(&mqtt.Puback{PacketID: pk.PacketID})
			}
			delivered = true
		default:
			t.Fatalf("unexpected %T", pk)
		}
	}

	// The certificate of "other" is as valid, but the ACL grants its
	// username nothing.
	other, _ := mqttOverTLS(t, addrs["tls"], p.clientTLS(clientCert(t, p.ca, "other")), mqtt.Version5, "other")
	other.send(&mqtt.Publish{QoS: 1, PacketID: 3, Topic: "devices/device-1/temp", Payload: []byte("forged")})
	if ack, ok := other.read().(*mqtt.Puback); !ok || ack.ReasonCode != mqtt.NotAuthorized {
		t.Fatalf("PUBACK for other: %#v, want reason 0x87", ack)
	}
}

func TestTLSMinVersionAndCipherSuites(t *testing.T) {
	p := newTestPKI(t)
	_, addrs := startAvocet(t, p.tlsConfig(t.TempDir(), "min_tls_version = \"1.3\"\n", ""))
	cc := p.clientTLS()
	cc.MaxVersion = cryptotls.VersionTLS12
	if _, err := dialTLS(t, addrs["tls"], cc); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.2 client with min_tls_version 1.3: %v, want a protocol version alert", err)
	}
	if _, conn := mqttOverTLS(t, addrs["tls"], p.clientTLS(), mqtt.Version311, "tls13"); conn.ConnectionState().Version != cryptotls.VersionTLS13 {
		t.Fatal("not TLS 1.3")
	}

	const suite = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
	_, addrs = startAvocet(t, p.tlsConfig(t.TempDir(), "cipher_suites = [\""+suite+"\"]\n", ""))
	cc = p.clientTLS()
	cc.MaxVersion = cryptotls.VersionTLS12
	_, conn := mqttOverTLS(t, addrs["tls"], cc, mqtt.Version311, "tls12")
	if got := cryptotls.CipherSuiteName(conn.ConnectionState().CipherSuite); got != suite {
		t.Fatalf("negotiated %s, want %s", got, suite)
	}
	cc.CipherSuites = []uint16{cryptotls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if _, err := dialTLS(t, addrs["tls"], cc); err == nil {
		t.Fatal("a client without the configured suite connected")
	}
}

func TestTLSReloadOnSIGHUPKeepsConnections(t *testing.T) {
	p := newTestPKI(t)
	cmd, addrs := startAvocet(t, p.tlsConfig(t.TempDir(), "", ""))
	addr := addrs["tls"]

	before, beforeConn := mqttOverTLS(t, addr, p.clientTLS(), mqtt.Version5, "before")
	before.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "reload/#", QoS: 1}}})
	if ack, ok := before.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK: %#v", ack)
	}

	next, err := avtls.GenerateServer(p.ca, []string{"127.0.0.1", "reloaded.test"}, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.WriteFiles(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := dialTLS(t, addr, p.clientTLS())
		if err != nil {
			t.Fatalf("handshake during reload: %v", err)
		}
		got := c.ConnectionState().PeerCertificates[0]
		c.Close()
		if got.SerialNumber.Cmp(next.Cert.SerialNumber) == 0 && got.Subject.CommonName == "127.0.0.1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new connection still gets certificate %x after SIGHUP, want %x", got.SerialNumber, next.Cert.SerialNumber)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A new connection publishes; the connection from before the reload, still
	// on the old certificate, receives it and publishes too.
	after, _ := mqttOverTLS(t, addr, p.clientTLS(), mqtt.Version5, "after")
	after.send(&mqtt.Publish{QoS: 1, PacketID: 5, Topic: "reload/new", Payload: []byte("from after")})
	if ack, ok := after.read().(*mqtt.Puback); !ok || ack.ReasonCode.IsError() {
		t.Fatalf("PUBACK: %#v", ack)
	}
	if got, ok := before.read().(*mqtt.Publish); !ok || got.Topic != "reload/new" {
		t.Fatalf("old connection received %#v", got)
	} else {
		before.send(&mqtt.Puback{PacketID: got.PacketID})
	}
	before.send(&mqtt.Publish{QoS: 1, PacketID: 6, Topic: "reload/old", Payload: []byte("from before")})
	var acked, echoed bool
	for !acked || !echoed {
		switch pk := before.read().(type) {
		case *mqtt.Puback:
			acked = pk.PacketID == 6 && !pk.ReasonCode.IsError()
		case *mqtt.Publish:
			echoed = pk.Topic == "reload/old"
			before.send(&mqtt.Puback{PacketID: pk.PacketID})
		}
	}
	if beforeConn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatal("the old connection's certificate changed")
	}
}

func TestWSSFromGo(t *testing.T) {
	p := newTestPKI(t)
	cfg := fmt.Sprintf(`
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"

[[listener]]
kind = "wss"
address = "127.0.0.1:0"
cert_file = %q
key_file = %q

[admin]
address = ""

[mqtt]
sys_interval = "0s"
`, p.certFile, p.keyFile)
	_, addrs := startAvocet(t, withStore(cfg, t.TempDir()))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS()}}
	ws, resp, err := websocket.Dial(ctx, "wss://"+addrs["wss"]+"/mqtt", &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatalf("the upgrade did not run over TLS with the server's certificate: %+v", resp.TLS)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	defer conn.Close()
	sub := newClient(t, conn, mqtt.Version5, "wss-sub")
	sub.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "wss/#", QoS: 1}}})
	if ack, ok := sub.read().(*mqtt.Suback); !ok || ack.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK: %#v", ack)
	}

	tcp, err := net.Dial("tcp", addrs["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	pub := newClient(t, tcp, mqtt.Version311, "tcp-pub")
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 2, Topic: "wss/hello", Payload: []byte("to the secure socket")})
	if ack, ok := pub.read().(*mqtt.Puback); !ok || ack.PacketID != 2 {
		t.Fatalf("PUBACK: %#v", ack)
	}
	if got, ok := sub.read().(*mqtt.Publish); !ok || got.Topic != "wss/hello" || string(got.Payload) != "to the secure socket" || got.QoS != 1 {
		t.Fatalf("delivered over wss: %#v", got)
	}
}

func TestTLSBadCertificateStopsStartUp(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.key")
	p.keyFile = missing
	file := filepath.Join(dir, "avocet.toml")
	if err := os.WriteFile(file, []byte(p.tlsConfig(dir, "", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run([]string{"--config", file}, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, missing) || !strings.Contains(msg, "tls://127.0.0.1:0") {
		t.Fatalf("error does not name the listener and the file: %q", msg)
	}
}

func TestCertCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cert := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(avocetBinary(t), append([]string{"cert", "--dir", dir}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := cert("--days", "2", "--host", "127.0.0.1,localhost", "--client", "device-1")
	if code != 0 {
		t.Fatalf("avocet cert: exit %d\n%s", code, out)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	for name, mode := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca.key": 0o600, "server.pem": 0o644, "server.key": 0o600,
		"client-device-1.pem": 0o644, "client-device-1.key": 0o600,
	} {
		fi, err := os.Stat(path(name))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
		if !strings.Contains(out, path(name)) {
			t.Errorf("the output does not name %s:\n%s", name, out)
		}
	}
	for _, line := range []string{`cert_file = "` + path("server.pem") + `"`, `key_file = "` + path("server.key") + `"`, `ca_file = "` + path("ca.pem") + `"`} {
		if !strings.Contains(out, line) {
			t.Errorf("the output lacks the config line %s:\n%s", line, out)
		}
	}
	srv, err := avtls.LoadKeyPair(path("server.pem"), path("server.key"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(srv.Cert.NotAfter); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("server certificate valid for another %v, want 2 days", d)
	}

	// A second run adds a client with the same CA and keeps the other files.
	out, code = cert("--client", "device-2")
	if code != 0 || !strings.Contains(out, "using the CA") || !strings.Contains(out, "kept "+path("server.pem")) {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if _, code := cert("--days", "0"); code != 2 {
		t.Fatalf("--days 0: exit %d, want 2", code)
	}
	if _, code := cert("stray"); code != 2 {
		t.Fatalf("a stray argument: exit %d, want 2", code)
	}

	// A broker on the files takes both clients by their certificates.
	p := &testPKI{caFile: path("ca.pem"), certFile: path("server.pem"), keyFile: path("server.key")}
	_, addrs := startAvocet(t, p.tlsConfig(t.TempDir(), "require_client_cert = true\nuse_identity_as_username = true\n", ""))
	caPEM, err := os.ReadFile(path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, name := range []string{"device-1", "device-2"} {
		pair, err := cryptotls.LoadX509KeyPair(path("client-"+name+".pem"), path("client-"+name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := mqttOverTLS(t, addrs["tls"], &cryptotls.Config{RootCAs: roots, Certificates: []cryptotls.Certificate{pair}}, mqtt.Version311, name)
		c.send(&mqtt.Pingreq{})
		if _, ok := c.read().(*mqtt.Pingresp); !ok {
			t.Fatalf("%s: no PINGRESP", name)
		}
	}
	if err := tlsRefusal(t, addrs["tls"], &cryptotls.Config{RootCAs: roots}); err == nil {
		t.Fatal("a client without a certificate connected")
	}
}
