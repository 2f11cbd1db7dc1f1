// Package admin is an authenticated HTTP API to operate a running WAF:
// status, bans (list, add, lift), password lockouts (list, lift), policy
// reload, counters, and Prometheus metrics on the same listener. It is an
// http.Handler; NewServer wraps it in an http.Server with timeouts.
//
// Every request must be authenticated, by a bearer token read from a file
// (LoadToken) or by a client certificate verified by the listener's TLS
// configuration (mutual TLS). Every action it carries out, and every
// request it refuses, is a WAF event (stage admin, rules admin.*): the
// audit trail lives where the security events do.
//
// Endpoints (JSON):
//
//	GET    /v1/status                  version, policy hash, listeners, clients
//	GET    /v1/bans                    bans in force
//	POST   /v1/bans                    {"target":"client:dev1","duration":"1h","reason":"..."}
//	DELETE /v1/bans?target=client:dev1 lift a ban
//	GET    /v1/lockouts                password lockouts in force
//	DELETE /v1/lockouts?target=user:dev1
//	POST   /v1/reload                  re-read the policy (as SIGHUP does)
//	GET    /v1/counters                decisions per rule, action and reason
//	GET    /metrics                    Prometheus exposition
//
// Targets are written as the ban list reads them: client:ID, user:NAME,
// ip:ADDRESS or ip:NETWORK (CIDR).
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Options configure the API. Its zero value refuses every request: an
// admin API needs a token or mutual TLS.
type Options struct {
	// Token is the bearer token (see LoadToken); empty means no token is
	// accepted.
	Token []byte `json:"-" yaml:"-"`
	// ClientCert accepts requests that came with a client certificate the
	// listener verified (tls.Config.ClientCAs with RequireAndVerifyClientCert).
	ClientCert bool `json:"client_cert" yaml:"client_cert"`
	// Version is reported by /v1/status.
	Version string `json:"version" yaml:"version"`
	// Listeners returns the broker's listeners (id -> address) for
	// /v1/status; nil reports none.
	Listeners func() map[string]string `json:"-" yaml:"-"`
	// Clients returns the number of connected clients for /v1/status; nil
	// reports the WAF's open sockets.
	Clients func() int64 `json:"-" yaml:"-"`
	// Reload re-reads the policy (and whatever else the program reloads on
	// SIGHUP); nil makes /v1/reload answer 501.
	Reload func() error `json:"-" yaml:"-"`
	// Metrics serves /metrics; nil makes it answer 404.
	Metrics http.Handler `json:"-" yaml:"-"`
	// Now is the clock (time.Now if nil).
	Now func() time.Time `json:"-" yaml:"-"`
}

// maxBody bounds request bodies: the largest valid one is a ban with a
// 263-byte target and a reason.
const maxBody = 4 << 10

// Handler is the admin API.
type Handler struct {
	waf   *mqttwaf.WAF
	opts  Options
	token [sha256.Size]byte // SHA-256 of the token: compared in constant time, whatever its length
}

// New returns the API for w. It refuses options that would let nobody in.
func New(w *mqttwaf.WAF, o Options) (*Handler, error) {
	if len(o.Token) == 0 && !o.ClientCert {
		return nil, errors.New("admin API: no way to authenticate: give a token file (-admin-token-file) or a client CA (-admin-client-ca)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{waf: w, opts: o}
	if len(o.Token) > 0 {
		h.token = sha256.Sum256(o.Token)
	}
	return h, nil
}

// LoadToken reads a bearer token from path. It refuses a file anyone on
// the machine can read (mode o+r) and an empty one, saying what to do.
// Surrounding whitespace (the newline an editor adds) is not part of it.
func LoadToken(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	if st.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("admin token file %s is readable by every user (mode %v): chmod o-r %s (0600 is best)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	if len(tok) == 0 {
		return nil, fmt.Errorf("admin token file %s is empty: put a random token in it, e.g. head -c 32 /dev/urandom | base64 > %s", path, path)
	}
	return tok, nil
}

// NewServer returns an http.Server for h on addr with timeouts, so a slow
// or idle client cannot hold the admin listener. Give it a TLS config
// (ClientCAs, RequireAndVerifyClientCert) for mutual TLS and serve it with
// ServeTLS / ListenAndServeTLS("", "").
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// route is one endpoint: the methods it answers.
type route map[string]func(h *Handler, w http.ResponseWriter, r *http.Request, who string)

var routes = map[string]route{
	"/v1/status":   {http.MethodGet: (*Handler).status},
	"/v1/bans":     {http.MethodGet: (*Handler).listBans, http.MethodPost: (*Handler).addBan, http.MethodDelete: (*Handler).liftBan},
	"/v1/lockouts": {http.MethodGet: (*Handler).listLockouts, http.MethodDelete: (*Handler).liftLockout},
	"/v1/reload":   {http.MethodPost: (*Handler).reload},
	"/v1/counters": {http.MethodGet: (*Handler).counters},
	"/metrics":     {http.MethodGet: (*Handler).metrics},
}

// ServeHTTP authenticates, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, ok := h.authenticate(r)
	if !ok {
		h.refuse(w, r, http.StatusUnauthorized, "admin.auth", "unauthenticated", who,
			"send Authorization: Bearer <token from the admin token file>, or a client certificate")
		return
	}
	rt, ok := routes[r.URL.Path]
	if !ok {
		h.refuse(w, r, http.StatusNotFound, "admin.request", "not_found", who, "no such endpoint: "+r.URL.Path)
		return
	}
	f, ok := rt[r.Method]
	if !ok {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			if rt[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.refuse(w, r, http.StatusMethodNotAllowed, "admin.request", "method_not_allowed", who,
			r.Method+" "+r.URL.Path+": use "+strings.Join(allow, " or "))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	f(h, w, r, who)
}

// authenticate returns who made the request (for events) and whether it
// may act: a verified client certificate (its subject CN) or the token.
func (h *Handler) authenticate(r *http.Request) (string, bool) {
	if h.opts.ClientCert && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName, true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(h.opts.Token) == 0 {
		return "", false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], h.token[:]) != 1 {
		return "", false
	}
	return "token", true
}

// refuse answers a refused request with an error and records it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, rule, reason, who, detail string) {
	h.waf.Operator(mqttwaf.OperatorAction{Rule: rule, Action: mqttwaf.Reject, Reason: reason, RemoteAddr: r.RemoteAddr,
		Detail: joinWho(who, r.Method+" "+r.URL.Path+": "+detail), Authenticated: who != ""})
	writeJSON(w, status, map[string]string{"error": detail})
}

// done records an action carried out.
func (h *Handler) done(r *http.Request, rule string, action mqttwaf.Action, reason, who string, t ratelimit.Target, detail string) {
	a := mqttwaf.OperatorAction{Rule: rule, Action: action, Reason: reason, RemoteAddr: r.RemoteAddr,
		Detail: joinWho(who, detail), Authenticated: true}
	switch t.Kind {
	case ratelimit.KindClientID:
		a.ClientID = t.Value
	case ratelimit.KindUsername:
		a.Username = t.Value
	}
	h.waf.Operator(a)
}

func joinWho(who, detail string) string {
	if who == "" {
		return detail
	}
	return "by " + who + ": " + detail
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Status is what /v1/status answers.
type Status struct {
	Version          string             `json:"version"`
	Policy           mqttwaf.PolicyInfo `json:"policy"`
	Mode             mqttwaf.Mode       `json:"mode"`
	Listeners        map[string]string  `json:"listeners"`
	ClientsConnected int64              `json:"clients_connected"`
	ConnectionsOpen  int                `json:"connections_open"`
	// State is where the shared state lives (state.backend), whether it is
	// reachable, how many nodes share it and when this node last synced.
	State mqttwaf.StateStatus `json:"state"`
}

func (h *Handler) status(w http.ResponseWriter, _ *http.Request, _ string) {
	s := Status{Version: h.opts.Version, Policy: h.waf.PolicyInfo(), Mode: h.waf.Policy().Mode, Listeners: map[string]string{}, State: h.waf.State()}
	s.ConnectionsOpen, _ = h.waf.OpenConnections()
	s.ClientsConnected = int64(s.ConnectionsOpen)
	if h.opts.Clients != nil {
		s.ClientsConnected = h.opts.Clients()
	}
	if h.opts.Listeners != nil {
		s.Listeners = h.opts.Listeners()
	}
	writeJSON(w, http.StatusOK, s)
}

// Ban is one entry of /v1/bans or /v1/lockouts.
type Ban struct {
	Target  string     `json:"target"` // client:ID, user:NAME, ip:NETWORK
	Reason  string     `json:"reason,omitempty"`
	Since   time.Time  `json:"since"`
	Until   *time.Time `json:"until,omitempty"` // absent: until lifted
	Strikes int        `json:"strikes,omitempty"`
}

func (h *Handler) list(w http.ResponseWriter, s ratelimit.BanStore) {
	l, err := s.List(h.opts.Now())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	out := make([]Ban, 0, len(l))
	for _, b := range l {
		e := Ban{Target: b.Target.String(), Reason: b.Reason, Since: b.Since, Strikes: b.Strikes}
		if !b.Until.IsZero() {
			u := b.Until
			e.Until = &u
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) listBans(w http.ResponseWriter, _ *http.Request, _ string) { h.list(w, h.waf.Bans()) }

func (h *Handler) listLockouts(w http.ResponseWriter, _ *http.Request, _ string) {
	h.list(w, h.waf.Lockouts())
}

// BanRequest is the body of POST /v1/bans.
type BanRequest struct {
	Target   string `json:"target"`
	Duration string `json:"duration"` // e.g. "30m", "1h", "7d"
	Reason   string `json:"reason,omitempty"`
}

// maxBan bounds an operator's ban: a ban for good belongs in the policy or
// a firewall, where it survives restarts and is reviewed.
const maxBan = 366 * 24 * time.Hour

func (h *Handler) addBan(w http.ResponseWriter, r *http.Request, who string) {
	var req BanRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.refuse(w, r, http.StatusBadRequest, "admin.ban_add", "bad_request", who,
			`want {"target":"client:ID|user:NAME|ip:ADDRESS[/BITS]","duration":"1h","reason":"..."}: `+err.Error())
		return
	}
	t, err := ratelimit.ParseTarget(req.Target)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, "admin.ban_add", "bad_request", who, "target: "+err.Error())
		return
	}
	d, err := mqttwaf.ParseDuration(req.Duration)
	if err != nil || d.D() <= 0 || d.D() > maxBan {
		h.refuse(w, r, http.StatusBadRequest, "admin.ban_add", "bad_request", who,
			fmt.Sprintf("duration %q: want a duration between 1s and 366d, e.g. \"30m\" or \"24h\"", req.Duration))
		return
	}
	reason := req.Reason
	if reason == "" {
		reason = "operator"
	}
	if len(reason) > 200 {
		reason = reason[:200]
	}
	now := h.opts.Now()
	b := ratelimit.Ban{Target: t, Reason: reason, Since: now, Until: now.Add(d.D())}
	if err := h.waf.Bans().Add(now, b); err != nil {
		h.refuse(w, r, http.StatusInternalServerError, "admin.ban_add", "failed", who, err.Error())
		return
	}
	h.done(r, "admin.ban_add", mqttwaf.Ban, "operator", who, t,
		fmt.Sprintf("%s banned for %s until %s: %s", t, d, b.Until.UTC().Format(time.RFC3339), reason))
	writeJSON(w, http.StatusCreated, Ban{Target: t.String(), Reason: reason, Since: now, Until: &b.Until})
}

func (h *Handler) lift(w http.ResponseWriter, r *http.Request, who, rule string, s ratelimit.BanStore) {
	t, err := ratelimit.ParseTarget(r.URL.Query().Get("target"))
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, rule, "bad_request", who, "?target=: "+err.Error())
		return
	}
	ok, err := s.Remove(t)
	if err != nil {
		h.refuse(w, r, http.StatusInternalServerError, rule, "failed", who, err.Error())
		return
	}
	detail := t.String() + " lifted"
	if !ok {
		detail = t.String() + " was not in force (its strikes and failure counts are forgiven)"
	}
	h.done(r, rule, mqttwaf.Allow, "operator", who, t, detail)
	writeJSON(w, http.StatusOK, map[string]any{"target": t.String(), "lifted": ok})
}

func (h *Handler) liftBan(w http.ResponseWriter, r *http.Request, who string) {
	h.lift(w, r, who, "admin.ban_lift", h.waf.Bans())
}

func (h *Handler) liftLockout(w http.ResponseWriter, r *http.Request, who string) {
	h.lift(w, r, who, "admin.lockout_lift", h.waf.Lockouts())
}

func (h *Handler) reload(w http.ResponseWriter, r *http.Request, who string) {
	if h.opts.Reload == nil {
		h.refuse(w, r, http.StatusNotImplemented, "admin.reload", "not_configured", who, "this program has nothing to reload")
		return
	}
	if err := h.opts.Reload(); err != nil {
		h.done(r, "admin.reload", mqttwaf.Reject, "failed", who, ratelimit.Target{}, "reload failed, the running policy stays in force: "+err.Error())
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	pi := h.waf.PolicyInfo()
	h.done(r, "admin.reload", mqttwaf.Allow, "ok", who, ratelimit.Target{}, "policy reloaded: sha256 "+pi.SHA256)
	writeJSON(w, http.StatusOK, pi)
}

func (h *Handler) counters(w http.ResponseWriter, _ *http.Request, _ string) {
	c := h.waf.Counters()
	if c == nil {
		c = []mqttwaf.Count{}
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, _ string) {
	if h.opts.Metrics == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "metrics are not served here"})
		return
	}
	h.opts.Metrics.ServeHTTP(w, r)
}
