package hooks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// TLS on a Listener: every handshake is admitted by the WAF
// (connections.tls_handshakes_per_ip) as soon as its ClientHello is read,
// and every handshake that fails is reported with a reason of its own
// (rule connections.tls), so an alert can tell an attack on the PKI from a
// device with a broken clock.

// errHandshakeRefused aborts a handshake over the address's budget. The
// WAF has recorded it; the client gets a TLS internal_error alert.
var errHandshakeRefused = errors.New("mqttwaf: TLS handshake refused: over connections.tls_handshakes_per_ip for this address")

// serverTLS returns the TLS configuration the listener serves: a clone of
// the application's, whose GetConfigForClient first asks the WAF whether
// this address may start another handshake, then runs the application's
// own GetConfigForClient, if any.
//
// crypto/tls calls GetConfigForClient when the ClientHello has been read
// and before anything expensive (key exchange, the server's signature,
// which is what a flood of handshakes spends: about 1 ms of CPU each for
// RSA-2048, and a client needs no certificate to ask for it). Returning an
// error there aborts the handshake with an internal_error alert.
func (l *Listener) serverTLS(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	next := cfg.GetConfigForClient
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote, g := "", findGuard(hello.Conn)
		if g != nil {
			remote = g.remote
		} else if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		if v := l.waf.CheckTLSHandshake(l.id, remote); v.Blocked() {
			if g != nil {
				g.refused.Store(true) // recorded: the failed handshake is not another event
			}
			return nil, errHandshakeRefused
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return c
}

// handshakeFailed reports a TLS handshake on g that ended with err: a
// connect_timeout when the CONNECT deadline ended it, nothing when the peer
// just went away or the WAF refused it (already recorded), otherwise one
// connections.tls event with the reason tlsFailure finds.
func (l *Listener) handshakeFailed(g *guardConn, err error) {
	switch {
	case err == nil, g.refused.Load(), errors.Is(err, errHandshakeRefused), peerWentAway(err):
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		l.waf.Record(mqttwaf.StageAccept, nil, l.id, g.remote, "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
			Rule: "connections.connect_timeout", Reason: "connect_timeout", Limit: int64(l.waf.ConnectTimeout(l.id) / time.Millisecond),
			Detail: "no complete TLS handshake within the deadline (limit in ms)"})
		return
	}
	now := time.Now
	if l.tlsConfig != nil && l.tlsConfig.Time != nil {
		now = l.tlsConfig.Time // the clock crypto/tls verified the certificate with
	}
	l.waf.Record(mqttwaf.StageAccept, nil, l.id, g.remote, "", 0, tlsFailure(err, now()))
}

// peerWentAway reports whether err only says that the peer closed or reset
// the connection: port scanners and health checks, not an attack.
func peerWentAway(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TLS failure reasons (rule connections.tls). The reason code in the event
// is the nearest MQTT 5 one; the client only gets the TLS alert.
const (
	reasonCertExpired     = "certificate_expired"       // the certificate (or one in its chain) is past NotAfter
	reasonCertNotYetValid = "certificate_not_yet_valid" // before NotBefore: often a device clock
	reasonCertUnknownCA   = "certificate_unknown_ca"    // does not chain to the listener's ClientCAs
	reasonCertBadUsage    = "certificate_bad_usage"     // not issued for client authentication (extended key usage)
	reasonCertInvalid     = "certificate_invalid"       // any other verification failure (constraints, chain length...)
	reasonNoCertificate   = "no_certificate"            // the listener requires a certificate and none was sent
	reasonHandshakeFailed = "tls_handshake_failed"      // the rest: not TLS, versions, ciphers, alerts from the client
	// tls_handshake_rate (over tls_handshakes_per_ip) is recorded by the WAF.

	msgNoClientCert = "tls: client didn't provide a certificate" // crypto/tls has no type for it
)

// tlsFailure describes a failed TLS handshake: which certificate check
// failed, from the error types crypto/tls and crypto/x509 return (not from
// their messages, except for a missing certificate, which has no type), and
// a detail naming the certificate. now is the time the certificate was
// verified at, to tell "expired" from "not yet valid" (x509 reports both as
// Expired).
func tlsFailure(err error, now time.Time) mqttwaf.Verdict {
	v := mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: mqttwaf.RuleTLS, Reason: reasonHandshakeFailed,
		Code: mqttwaf.CodeMalformedPacket, Detail: err.Error()}
	certificate := func(reason string) { v.Reason, v.Code = reason, mqttwaf.CodeNotAuthorized }
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA):
		certificate(reasonCertUnknownCA)
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			certificate(reasonCertExpired)
			if invalid.Cert != nil && now.Before(invalid.Cert.NotBefore) {
				certificate(reasonCertNotYetValid)
			}
		case x509.IncompatibleUsage:
			certificate(reasonCertBadUsage)
		default:
			certificate(reasonCertInvalid)
		}
	case errors.As(err, &verify):
		certificate(reasonCertInvalid)
	case hasMessage(err, msgNoClientCert):
		certificate(reasonNoCertificate)
		v.Detail = "no client certificate sent; the listener's TLS configuration requires one (ClientAuth)"
	}
	if verify != nil || errors.As(err, &verify) {
		if certs := verify.UnverifiedCertificates; len(certs) > 0 {
			c := certs[0]
			v.Detail = fmt.Sprintf("client certificate %s (serial %s, issuer %s, valid %s to %s): %v",
				quote(c.Subject.String()), c.SerialNumber, quote(c.Issuer.String()),
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), verify.Err)
		}
	}
	return v
}

// hasMessage reports whether err or an error it wraps says exactly msg.
func hasMessage(err error, msg string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == msg {
			return true
		}
	}
	return false
}

// quote quotes a client-chosen string for an event, at most 128 bytes.
func quote(s string) string {
	if len(s) > 128 {
		return strconv.QuoteToASCII(s[:128]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
