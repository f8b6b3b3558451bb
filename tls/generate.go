package tls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	cryptotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/avocet-mqtt/avocet/internal/fileutil"
)

// backdate is how far before now issued certificates become valid, so that a
// peer whose clock is a little behind accepts them.
const backdate = time.Hour

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// GenerateCA issues a self-signed CA certificate with a new ECDSA P-256 key,
// valid for validFor, that can sign leaf certificates only (path length 0).
func GenerateCA(name string, validFor time.Duration) (*KeyPair, error) {
	if name == "" {
		return nil, errors.New("CA: empty name")
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Avocet"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return issue(tmpl, nil, validFor)
}

// GenerateServer issues a server certificate signed by ca with a new ECDSA
// P-256 key, valid for validFor. Each host is a DNS name or an IP address and
// becomes a subject alternative name of its kind; the first is also the
// common name.
func GenerateServer(ca *KeyPair, hosts []string, validFor time.Duration) (*KeyPair, error) {
	if len(hosts) == 0 {
		return nil, errors.New("server certificate: no host names or addresses")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{"Avocet"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		} else {
			return nil, errors.New("server certificate: empty host name")
		}
	}
	return issue(tmpl, ca, validFor)
}

// GenerateClient issues a client certificate signed by ca with a new ECDSA
// P-256 key, valid for validFor, whose common name is name: the identity a
// listener with use_identity_as_username takes as the username.
func GenerateClient(ca *KeyPair, name string, validFor time.Duration) (*KeyPair, error) {
	if name == "" {
		return nil, errors.New("client certificate: empty name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(tmpl, ca, validFor)
}

// issue completes tmpl with a random serial number, the validity period and
// a new key, and signs it with ca, or with the new key itself when ca is nil.
func issue(tmpl *x509.Certificate, ca *KeyPair, validFor time.Duration) (*KeyPair, error) {
	what := tmpl.Subject.CommonName
	if validFor <= 0 {
		return nil, fmt.Errorf("certificate %q: validity %v is not positive", what, validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", what, err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, fmt.Errorf("certificate %q: %w", what, err)
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validFor)
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		if !ca.Cert.IsCA {
			return nil, fmt.Errorf("certificate %q: the issuer %q is not a CA", what, ca.Cert.Subject.CommonName)
		}
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", what, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", what, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM returns the certificate as a PEM CERTIFICATE block.
func (k *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})
}

// KeyPEM returns the private key as a PEM PKCS #8 PRIVATE KEY block.
func (k *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TLSCertificate returns the pair as crypto/tls uses it, for clients.
func (k *KeyPair) TLSCertificate() cryptotls.Certificate {
	return cryptotls.Certificate{Certificate: [][]byte{k.Cert.Raw}, PrivateKey: k.Key, Leaf: k.Cert}
}

// WriteFiles writes the certificate to certFile (mode 0644) and the key to
// keyFile (mode 0600). Each file is replaced atomically, by renaming a new
// file over it, so that a Server watching them never reads one half written;
// the certificate is written first. When a file is a symbolic link, the file
// it points to is replaced.
func (k *KeyPair) WriteFiles(certFile, keyFile string) error {
	keyPEM, err := k.KeyPEM()
	if err != nil {
		return fmt.Errorf("key file %s: %w", keyFile, err)
	}
	if err := fileutil.WriteAtomic(certFile, k.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("certificate file %s: %w", certFile, err)
	}
	if err := fileutil.WriteAtomic(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("key file %s: %w", keyFile, err)
	}
	return nil
}

// LoadKeyPair reads a certificate and its private key from PEM files, as
// WriteFiles writes them. Errors name the file.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	certPEM, _, err := fileutil.ReadFile(certFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", certFile, err)
	}
	keyPEM, _, err := fileutil.ReadFile(keyFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", keyFile, err)
	}
	if pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("key file %s does not hold the private key of the certificate in %s", keyFile, certFile)
	}
	return &KeyPair{Cert: certs[0], Key: key}, nil
}
