package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/avocet-mqtt/avocet/auth"
	"github.com/avocet-mqtt/avocet/broker"
	"github.com/avocet-mqtt/avocet/config"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// reloadInterval is how often the password and ACL files are checked for changes.
const reloadInterval = 2 * time.Second

// authenticator decides who may connect: a client certificate's identity on
// listeners that take it as the username, the password file for clients with a
// username, and allow_anonymous for the others.
type authenticator struct {
	passwords      *auth.Passwords // nil: no password file
	allowAnonymous bool
	identity       map[string]bool // listener name -> use_identity_as_username
}

// Authenticate implements broker.Authenticator.
func (a *authenticator) Authenticate(info *broker.ConnectInfo) (mqtt.ReasonCode, string) {
	if a.identity[info.Listener] {
		if info.TLS == nil || len(info.TLS.PeerCertificates) == 0 {
			return mqtt.NotAuthorized, "" // the listener requires a certificate identity
		}
		return mqtt.Success, certIdentity(info.TLS.PeerCertificates[0])
	}
	if !info.HasUser {
		if a.allowAnonymous {
			return mqtt.Success, ""
		}
		return mqtt.NotAuthorized, ""
	}
	if a.passwords == nil {
		if a.allowAnonymous {
			return mqtt.Success, ""
		}
		return mqtt.BadUserNameOrPassword, ""
	}
	if !a.passwords.Check(info.Username, info.Password) {
		return mqtt.BadUserNameOrPassword, ""
	}
	return mqtt.Success, ""
}

// certIdentity is the identity a client certificate gives: its common name, or
// else its first DNS name, e-mail address or URI.
func certIdentity(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.EmailAddresses) > 0:
		return c.EmailAddresses[0]
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	}
	return ""
}

// loadAuth loads the password and ACL files the configuration names and keeps
// them fresh: they are reloaded when they change and on reload().
func loadAuth(ctx context.Context, cfg *config.Config, log *slog.Logger) (*authenticator, *auth.ACL, func(), error) {
	a := &authenticator{allowAnonymous: cfg.Auth.AllowAnonymous, identity: map[string]bool{}}
	for _, l := range cfg.Listeners {
		a.identity[l.Name] = l.UseIdentityAsUsername
	}
	var acl *auth.ACL
	var err error
	if f := cfg.Auth.PasswordFile; f != "" {
		if a.passwords, err = auth.LoadPasswords(f); err != nil {
			return nil, nil, nil, err
		}
		go a.passwords.Watch(ctx, reloadInterval, func(err error) { log.Error("password file not reloaded", "err", err) })
	}
	if f := cfg.Auth.ACLFile; f != "" {
		if acl, err = auth.LoadACL(f); err != nil {
			return nil, nil, nil, err
		}
		go acl.Watch(ctx, reloadInterval, func(err error) { log.Error("ACL file not reloaded", "err", err) })
	}
	reload := func() {
		if a.passwords != nil {
			if err := a.passwords.Reload(); err != nil {
				log.Error("password file not reloaded", "err", err)
			}
		}
		if acl != nil {
			if err := acl.Reload(); err != nil {
				log.Error("ACL file not reloaded", "err", err)
			}
		}
		log.Info("authentication files reloaded")
	}
	return a, acl, reload, nil
}

// runPasswd is `avocet passwd`. On a terminal the password is read twice without
// echo; otherwise it is one line of standard input, so that scripts can pipe it.
func runPasswd(args []string, stdout, stderr io.Writer) int {
	fd := int(os.Stdin.Fd())
	if len(args) > 0 && args[0] == "add" && term.IsTerminal(fd) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "avocet passwd: %v\n", err)
			return 1
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "avocet passwd: %v\n", err)
			return 1
		}
		if !bytes.Equal(p1, p2) {
			fmt.Fprintln(stderr, "avocet passwd: the passwords differ")
			return 1
		}
		return auth.RunPasswd(args, bytes.NewReader(append(p1, '\n')), stdout, stderr, nil)
	}
	return auth.RunPasswd(args, os.Stdin, stdout, stderr, nil)
}
