package listener_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/listener"
)

// waitTimeout bounds every wait in these tests; passing tests take far less.
const waitTimeout = 5 * time.Second

// checkFor polls f until it returns nil, failing the test with f's last
// error once timeout has passed.
func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkGoroutines waits until no more goroutines run than before, and dumps
// them all if that does not happen.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), before, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkStats waits until l's counters equal want.
func checkStats(t *testing.T, l listener.Listener, want listener.Stats) {
	t.Helper()
	checkFor(t, waitTimeout, func() error {
		if got := l.Stats(); got != want {
			return fmt.Errorf("stats %+v, want %+v", got, want)
		}
		return nil
	})
}

// listen starts a listener and closes it when the test ends.
func listen(t *testing.T, cfg listener.Config) listener.Listener {
	t.Helper()
	l, err := listener.Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

type accepted struct {
	c   net.Conn
	err error
}

// acceptAsync calls Accept in a goroutine and delivers its result.
func acceptAsync(l listener.Listener) <-chan accepted {
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	return ch
}

// accept returns the next connection of l, failing the test on error or
// after waitTimeout. The connection is closed when the test ends.
func accept(t *testing.T, l listener.Listener) net.Conn {
	t.Helper()
	c := acceptNoCleanup(t, l)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// acceptNoCleanup is accept for a caller that closes the connection.
func acceptNoCleanup(t *testing.T, l listener.Listener) net.Conn {
	t.Helper()
	select {
	case a := <-acceptAsync(l):
		if a.err != nil {
			t.Fatalf("Accept: %v", a.err)
		}
		return a.c
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return")
		return nil
	}
}

// testCert returns a server TLS config with a fresh self-signed ECDSA P-256
// certificate for 127.0.0.1, and a pool that trusts it.
func testCert(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "listener test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
		MinVersion:   tls.VersionTLS12,
	}
	return cfg, pool
}
