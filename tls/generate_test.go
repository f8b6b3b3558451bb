package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	ca, err := GenerateCA("unit CA", day)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate: IsCA %t, MaxPathLenZero %t, key usage %b", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if k, ok := ca.Key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("CA key %T, want ECDSA P-256", ca.Key)
	}
	if d := ca.Cert.NotAfter.Sub(time.Now()); d < day-time.Minute || d > day {
		t.Fatalf("CA valid for another %v, want a day", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	srv, err := GenerateServer(ca, []string{"broker.local", "127.0.0.1", "::1", "localhost"}, day)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Cert.Subject.CommonName != "broker.local" || !slices.Equal(srv.Cert.DNSNames, []string{"broker.local", "localhost"}) ||
		len(srv.Cert.IPAddresses) != 2 || !srv.Cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !srv.Cert.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Fatalf("server certificate: CN %q, DNS %v, IP %v", srv.Cert.Subject.CommonName, srv.Cert.DNSNames, srv.Cert.IPAddresses)
	}
	for _, host := range []string{"broker.local", "localhost", "127.0.0.1", "::1"} {
		if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "elsewhere"}); err == nil {
		t.Error("server certificate verified for a host it does not name")
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verified for client authentication")
	}

	cl, err := GenerateClient(ca, "device-1", day)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Cert.Subject.CommonName != "device-1" {
		t.Fatalf("client certificate CN %q", cl.Cert.Subject.CommonName)
	}
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if cl.Cert.SerialNumber.Cmp(srv.Cert.SerialNumber) == 0 {
		t.Fatal("two certificates with one serial number")
	}

	for name, err := range map[string]error{
		"no hosts":       second(GenerateServer(ca, nil, day)),
		"empty host":     second(GenerateServer(ca, []string{"a", ""}, day)),
		"empty client":   second(GenerateClient(ca, "", day)),
		"empty CA name":  second(GenerateCA("", day)),
		"issuer not CA":  second(GenerateClient(srv, "x", day)),
		"no validity":    second(GenerateClient(ca, "x", 0)),
		"negative hours": second(GenerateCA("x", -time.Hour)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestWriteAndLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca, err := GenerateCA("unit CA", day)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := ca.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", file, fi.Mode().Perm(), want)
		}
	}
	if b, _ := os.ReadFile(keyFile); !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PKCS #8 PEM: %.40q", b)
	}
	got, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !ca.Key.(*ecdsa.PrivateKey).Equal(got.Key) {
		t.Fatal("LoadKeyPair gives another pair than was written")
	}
	// The loaded CA issues certificates that verify against the written one.
	cl, err := GenerateClient(got, "c", day)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}

	other, err := GenerateCA("other", day)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "other.key")
	if err := other.WriteFiles(filepath.Join(dir, "other.pem"), otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certFile, otherKey); err == nil || !strings.Contains(err.Error(), otherKey) {
		t.Fatalf("mismatched pair: %v", err)
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "missing.pem"), keyFile); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing file: %v", err)
	}
}
