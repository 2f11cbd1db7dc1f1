package main

import (
	"errors"
	"fmt"

	"github.com/mqttwaf/mqttwaf/examples/internal/cli"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// reloader returns the one reload of the broker, for SIGHUP and the admin
// API alike: the policy file, the TLS certificate, key and client CA, and
// the events file (reopened for log rotation). Every part is attempted; a
// part that fails keeps its previous state (the running policy, the
// certificate being served, the file open before) and its error, naming
// the part, joins the returned one.
func reloader(waf *mqttwaf.WAF, policyPath string, certs *mqttwaf.TLSSource, events *eventOutput) func() error {
	return func() error {
		var errs []error
		if err := waf.ReloadFile(policyPath); err != nil {
			errs = append(errs, fmt.Errorf("policy %s (the running policy stays in force): %w", cli.PolicyName(policyPath), err))
		}
		if certs != nil {
			if err := certs.Reload(); err != nil {
				errs = append(errs, fmt.Errorf("TLS (the previous certificate stays in force): %w", err))
			}
		}
		if err := events.Reopen(); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
}
