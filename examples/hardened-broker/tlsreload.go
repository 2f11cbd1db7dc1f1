package main

import (
	"errors"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// newTLSSource loads the -tls-cert, -tls-key and -tls-client-ca files into
// a source the TLS and secure WebSocket listeners serve from, reloaded with
// the policy (SIGHUP, the admin reload). It returns nil without -tls-cert.
func newTLSSource(waf *mqttwaf.WAF, c config) (*mqttwaf.TLSSource, error) {
	if c.tlsCert == "" && c.tlsKey == "" {
		if c.tlsClientCA != "" {
			return nil, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
		}
		return nil, nil
	}
	if c.tlsCert == "" || c.tlsKey == "" {
		return nil, errors.New("-tls-cert and -tls-key go together: set both")
	}
	return mqttwaf.NewTLSSource(waf, mqttwaf.TLSFiles{
		Cert: c.tlsCert, Key: c.tlsKey, ClientCA: c.tlsClientCA, ClientCertOptional: !c.requireClientCert,
		CertName: "-tls-cert", KeyName: "-tls-key", ClientCAName: "-tls-client-ca",
	})
}

// tlsAttrs are log attributes naming the certificate being served, so the
// reload's log line shows whether a renewal took.
func tlsAttrs(certs *mqttwaf.TLSSource) []any {
	if certs == nil {
		return nil
	}
	leaf := certs.Certificate()
	return []any{"tls_certificate", leaf.Subject.String(), "tls_not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
}
