package mqttwaf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// RuleTLSReload is the rule id of the event a failed certificate reload
// records (TLSSource.Reload): the files named could not be used and the
// previous certificate and client CAs stay in force.
const RuleTLSReload = "tls.reload"

// TLSFiles names the PEM files a TLS listener serves, re-read on every
// TLSSource.Reload, so a renewed certificate (certbot, cert-manager, an
// internal CA's rotation) is served without a restart.
type TLSFiles struct {
	// Cert is the certificate chain (leaf first) and Key its private key.
	Cert string `yaml:"cert_file" json:"cert_file"`
	Key  string `yaml:"key_file" json:"key_file"`
	// ClientCA, if set, is the CA bundle client certificates must chain
	// to (mutual TLS).
	ClientCA string `yaml:"client_ca_file" json:"client_ca_file"`
	// ClientCertOptional, with ClientCA, lets clients without a certificate
	// complete the handshake (they then need a password). The zero value
	// requires a valid certificate of every client.
	ClientCertOptional bool `yaml:"client_cert_optional" json:"client_cert_optional"`
	// Names are what errors and events call the files, in the operator's
	// terms: "-tls-cert" for a flag, "listeners.tls.cert_file" for a
	// setting. Empty ones say "TLS certificate", "TLS key", "client CA".
	CertName, KeyName, ClientCAName string `yaml:"-" json:"-"`
}

// TLSSource serves the certificate and client CAs of TLSFiles to new TLS
// connections and swaps them atomically on Reload: a handshake that starts
// after Reload returned gets the new ones, connections already established
// keep the session they negotiated. A reload whose files cannot be used
// (missing, unreadable, not PEM, key not matching the certificate, expired
// or not yet valid, a CA bundle without certificates) changes nothing: the
// previous certificate and CAs stay in force, Reload returns the error and
// records an event (rule tls.reload) saying what is wrong and what to do,
// so an alert on events sees a renewal that did not take before the old
// certificate expires.
//
// Its Config goes where a *tls.Config goes (hooks.Listener, net/http); it
// hands out the current configuration from GetConfigForClient, which
// crypto/tls calls once the ClientHello is read, so the client CAs can
// change too (GetCertificate alone could swap only the certificate). A
// TLSSource is safe for concurrent use.
type TLSSource struct {
	files TLSFiles
	waf   *WAF
	now   func() time.Time
	mu    sync.Mutex // serialises Reload
	cur   atomic.Pointer[tls.Config]
}

// NewTLSSource loads files and returns a source serving them. w, if not
// nil, receives the events of failed reloads. It fails, saying which file
// is wrong, when the files cannot be used.
func NewTLSSource(w *WAF, files TLSFiles) (*TLSSource, error) {
	s := &TLSSource{files: files, waf: w, now: time.Now}
	if w != nil {
		s.now = w.opts.Now
	}
	cfg, _, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(cfg)
	return s, nil
}

// Config returns the configuration to give the listener. Its
// GetConfigForClient returns the configuration of the last successful
// load; do not set certificates on it.
func (s *TLSSource) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// Certificate returns the leaf certificate being served.
func (s *TLSSource) Certificate() *x509.Certificate {
	return s.cur.Load().Certificates[0].Leaf
}

// Reload re-reads the files and serves them to the next handshakes. On
// error the previous ones stay in force, and an event is recorded.
func (s *TLSSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, reason, err := s.load()
	if err != nil {
		if s.waf != nil {
			old := s.Certificate()
			s.waf.Record(StageBroker, nil, "", "", "", 0, Verdict{Action: Drop, Rule: RuleTLSReload, Reason: reason,
				Detail: fmt.Sprintf("%v; new TLS connections still get the previous certificate %q (expires %s): fix the file and reload again (SIGHUP)",
					err, old.Subject.String(), old.NotAfter.UTC().Format(time.RFC3339))})
		}
		return err
	}
	s.cur.Store(cfg)
	return nil
}

// Reasons of tls.reload events.
const (
	reasonCertUnreadable     = "certificate_unreadable"    // missing file, no permission
	reasonCertInvalid        = "certificate_invalid"       // not PEM, key does not match
	reasonCertExpired        = "certificate_expired"       // past NotAfter
	reasonCertNotYetValid    = "certificate_not_yet_valid" // before NotBefore
	reasonClientCAUnreadable = "client_ca_unreadable"      // missing file, no permission
	reasonClientCAInvalid    = "client_ca_invalid"         // no PEM certificate in it
)

// load reads the files into a new configuration, or says what is wrong
// (an event reason and an error naming the file and what to do).
func (s *TLSSource) load() (*tls.Config, string, error) {
	f := s.files
	certName, keyName, caName := or(f.CertName, "TLS certificate"), or(f.KeyName, "TLS key"), or(f.ClientCAName, "client CA")
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, reasonCertUnreadable, fmt.Errorf("%s %s: %w (check the path and that the broker's user may read it)", certName, f.Cert, unwrapPath(err))
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, reasonCertUnreadable, fmt.Errorf("%s %s: %w (check the path and that the broker's user may read it)", keyName, f.Key, unwrapPath(err))
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, reasonCertInvalid, fmt.Errorf("%s %s with %s %s: %w (both must be PEM, the key the certificate's own)", certName, f.Cert, keyName, f.Key, err)
	}
	now := s.now()
	switch leaf := cert.Leaf; {
	case now.After(leaf.NotAfter):
		return nil, reasonCertExpired, fmt.Errorf("%s %s: certificate %q expired at %s (install the renewed one)",
			certName, f.Cert, leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, reasonCertNotYetValid, fmt.Errorf("%s %s: certificate %q is valid only from %s (check this host's clock, or reload then)",
			certName, f.Cert, leaf.Subject.String(), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, reasonClientCAUnreadable, fmt.Errorf("%s %s: %w (check the path and that the broker's user may read it)", caName, f.ClientCA, unwrapPath(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, reasonClientCAInvalid, fmt.Errorf("%s %s: no PEM certificate in it (it must hold the CA certificates client certificates chain to)", caName, f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if f.ClientCertOptional {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, "", nil
}

// unwrapPath drops the *fs.PathError's "open <path>:" the message already
// names, keeping what went wrong.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
