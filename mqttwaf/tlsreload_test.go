package mqttwaf

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf/testpki"
)

// tlsEcho serves cfg on 127.0.0.1: each connection echoes lines back. It
// returns the address.
func tlsEcho(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dialTLS connects to addr trusting ca, presenting client (if any), and
// returns the connection after a completed handshake and one echoed line.
func dialTLS(addr string, ca *testpki.CA, client *tls.Certificate) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := echo(c); err != nil { // TLS 1.3 reports a refused client certificate only at the first read
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		err = os.ErrInvalid
	}
	return err
}

// TestTLSSourceReload: a reload serves the new certificate and client CA to
// the next handshake while an established connection keeps working; every
// kind of broken file leaves the previous ones in force, fails the reload
// and records a tls.reload event with a reason of its own.
func TestTLSSourceReload(t *testing.T) {
	dir := t.TempDir()
	files := TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), ClientCA: filepath.Join(dir, "ca.pem"),
		CertName: "-tls-cert", KeyName: "-tls-key", ClientCAName: "-tls-client-ca"}
	ca1, ca2 := testpki.NewCA(t, "CA one"), testpki.NewCA(t, "CA two")
	from, until := testpki.Valid()
	install := func(ca *testpki.CA, cn string, clientCA *testpki.CA) {
		cert, key := ca.Issue(t, cn, true, from, until)
		testpki.WriteFile(t, files.Cert, cert)
		testpki.WriteFile(t, files.Key, key)
		testpki.WriteFile(t, files.ClientCA, clientCA.PEM)
	}
	clientCert := func(ca *testpki.CA) *tls.Certificate {
		c, k := ca.Issue(t, "dev1", false, from, until)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return &pair
	}
	client1, client2 := clientCert(ca1), clientCert(ca2)

	install(ca1, "server one", ca1)
	events := &eventLog{}
	w, err := New(nil, Options{Sink: events})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTLSSource(w, files)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsEcho(t, src.Config())
	served := func(ca *testpki.CA, client *tls.Certificate) (string, error) {
		t.Helper()
		c, err := dialTLS(addr, ca, client)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := served(ca1, client1); err != nil || cn != "server one" {
		t.Fatalf("before any reload: %q, %v", cn, err)
	}
	if _, err := served(ca1, nil); err == nil {
		t.Fatal("a client without a certificate got in: the client CA requires one")
	}
	established, err := dialTLS(addr, ca1, client1)
	if err != nil {
		t.Fatal(err)
	}
	defer established.Close()

	// The renewal: another CA for both the server and its clients.
	install(ca2, "server two", ca2)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn, err := served(ca2, client2); err != nil || cn != "server two" {
		t.Fatalf("after the reload: %q, %v", cn, err)
	}
	if _, err := served(ca2, client1); err == nil {
		t.Fatal("a client certificate of the old client CA got in after the reload")
	}
	if err := echo(established); err != nil {
		t.Fatalf("the connection established before the reload broke: %v", err)
	}
	if evs := events.take(); len(evs) != 0 {
		t.Fatalf("a good reload recorded %+v", evs)
	}

	good := func() { install(ca2, "server two", ca2) }
	for _, tc := range []struct {
		name, reason, want string
		breakIt            func()
	}{
		{"missing certificate", "certificate_unreadable", "-tls-cert " + files.Cert + ": no such file",
			func() { _ = os.Remove(files.Cert) }},
		{"certificate not PEM", "certificate_invalid", "must be PEM",
			func() { testpki.WriteFile(t, files.Cert, []byte("not a certificate")) }},
		{"key of another certificate", "certificate_invalid", "-tls-key " + files.Key,
			func() { _, k := ca2.Issue(t, "other", true, from, until); testpki.WriteFile(t, files.Key, k) }},
		{"expired", "certificate_expired", "expired at",
			func() {
				c, k := ca2.Issue(t, "old", true, from.Add(-48*time.Hour), from.Add(-24*time.Hour))
				testpki.WriteFile(t, files.Cert, c)
				testpki.WriteFile(t, files.Key, k)
			}},
		{"not yet valid", "certificate_not_yet_valid", "check this host's clock",
			func() {
				c, k := ca2.Issue(t, "future", true, until, until.Add(time.Hour))
				testpki.WriteFile(t, files.Cert, c)
				testpki.WriteFile(t, files.Key, k)
			}},
		{"missing client CA", "client_ca_unreadable", "-tls-client-ca " + files.ClientCA,
			func() { _ = os.Remove(files.ClientCA) }},
		{"client CA without certificates", "client_ca_invalid", "no PEM certificate",
			func() { testpki.WriteFile(t, files.ClientCA, []byte("-----BEGIN NOTHING-----\n")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good()
			tc.breakIt()
			err := src.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload: %v, want an error saying %q", err, tc.want)
			}
			evs := events.take()
			if len(evs) != 1 || evs[0].Rule != RuleTLSReload || evs[0].Reason != tc.reason ||
				!strings.Contains(evs[0].Detail, `previous certificate "CN=server two"`) || !strings.Contains(evs[0].Detail, "reload again") {
				t.Fatalf("events %+v, want one tls.reload %s naming the certificate still served", evs, tc.reason)
			}
			if cn, err := served(ca2, client2); err != nil || cn != "server two" {
				t.Fatalf("after a failed reload: %q, %v: the previous certificate must stay", cn, err)
			}
		})
	}
}

// TestNewTLSSourceErrors: files that cannot be served are refused at start,
// naming the flag.
func TestNewTLSSourceErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewTLSSource(nil, TLSFiles{Cert: filepath.Join(dir, "missing.pem"), Key: filepath.Join(dir, "k.pem"), CertName: "-tls-cert"})
	if err == nil || !strings.Contains(err.Error(), "-tls-cert "+filepath.Join(dir, "missing.pem")) {
		t.Fatalf("error %v", err)
	}
}
