package tls

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

// The values of Config.MinVersion.
const (
	Version12 = "1.2"
	Version13 = "1.3"
)

// maxFileSize bounds what the certificate, key and CA files are read up to:
// certificate bundles are far smaller, so a larger file is not one.
const maxFileSize = 4 << 20

// ALPNMQTT is the ALPN protocol identifier of MQTT (IANA "mqtt"), which the
// command offers on tls listeners.
const ALPNMQTT = "mqtt"

// Config is what a Server loads and how it serves it. The files are PEM.
type Config struct {
	// CertFile holds the server's certificate chain, leaf first. Required.
	CertFile string
	// KeyFile holds the leaf's private key: PKCS #8, PKCS #1 (RSA) or SEC 1
	// (EC), not encrypted. It may be the same file as CertFile. Required.
	KeyFile string
	// CAFile holds the CA certificates client certificates are verified
	// against. Empty: clients are not asked for a certificate.
	CAFile string
	// RequireClientCert refuses clients without a valid certificate. It
	// needs CAFile.
	RequireClientCert bool
	// MinVersion is the oldest TLS version accepted: "1.2" (the default when
	// empty) or "1.3".
	MinVersion string
	// CipherSuites restricts the TLS 1.2 cipher suites, by their Go names
	// (crypto/tls.CipherSuites). Empty keeps Go's defaults.
	CipherSuites []string
	// ALPN lists the application protocols offered, most preferred first.
	// Nil: no ALPN.
	ALPN []string
}

// Server serves one listener's certificate and client CA pool, and replaces
// them on Reload. All its methods may be called concurrently.
type Server struct {
	cfg        Config       // read-only after New
	minVersion uint16       // read-only after New
	suites     []uint16     // read-only after New; nil: Go's defaults
	log        *slog.Logger // read-only after New

	reload sync.Mutex             // serializes Reload
	cur    atomic.Pointer[loaded] // what new handshakes get; replaced whole by Reload
}

// loaded is one version of the files. It is never changed once published.
type loaded struct {
	conf   *cryptotls.Config // returned by GetConfigForClient
	leaf   *x509.Certificate
	stamps []fileutil.Stamp // of Server.files, as read
}

// New checks cfg, loads its files and returns a Server ready to serve them.
// Errors name the file at fault. log, which may be nil, receives a line per
// certificate loaded (at start and on every reload) and a warning for a
// certificate outside its validity period; it is never given key material.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log}
	s.cfg.CipherSuites = slices.Clone(cfg.CipherSuites)
	s.cfg.ALPN = slices.Clone(cfg.ALPN)
	switch {
	case cfg.CertFile == "":
		return nil, errors.New("no certificate file given")
	case cfg.KeyFile == "":
		return nil, errors.New("no key file given")
	case cfg.RequireClientCert && cfg.CAFile == "":
		return nil, errors.New("requiring client certificates needs a CA file to verify them against")
	}
	switch cfg.MinVersion {
	case "", Version12:
		s.minVersion = cryptotls.VersionTLS12
	case Version13:
		s.minVersion = cryptotls.VersionTLS13
	default:
		return nil, fmt.Errorf("minimum TLS version %q: want %q or %q", cfg.MinVersion, Version12, Version13)
	}
	var err error
	if s.suites, err = CipherSuiteIDs(cfg.CipherSuites); err != nil {
		return nil, err
	}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	s.logLoaded(l)
	return s, nil
}

// CipherSuiteIDs maps TLS 1.2 cipher suite names, as crypto/tls.CipherSuites
// gives them, to their identifiers, in the order given. A name that is
// unknown, insecure (crypto/tls.InsecureCipherSuites) or of a TLS 1.3 suite
// is an error. No names give nil.
func CipherSuiteIDs(names []string) ([]uint16, error) {
	var ids []uint16
	for _, name := range names {
		cs := findSuite(name)
		switch {
		case cs == nil:
			return nil, fmt.Errorf("cipher suite %q: unknown or insecure (crypto/tls.CipherSuites lists the names)", name)
		case !slices.Contains(cs.SupportedVersions, cryptotls.VersionTLS12):
			return nil, fmt.Errorf("cipher suite %q: a TLS 1.3 suite, and those are not configurable", name)
		}
		if !slices.Contains(ids, cs.ID) {
			ids = append(ids, cs.ID)
		}
	}
	return ids, nil
}

func findSuite(name string) *cryptotls.CipherSuite {
	for _, cs := range cryptotls.CipherSuites() {
		if cs.Name == name {
			return cs
		}
	}
	return nil
}

// TLSConfig returns the configuration to hand to the listener. Each
// handshake gets, through its GetConfigForClient, the certificate and CA
// pool loaded last, so a Reload affects new connections only. Each call
// returns a new value; the caller must not change it once in use.
func (s *Server) TLSConfig() *cryptotls.Config {
	tc := &cryptotls.Config{
		MinVersion:   s.minVersion,
		CipherSuites: slices.Clone(s.suites),
		NextProtos:   slices.Clone(s.cfg.ALPN),
		ClientAuth:   s.clientAuth(),
		GetConfigForClient: func(*cryptotls.ClientHelloInfo) (*cryptotls.Config, error) {
			return s.cur.Load().conf, nil
		},
		GetCertificate: func(*cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
			return &s.cur.Load().conf.Certificates[0], nil
		},
	}
	return tc
}

func (s *Server) clientAuth() cryptotls.ClientAuthType {
	switch {
	case s.cfg.CAFile == "":
		return cryptotls.NoClientCert
	case s.cfg.RequireClientCert:
		return cryptotls.RequireAndVerifyClientCert
	}
	return cryptotls.VerifyClientCertIfGiven
}

// Certificate returns the leaf certificate new handshakes get. The caller
// must not change it.
func (s *Server) Certificate() *x509.Certificate { return s.cur.Load().leaf }

// Reload reads the files again and, if they are all valid, serves them to
// new handshakes; established connections keep the session they have. On
// failure what was loaded before stays in use and the error, naming the
// file, is returned.
func (s *Server) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	l, err := s.load()
	if err != nil {
		return err
	}
	s.cur.Store(l)
	s.logLoaded(l)
	return nil
}

// Watch polls the files' identity, size and modification time every interval
// (a second if interval is not positive) and calls Reload once they have
// changed and then stayed the same for one interval, so that files being
// written are not read half done. It runs until ctx is done, so run it on a
// goroutine the caller waits for. A failed reload, or a file that cannot be
// examined, is reported once through onError (which may be nil) and not
// retried until a file changes again.
func (s *Server) Watch(ctx context.Context, interval time.Duration, onError func(error)) {
	fileutil.Watch(ctx, s.files(), interval, func() []fileutil.Stamp { return s.cur.Load().stamps }, s.Reload, onError)
}

// files lists the files a Server reads, in the order of loaded.stamps.
func (s *Server) files() []string {
	f := []string{s.cfg.CertFile, s.cfg.KeyFile}
	if s.cfg.CAFile != "" {
		f = append(f, s.cfg.CAFile)
	}
	return f
}

// load reads and checks the files and builds the configuration they give.
func (s *Server) load() (*loaded, error) {
	certPEM, certStamp, err := fileutil.ReadFile(s.cfg.CertFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", s.cfg.CertFile, err)
	}
	keyPEM, keyStamp, err := fileutil.ReadFile(s.cfg.KeyFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", s.cfg.KeyFile, err)
	}
	leaf := chain[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("key file %s does not hold the private key of the certificate in %s (subject %q)",
			s.cfg.KeyFile, s.cfg.CertFile, leaf.Subject.String())
	}
	if err := s.checkSuites(key); err != nil {
		return nil, fmt.Errorf("key file %s: %w", s.cfg.KeyFile, err)
	}
	pair := cryptotls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	l := &loaded{
		leaf:   leaf,
		stamps: []fileutil.Stamp{certStamp, keyStamp},
		conf: &cryptotls.Config{
			Certificates: []cryptotls.Certificate{pair},
			MinVersion:   s.minVersion,
			CipherSuites: s.suites,
			NextProtos:   s.cfg.ALPN,
			ClientAuth:   s.clientAuth(),
		},
	}
	if s.cfg.CAFile != "" {
		caPEM, caStamp, err := fileutil.ReadFile(s.cfg.CAFile, maxFileSize)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		cas, err := parseCertificates(caPEM)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %w", s.cfg.CAFile, err)
		}
		pool := x509.NewCertPool()
		for _, c := range cas {
			pool.AddCert(c)
		}
		l.conf.ClientCAs = pool
		l.stamps = append(l.stamps, caStamp)
	}
	return l, nil
}

// checkSuites makes sure that, when the TLS 1.2 suites are restricted, one of
// them can be used with key: the ECDHE_ECDSA suites need an ECDSA or Ed25519
// key, the others an RSA key.
func (s *Server) checkSuites(key crypto.Signer) error {
	if len(s.suites) == 0 || s.minVersion > cryptotls.VersionTLS12 {
		return nil
	}
	_, isRSA := key.(*rsa.PrivateKey)
	for _, id := range s.suites {
		if strings.Contains(cryptotls.CipherSuiteName(id), "_ECDSA_") != isRSA {
			return nil
		}
	}
	kind := "ECDSA"
	if isRSA {
		kind = "RSA"
	}
	return fmt.Errorf("an %s key, which none of the cipher suites %s can use", kind, strings.Join(s.cfg.CipherSuites, ", "))
}

// logLoaded logs the certificate l serves, and warns when it is outside its
// validity period.
func (s *Server) logLoaded(l *loaded) {
	c := l.leaf
	attrs := []any{"cert_file", s.cfg.CertFile, "subject", c.Subject.String(), "serial", fmt.Sprintf("%x", c.SerialNumber),
		"not_after", c.NotAfter.UTC().Format(time.RFC3339)}
	now := time.Now()
	switch {
	case now.After(c.NotAfter):
		s.log.Warn("TLS certificate loaded, but it has expired", attrs...)
	case now.Before(c.NotBefore):
		s.log.Warn("TLS certificate loaded, but it is not valid yet", append(attrs, "not_before", c.NotBefore.UTC().Format(time.RFC3339))...)
	default:
		s.log.Info("TLS certificate loaded", attrs...)
	}
}

// parseCertificates returns the certificates of the CERTIFICATE blocks in
// data, in order, skipping other blocks.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parsePrivateKey returns the key of the first PRIVATE KEY block in data.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		switch {
		case b == nil:
			return nil, errors.New("no PEM private key found")
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED":
			return nil, errors.New("the private key is encrypted; give it unencrypted and protect the file instead")
		case !strings.HasSuffix(b.Type, "PRIVATE KEY"):
			continue
		}
		return parseKeyDER(b.Bytes)
	}
}

func parseKeyDER(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key is neither PKCS #8, PKCS #1 nor SEC 1")
}
