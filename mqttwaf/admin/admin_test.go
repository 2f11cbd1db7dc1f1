package admin_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/admin"
	"github.com/mqttwaf/mqttwaf/mqttwaf/testpki"
)

type events struct {
	mu  sync.Mutex
	evs []mqttwaf.Event
}

func (e *events) Emit(ev mqttwaf.Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }

func (e *events) take() []mqttwaf.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := e.evs
	e.evs = nil
	return evs
}

// TestAPI drives every endpoint over a real HTTP server: each answers its
// methods only, with JSON; every action and every refusal is an event.
func TestAPI(t *testing.T) {
	evs := &events{}
	w, err := mqttwaf.New(nil, mqttwaf.Options{Sink: evs})
	if err != nil {
		t.Fatal(err)
	}
	reloadErr := error(nil)
	h, err := admin.New(w, admin.Options{Token: []byte("s3cret-token"), Version: "v1.2.3",
		Listeners: func() map[string]string { return map[string]string{"tcp": "127.0.0.1:1883"} },
		Reload:    func() error { return reloadErr },
		Metrics:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "mqttwaf_x 1\n") })})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const tok = "s3cret-token"
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
		event                           string // rule:reason of the event it records, "" for none
	}{
		{"no token", "GET", "/v1/status", "", "", 401, "Bearer", "admin.auth:unauthenticated"},
		{"wrong token", "GET", "/v1/bans", "s3cret-tokeN", "", 401, "error", "admin.auth:unauthenticated"},
		{"token prefix", "GET", "/metrics", "s3cret", "", 401, "error", "admin.auth:unauthenticated"},
		{"status", "GET", "/v1/status", tok, "", 200, `"version": "v1.2.3"`, ""},
		{"status lists listeners", "GET", "/v1/status", tok, "", 200, `"tcp": "127.0.0.1:1883"`, ""},
		{"status says where the state is", "GET", "/v1/status", tok, "", 200, `"state": {
    "backend": "memory",
    "up": true,
    "nodes": 1
  }`, ""},
		{"status by POST", "POST", "/v1/status", tok, "", 405, "use GET", "admin.request:method_not_allowed"},
		{"unknown path", "GET", "/v1/nothing", tok, "", 404, "no such endpoint", "admin.request:not_found"},
		{"ban", "POST", "/v1/bans", tok, `{"target":"client:dev1","duration":"1h","reason":"stolen"}`, 201, `"target": "client:dev1"`, "admin.ban_add:operator"},
		{"bans list", "GET", "/v1/bans", tok, "", 200, `"reason": "stolen"`, ""},
		{"ban bad target", "POST", "/v1/bans", tok, `{"target":"dev1","duration":"1h"}`, 400, "KIND:VALUE", "admin.ban_add:bad_request"},
		{"ban no duration", "POST", "/v1/bans", tok, `{"target":"ip:192.0.2.0/24"}`, 400, "duration", "admin.ban_add:bad_request"},
		{"ban unknown field", "POST", "/v1/bans", tok, `{"target":"ip:192.0.2.1","duration":"1h","forever":true}`, 400, "unknown field", "admin.ban_add:bad_request"},
		{"ban body too large", "POST", "/v1/bans", tok, `{"target":"client:` + strings.Repeat("x", 5000) + `"}`, 400, "too large", "admin.ban_add:bad_request"},
		{"lift", "DELETE", "/v1/bans?target=client:dev1", tok, "", 200, `"lifted": true`, "admin.ban_lift:operator"},
		{"lift again", "DELETE", "/v1/bans?target=client:dev1", tok, "", 200, `"lifted": false`, "admin.ban_lift:operator"},
		{"bans empty", "GET", "/v1/bans", tok, "", 200, "[]", ""},
		{"lockouts", "GET", "/v1/lockouts", tok, "", 200, "[]", ""},
		{"lockout lift", "DELETE", "/v1/lockouts?target=user:dev1", tok, "", 200, `"lifted": false`, "admin.lockout_lift:operator"},
		{"lockout add not offered", "POST", "/v1/lockouts", tok, "{}", 405, "use GET or DELETE", "admin.request:method_not_allowed"},
		{"reload", "POST", "/v1/reload", tok, "", 200, `"reloads_ok"`, "admin.reload:ok"},
		{"reload by GET", "GET", "/v1/reload", tok, "", 405, "use POST", "admin.request:method_not_allowed"},
		{"counters", "GET", "/v1/counters", tok, "", 200, `"rule": "admin.auth"`, ""},
		{"metrics", "GET", "/metrics", tok, "", 200, "mqttwaf_x 1", ""},
	} {
		status, body := do(tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, status, body, tc.status, tc.contains)
		}
		got := ""
		for _, e := range evs.take() {
			if e.Stage == mqttwaf.StageAdmin {
				got = e.Rule + ":" + e.Reason
				if e.RemoteIP != "127.0.0.1" {
					t.Errorf("%s: event without the operator's address: %+v", tc.name, e)
				}
			}
		}
		if got != tc.event {
			t.Errorf("%s: event %q, want %q", tc.name, got, tc.event)
		}
	}
	reloadErr = errors.New("fleet.yaml:3: unknown key")
	if status, body := do("POST", "/v1/reload", tok, ""); status != 422 || !strings.Contains(body, "unknown key") {
		t.Errorf("failed reload: %d %s", status, body)
	}
	if e := evs.take(); len(e) != 1 || e[0].Rule != "admin.reload" || e[0].Reason != "failed" || !strings.Contains(e[0].Detail, "stays in force") {
		t.Errorf("failed reload events %+v", e)
	}
	var st admin.Status
	_, body := do("GET", "/v1/status", tok, "")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Policy.SHA256 != w.PolicyInfo().SHA256 || st.Policy.ReloadsOK != 0 {
		t.Errorf("status %+v, %v", st, err)
	}
}

// TestLoadToken refuses what would leak or let anybody in.
func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string // error substring, "" for success
	}{
		{"good", "abc123\n", 0o600, ""},
		{"group-readable", "abc123", 0o640, ""},
		{"world-readable", "abc123", 0o644, "readable by every user"},
		{"empty", "\n", 0o600, "is empty"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		tok, err := admin.LoadToken(p)
		switch {
		case tc.want == "" && (err != nil || string(tok) != "abc123"):
			t.Errorf("%s: %q, %v", tc.name, tok, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := admin.LoadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file loaded")
	}
	w, _ := mqttwaf.New(nil, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if _, err := admin.New(w, admin.Options{}); err == nil || !strings.Contains(err.Error(), "-admin-token-file") {
		t.Errorf("an API nobody can authenticate to: %v", err)
	}
}

// TestClientCertificate: with ClientCert, a request over TLS with a
// certificate the listener verified is let in and named in the event; one
// without a certificate (the listener accepts either proof) is refused.
func TestClientCertificate(t *testing.T) {
	ca := testpki.NewCA(t, "admin CA")
	from, until := testpki.Valid()
	pair := func(cn string, server bool) tls.Certificate {
		c, err := tls.X509KeyPair(ca.Issue(t, cn, server, from, until))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	evs := &events{}
	w, _ := mqttwaf.New(nil, mqttwaf.Options{Sink: evs})
	h, err := admin.New(w, admin.Options{ClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, Certificates: []tls.Certificate{pair("127.0.0.1", true)}}
	srv.StartTLS()
	defer srv.Close()
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}}
	}
	for _, tc := range []struct {
		name   string
		c      *http.Client
		status int
		event  string
	}{
		{"with a certificate", client(pair("operator-1", false)), 201, "by cert:operator-1"},
		{"without", client(), 401, "admin.auth"},
	} {
		resp, err := tc.c.Post(srv.URL+"/v1/bans", "application/json", strings.NewReader(`{"target":"user:x","duration":"1m"}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		e := evs.take()
		if len(e) != 1 || !strings.Contains(e[0].Rule+" "+e[0].Detail, tc.event) {
			t.Errorf("%s: events %+v, want one with %q", tc.name, e, tc.event)
		}
	}
}
