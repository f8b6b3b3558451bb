package main

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/avocet-mqtt/avocet/config"
	avtls "github.com/avocet-mqtt/avocet/tls"
)

// listenerCerts are the certificates of the tls and wss listeners. Each is
// watched for changes until close, and reload reads them all again.
type listenerCerts struct {
	ctx     context.Context    // ends the watchers; read-only
	cancel  context.CancelFunc // called by close
	log     *slog.Logger       // read-only
	wg      sync.WaitGroup     // the Watch goroutines
	mu      sync.Mutex         // guards servers
	servers []*avtls.Server    // one per tls or wss listener
}

func newListenerCerts(ctx context.Context, log *slog.Logger) *listenerCerts {
	ctx, cancel := context.WithCancel(ctx)
	return &listenerCerts{ctx: ctx, cancel: cancel, log: log}
}

// serverTLS loads the files of listener lc and returns its TLS
// configuration, or nil for a plain listener. MQTT over TLS offers the ALPN
// protocol "mqtt"; wss leaves ALPN to the listener package, which offers
// HTTP/1.1.
func (c *listenerCerts) serverTLS(lc config.Listener) (*cryptotls.Config, error) {
	if !lc.Kind.Secure() {
		return nil, nil
	}
	var alpn []string
	if lc.Kind == config.KindTLS {
		alpn = []string{avtls.ALPNMQTT}
	}
	log := c.log.With("listener", lc.Name)
	srv, err := avtls.New(avtls.Config{
		CertFile:          lc.CertFile,
		KeyFile:           lc.KeyFile,
		CAFile:            lc.CAFile,
		RequireClientCert: lc.RequireClientCert,
		MinVersion:        lc.MinTLSVersion,
		CipherSuites:      lc.CipherSuites,
		ALPN:              alpn,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	c.mu.Lock()
	c.servers = append(c.servers, srv)
	c.mu.Unlock()
	c.wg.Go(func() {
		srv.Watch(c.ctx, reloadInterval, func(err error) { log.Error("TLS certificate not reloaded", "err", err) })
	})
	return srv.TLSConfig(), nil
}

// reload reads every listener's files again; a listener whose files fail
// keeps the certificate it has.
func (c *listenerCerts) reload() {
	c.mu.Lock()
	servers := c.servers
	c.mu.Unlock()
	for _, srv := range servers {
		if err := srv.Reload(); err != nil {
			c.log.Error("TLS certificate not reloaded", "err", err)
		}
	}
}

// close stops the watchers and waits for them.
func (c *listenerCerts) close() {
	c.cancel()
	c.wg.Wait()
}

// certOptions are the flags of `avocet cert`.
type certOptions struct {
	dir     string
	days    int
	hosts   []string
	clients []string
	force   bool
}

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runCert is `avocet cert`: it writes a CA, a server certificate and client
// certificates as PEM files, for tests and local use.
func runCert(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("avocet cert", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintf(stderr, "Usage: avocet cert [--dir DIR] [--days N] [--host h1,h2] [--client NAME ...] [--force]\n\n")
		fmt.Fprintf(stderr, "Writes a throwaway CA (ca.pem, ca.key), a server certificate (server.pem,\n")
		fmt.Fprintf(stderr, "server.key) and a certificate per client (client-NAME.pem, client-NAME.key).\n")
		fmt.Fprintf(stderr, "An existing CA in DIR signs the new certificates; existing files are kept\n")
		fmt.Fprintf(stderr, "unless --force is given.\n\n")
		flags.PrintDefaults()
	}
	var o certOptions
	hosts := listFlag{}
	flags.StringVar(&o.dir, "dir", ".", "`directory` to write the files in; created if missing")
	flags.IntVar(&o.days, "days", 365, "days the new certificates are valid")
	flags.Var(&hosts, "host", "DNS names and IP addresses of the server, comma-separated (default localhost,127.0.0.1,::1)")
	flags.Var((*listFlag)(&o.clients), "client", "a client certificate with this common name; repeat or separate with commas")
	flags.BoolVar(&o.force, "force", false, "replace existing files, the CA's included")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "avocet cert: unexpected argument %q\n", flags.Arg(0))
		flags.Usage()
		return 2
	}
	if o.days <= 0 {
		fmt.Fprintf(stderr, "avocet cert: --days %d is not positive\n", o.days)
		return 2
	}
	o.hosts = hosts
	if len(o.hosts) == 0 {
		o.hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	for _, name := range o.clients {
		if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			fmt.Fprintf(stderr, "avocet cert: client name %q cannot be part of a file name\n", name)
			return 2
		}
	}
	if err := writeCerts(o, stdout); err != nil {
		fmt.Fprintf(stderr, "avocet cert: %v\n", err)
		return 1
	}
	return 0
}

// writeCerts writes the files o asks for and prints what it did and the
// listener settings that use them.
func writeCerts(o certOptions, stdout io.Writer) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	validFor := time.Duration(o.days) * 24 * time.Hour
	path := func(name string) string { return filepath.Join(dir, name) }

	caCert, caKey := path("ca.pem"), path("ca.key")
	var ca *avtls.KeyPair
	if !o.force && exists(caCert) {
		if ca, err = avtls.LoadKeyPair(caCert, caKey); err != nil {
			return fmt.Errorf("existing CA: %w (--force replaces it)", err)
		}
		fmt.Fprintf(stdout, "using the CA in %s (%s, valid until %s)\n", caCert, ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	} else {
		if ca, err = avtls.GenerateCA(fmt.Sprintf("Avocet local CA %s", time.Now().UTC().Format("20060102T150405Z")), validFor); err != nil {
			return err
		}
		if err := ca.WriteFiles(caCert, caKey); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s: CA %q, valid until %s\n", caCert, caKey, ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	}

	type leaf struct {
		base  string
		issue func() (*avtls.KeyPair, error)
		what  string
	}
	leaves := []leaf{{"server", func() (*avtls.KeyPair, error) { return avtls.GenerateServer(ca, o.hosts, validFor) },
		"server certificate for " + strings.Join(o.hosts, ", ")}}
	for _, name := range o.clients {
		leaves = append(leaves, leaf{"client-" + name, func() (*avtls.KeyPair, error) { return avtls.GenerateClient(ca, name, validFor) },
			fmt.Sprintf("client certificate with common name %q", name)})
	}
	for _, l := range leaves {
		certFile, keyFile := path(l.base+".pem"), path(l.base+".key")
		if !o.force && (exists(certFile) || exists(keyFile)) {
			fmt.Fprintf(stdout, "kept %s and %s, which exist (--force replaces them)\n", certFile, keyFile)
			continue
		}
		kp, err := l.issue()
		if err != nil {
			return err
		}
		if err := kp.WriteFiles(certFile, keyFile); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s: %s, valid until %s\n", certFile, keyFile, l.what, day(kp.Cert.NotAfter))
	}

	fmt.Fprintf(stdout, "\nA listener that uses them (avocet.toml):\n\n")
	fmt.Fprintf(stdout, "[[listener]]\nkind = \"tls\"\naddress = \"0.0.0.0:8883\"\n")
	fmt.Fprintf(stdout, "cert_file = %q\nkey_file = %q\nca_file = %q\n", path("server.pem"), path("server.key"), caCert)
	fmt.Fprintf(stdout, "require_client_cert = true\nuse_identity_as_username = true\n")
	if len(o.clients) > 0 {
		name := o.clients[0]
		fmt.Fprintf(stdout, "\nA client (Mosquitto's):\n\n")
		fmt.Fprintf(stdout, "mosquitto_pub -h %s -p 8883 --cafile %s --cert %s --key %s -t test -m hello\n",
			o.hosts[0], caCert, path("client-"+name+".pem"), path("client-"+name+".key"))
	}
	return nil
}

// exists reports whether path names something, so that it is not
// overwritten; an error other than not-existing counts as existing.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }
