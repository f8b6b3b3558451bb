package tls

import (
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

const day = 24 * time.Hour

// pki is a CA with a server certificate, written to files in a directory of
// the test.
type pki struct {
	dir               string
	ca, server        *KeyPair
	caFile            string
	certFile, keyFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	if p.ca, err = GenerateCA("test CA", day); err != nil {
		t.Fatal(err)
	}
	if p.server, err = GenerateServer(p.ca, []string{"localhost", "127.0.0.1"}, day); err != nil {
		t.Fatal(err)
	}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := fileutil.WriteAtomic(p.caFile, p.ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	p.certFile, p.keyFile = filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server.key")
	if err := p.server.WriteFiles(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pki) config() Config {
	return Config{CertFile: p.certFile, KeyFile: p.keyFile, CAFile: p.caFile}
}

// client issues a client certificate of p's CA.
func (p *pki) client(t *testing.T, name string) cryptotls.Certificate {
	t.Helper()
	kp, err := GenerateClient(p.ca, name, day)
	if err != nil {
		t.Fatal(err)
	}
	return kp.TLSCertificate()
}

// clientConfig trusts p's CA.
func (p *pki) clientConfig() *cryptotls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return &cryptotls.Config{RootCAs: pool}
}

// startEcho serves tc on a loopback port, echoing what each client sends,
// until t ends.
func startEcho(t *testing.T, tc *cryptotls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				tc := cryptotls.Server(c, tc)
				if tc.Handshake() == nil {
					_, _ = io.Copy(tc, tc)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial connects with cc and checks that the connection carries data both
// ways, which is where a TLS 1.3 server's refusal of a client certificate
// shows.
func dial(t *testing.T, addr string, cc *cryptotls.Config) (*cryptotls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := cryptotls.DialWithDialer(d, "tcp", addr, cc)
	if err != nil {
		return nil, err
	}
	if err := echo(c, "ping"); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func echo(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return errors.New("echo: got " + string(b))
	}
	return nil
}

func serial(c *cryptotls.Conn) *big.Int {
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestNewErrors(t *testing.T) {
	p := newPKI(t)
	write := func(name, data string) string {
		f := filepath.Join(p.dir, name)
		if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	garbage := write("garbage", "this is not PEM\n")
	badDER := write("bad-der.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	encrypted := write("encrypted.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	other, err := GenerateServer(p.ca, []string{"other"}, day)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := filepath.Join(p.dir, "other.pem"), filepath.Join(p.dir, "other.key")
	if err := other.WriteFiles(otherCert, otherKey); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.dir, "missing.pem")

	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error
	}{
		{"no cert file", func(c *Config) { c.CertFile = "" }, []string{"no certificate file"}},
		{"no key file", func(c *Config) { c.KeyFile = "" }, []string{"no key file"}},
		{"missing cert", func(c *Config) { c.CertFile = missing }, []string{"certificate file", missing, "no such file"}},
		{"missing key", func(c *Config) { c.KeyFile = missing }, []string{"key file", missing, "no such file"}},
		{"missing CA", func(c *Config) { c.CAFile = missing }, []string{"CA file", missing, "no such file"}},
		{"cert not PEM", func(c *Config) { c.CertFile = garbage }, []string{"certificate file " + garbage, "no PEM certificate"}},
		{"cert bad DER", func(c *Config) { c.CertFile = badDER }, []string{"certificate file " + badDER, "PEM block 1"}},
		{"key is a certificate", func(c *Config) { c.KeyFile = p.certFile }, []string{"key file " + p.certFile, "no PEM private key"}},
		{"key encrypted", func(c *Config) { c.KeyFile = encrypted }, []string{"key file " + encrypted, "encrypted"}},
		{"key of another certificate", func(c *Config) { c.KeyFile = otherKey }, []string{"key file " + otherKey, "does not hold the private key", p.certFile}},
		{"CA not PEM", func(c *Config) { c.CAFile = garbage }, []string{"CA file " + garbage, "no PEM certificate"}},
		{"client cert without CA", func(c *Config) { c.CAFile, c.RequireClientCert = "", true }, []string{"needs a CA file"}},
		{"TLS 1.1", func(c *Config) { c.MinVersion = "1.1" }, []string{`"1.1"`}},
		{"unknown suite", func(c *Config) { c.CipherSuites = []string{"TLS_NO_SUCH_SUITE"} }, []string{"TLS_NO_SUCH_SUITE", "unknown"}},
		{"insecure suite", func(c *Config) { c.CipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA"} }, []string{"TLS_RSA_WITH_RC4_128_SHA", "insecure"}},
		{"TLS 1.3 suite", func(c *Config) { c.CipherSuites = []string{"TLS_AES_128_GCM_SHA256"} }, []string{"TLS_AES_128_GCM_SHA256", "TLS 1.3"}},
		{"suites for another key type", func(c *Config) { c.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"} },
			[]string{"key file " + p.keyFile, "ECDSA key", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.config()
			tc.change(&cfg)
			s, err := New(cfg, nil)
			if err == nil {
				t.Fatalf("New succeeded: %v", s.Certificate().Subject)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCipherSuiteIDs(t *testing.T) {
	var names []string
	var want []uint16
	for _, cs := range cryptotls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, cryptotls.VersionTLS12) {
			names = append(names, cs.Name)
			want = append(want, cs.ID)
		}
	}
	if len(names) < 4 {
		t.Fatalf("only %d TLS 1.2 suites", len(names))
	}
	got, err := CipherSuiteIDs(names)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("CipherSuiteIDs(%v) = %v, %v; want %v", names, got, err, want)
	}
	got, err = CipherSuiteIDs([]string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"})
	if want := []uint16{cryptotls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, cryptotls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("order and duplicates: %v, %v; want %v", got, err, want)
	}
	if got, err := CipherSuiteIDs(nil); got != nil || err != nil {
		t.Fatalf("no names: %v, %v", got, err)
	}
}

func TestCipherSuiteNegotiated(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	cfg.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, s.TLSConfig())
	cc := p.clientConfig()
	cc.MaxVersion = cryptotls.VersionTLS12
	c, err := dial(t, addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().CipherSuite; got != cryptotls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Fatalf("negotiated %s", cryptotls.CipherSuiteName(got))
	}
	cc.CipherSuites = []uint16{cryptotls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if _, err := dial(t, addr, cc); err == nil {
		t.Fatal("a client without the configured suite connected")
	}
}

func TestMinVersion(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		min       string
		clientMax uint16
		ok        bool
	}{
		{"", cryptotls.VersionTLS12, true},
		{"", cryptotls.VersionTLS11, false},
		{"1.2", cryptotls.VersionTLS13, true},
		{"1.3", cryptotls.VersionTLS12, false},
		{"1.3", cryptotls.VersionTLS13, true},
	} {
		cfg := p.config()
		cfg.MinVersion = tc.min
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		cc := p.clientConfig()
		cc.MinVersion, cc.MaxVersion = cryptotls.VersionTLS10, tc.clientMax
		_, err = dial(t, startEcho(t, s.TLSConfig()), cc)
		if (err == nil) != tc.ok {
			t.Errorf("min %q, client up to %s: %v, want ok %t", tc.min, cryptotls.VersionName(tc.clientMax), err, tc.ok)
		}
	}
}

func TestClientCertificates(t *testing.T) {
	p := newPKI(t)
	strangers, err := GenerateCA("test CA", day) // same name, another key
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := GenerateClient(strangers, "device-1", day)
	if err != nil {
		t.Fatal(err)
	}
	device := p.client(t, "device-1")

	for _, tc := range []struct {
		name     string
		noCA     bool
		require  bool
		cert     *cryptotls.Certificate
		wantErr  string // empty: connects
		wantPeer string // the client certificate's common name the server saw
	}{
		{name: "no CA, no certificate"},
		{name: "no CA, certificate not asked for", noCA: true, cert: &device},
		{name: "optional, none given"},
		{name: "optional, given", cert: &device, wantPeer: "device-1"},
		{name: "optional, another CA", cert: ptr(stranger.TLSCertificate()), wantErr: "unknown certificate authority"},
		{name: "required, none given", require: true, wantErr: "certificate required"},
		{name: "required, given", require: true, cert: &device, wantPeer: "device-1"},
		{name: "required, another CA", require: true, cert: ptr(stranger.TLSCertificate()), wantErr: "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.config()
			if tc.noCA {
				cfg.CAFile = ""
			}
			cfg.RequireClientCert = tc.require
			s, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			var seen sync.Map
			tlsCfg := s.TLSConfig()
			get := tlsCfg.GetConfigForClient
			tlsCfg.GetConfigForClient = func(h *cryptotls.ClientHelloInfo) (*cryptotls.Config, error) {
				c, err := get(h)
				c = c.Clone()
				c.VerifyConnection = func(cs cryptotls.ConnectionState) error {
					if len(cs.PeerCertificates) > 0 {
						seen.Store("peer", cs.PeerCertificates[0].Subject.CommonName)
					}
					return nil
				}
				return c, err
			}
			cc := p.clientConfig()
			if tc.cert != nil {
				cc.Certificates = []cryptotls.Certificate{*tc.cert}
			}
			_, err = dial(t, startEcho(t, tlsCfg), cc)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
			}
			if tc.wantErr == "" {
				peer, _ := seen.Load("peer")
				if p, _ := peer.(string); p != tc.wantPeer {
					t.Fatalf("server saw client certificate %q, want %q", p, tc.wantPeer)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestALPN(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	cfg.ALPN = []string{ALPNMQTT}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, s.TLSConfig())
	cc := p.clientConfig()
	cc.NextProtos = []string{"x-other", ALPNMQTT}
	c, err := dial(t, addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().NegotiatedProtocol; got != ALPNMQTT {
		t.Fatalf("negotiated %q", got)
	}
	if _, err := dial(t, addr, p.clientConfig()); err != nil {
		t.Fatalf("a client offering no ALPN: %v", err)
	}
	cc.NextProtos = []string{"x-other"}
	if _, err := dial(t, addr, cc); err == nil || !strings.Contains(err.Error(), "no application protocol") {
		t.Fatalf("a client offering only another protocol: %v", err)
	}
}

func TestReloadKeepsOldOnFailureAndConnections(t *testing.T) {
	p := newPKI(t)
	s, err := New(p.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, s.TLSConfig())
	before, err := dial(t, addr, p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := p.server.Cert.SerialNumber

	// A certificate file that is not PEM: the reload fails and names it.
	if err := fileutil.WriteAtomic(p.certFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), p.certFile) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	// A new certificate whose key is not written yet: refused as well.
	next, err := GenerateServer(p.ca, []string{"127.0.0.1", "reloaded"}, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := fileutil.WriteAtomic(p.certFile, next.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "does not hold the private key") {
		t.Fatalf("Reload of a mismatched pair: %v", err)
	}
	if c, err := dial(t, addr, p.clientConfig()); err != nil || serial(c).Cmp(oldSerial) != 0 {
		t.Fatalf("after failed reloads: %v, want the old certificate", err)
	}

	if err := next.WriteFiles(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := dial(t, addr, p.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if serial(c).Cmp(next.Cert.SerialNumber) != 0 || s.Certificate().Subject.CommonName != "127.0.0.1" {
		t.Fatalf("after reload the server presents serial %x, want %x", serial(c), next.Cert.SerialNumber)
	}
	// The connection made before the reloads still works, on the old certificate.
	if err := echo(before, "still here"); err != nil {
		t.Fatalf("connection from before the reload: %v", err)
	}
	if serial(before).Cmp(oldSerial) != 0 {
		t.Fatal("the old connection's certificate changed")
	}
}

func TestReloadCA(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	cfg.RequireClientCert = true
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startEcho(t, s.TLSConfig())
	cc := p.clientConfig()
	cc.Certificates = []cryptotls.Certificate{p.client(t, "device-1")}
	if _, err := dial(t, addr, cc); err != nil {
		t.Fatal(err)
	}
	// The CA file is replaced by another CA: clients of the old one are
	// refused from then on, resumed sessions included.
	ca2, err := GenerateCA("second CA", day)
	if err != nil {
		t.Fatal(err)
	}
	if err := fileutil.WriteAtomic(p.caFile, ca2.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	cc.ClientSessionCache = cryptotls.NewLRUClientSessionCache(4)
	if _, err := dial(t, addr, cc); err == nil {
		t.Fatal("a client of the replaced CA connected")
	}
	c2, err := GenerateClient(ca2, "device-2", day)
	if err != nil {
		t.Fatal(err)
	}
	cc.Certificates = []cryptotls.Certificate{c2.TLSCertificate()}
	if _, err := dial(t, addr, cc); err != nil {
		t.Fatalf("a client of the new CA: %v", err)
	}
}

func TestWatch(t *testing.T) {
	p := newPKI(t)
	s, err := New(p.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Watch(ctx, 10*time.Millisecond, func(err error) { errs <- err }) })
	defer wg.Wait()
	defer cancel()

	// A bad key is reported once, and the certificate stays.
	if err := fileutil.WriteAtomic(p.keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), p.keyFile) {
			t.Fatalf("reported %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a bad key file was not reported")
	}
	if s.Certificate().SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatal("the certificate changed on a failed reload")
	}

	next, err := GenerateServer(p.ca, []string{"watched"}, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.WriteFiles(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Certificate().Subject.CommonName != "watched" {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was not loaded within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
