package mqttwaf

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// AuthMethod says how a client's identity was established.
type AuthMethod string

const (
	AuthNone        AuthMethod = ""            // not authenticated (detection-only mode let it in)
	AuthPassword    AuthMethod = "password"    // user name and password from the credentials file
	AuthCertificate AuthMethod = "certificate" // verified client certificate
	AuthAnonymous   AuthMethod = "anonymous"   // no credentials, admitted by identity.anonymous
	AuthExternal    AuthMethod = "external"    // admitted by the application's own authentication (Connect.Authenticate)
)

// identity is the compiled identity section: who may connect, as whom, with
// which role. Roles are looked up at every check (roleOf), so a reload that
// changes a device's role or removes it applies to its existing session.
type identity struct {
	creds     credentials
	anonAllow string
	anonNets  []netip.Prefix
	anonRole  string
	certField string
	certRole  string
	extRole   string
	bind      []*binding
	dummy     string // compared against for unknown users (see credentials.dummy)
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func compileIdentity(p *Policy) (*identity, error) {
	id := &identity{
		creds:     credentials{},
		anonAllow: p.Identity.Anonymous.Allow,
		anonRole:  p.Identity.Anonymous.Role,
		certField: p.Identity.Certificate.Identity,
		certRole:  p.Identity.Certificate.Role,
		extRole:   p.Identity.ExternalRole,
	}
	switch id.anonAllow {
	case "loopback":
		id.anonNets = loopback
	case "networks":
		for _, n := range p.Identity.Anonymous.Networks {
			id.anonNets = append(id.anonNets, netip.MustParsePrefix(n).Masked()) // validated
		}
	case "anywhere":
		id.anonNets = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	if f := p.Identity.CredentialsFile; f != "" {
		if !filepath.IsAbs(f) && p.baseDir != "" {
			f = filepath.Join(p.baseDir, f)
		}
		creds, err := readCredentials(f, p.Roles)
		if err != nil {
			return nil, fmt.Errorf("identity.credentials_file: %w", err)
		}
		id.creds = creds
	}
	for _, b := range p.Identity.ClientID.Bind {
		cb, _ := compileBinding(b) // validated
		id.bind = append(id.bind, cb)
	}
	id.dummy = id.creds.dummy()
	return id, nil
}

// roleOf is the role c has now.
func (id *identity) roleOf(c *Client) string {
	switch c.Auth {
	case AuthPassword:
		return id.creds[c.Username].role // "" if the identity was removed
	case AuthCertificate:
		if cr, ok := id.creds[c.Username]; ok {
			return cr.role
		}
		return id.certRole
	case AuthAnonymous:
		if id.anonAllow == "never" {
			return ""
		}
		return id.anonRole
	case AuthExternal:
		return id.extRole
	}
	return ""
}

// byCertificate reports whether c's verified client certificate is its
// identity (then no password is checked).
func (id *identity) byCertificate(c *Client) bool {
	return id.certField != "none" && c.TLS != nil && c.TLS.Verified
}

func (id *identity) anonymousFrom(ip netip.Addr) bool {
	for _, n := range id.anonNets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// certIdentity returns the identity a verified certificate carries and the
// values it has in the field that names it (identity.certificate.identity).
// One certificate names one identity: with several values (two CNs, two DNS
// SANs) name is "" and the caller refuses the certificate. Picking the first
// or the last would let whoever asks a permissive CA for a certificate add
// a second name and choose who they are (crypto/x509 keeps the last CN).
func (id *identity) certIdentity(t *TLSInfo) (name string, values []string) {
	switch id.certField {
	case "cn":
		values = t.CommonNames
		if len(values) == 0 && t.CommonName != "" {
			values = []string{t.CommonName} // an adapter that reports only CommonName
		}
	case "san_dns":
		values = t.DNSNames
	case "san_email":
		values = t.Emails
	case "san_uri":
		values = t.URIs
	}
	if len(values) == 1 {
		return values[0], values
	}
	return "", values
}

// ambiguousCertificate refuses a certificate with several values in the
// field that names the identity.
func (id *identity) ambiguousCertificate(values []string) Verdict {
	what := map[string]string{"cn": "CN attributes in its subject", "san_dns": "DNS names in its subject alternative names",
		"san_email": "e-mail addresses in its subject alternative names", "san_uri": "URIs in its subject alternative names"}[id.certField]
	var b strings.Builder
	for i, v := range values {
		if i == 4 {
			b.WriteString(", ...")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteShort(v))
	}
	return Verdict{Action: Reject, Reason: "certificate_identity_ambiguous", Code: CodeNotAuthorized,
		Value: int64(len(values)), Limit: 1,
		Detail: fmt.Sprintf("the certificate has %d %s (%s); identity.certificate.identity %s needs exactly one: issue one certificate per identity",
			len(values), what, b.String(), id.certField)}
}

// authenticate establishes who the client is: a verified certificate
// identity, a user name and password from the credentials file, or an
// anonymous client from an allowed network. A wrong user name and a wrong
// password look the same to the client (0x86, "bad_credentials") and take
// the same time; the event's detail tells them apart.
type authenticate struct {
	id        *identity
	p         *Policy
	lockouts  *lockouts
	passwords *passwordChecker
}

func (*authenticate) ID() string { return "identity.authenticate" }

func (r *authenticate) CheckConnect(c *Connect) Verdict {
	cl := c.Client
	if c.AuthMethod != "" {
		// The policy owns authentication: an enhanced authentication
		// exchange (AUTH packets before CONNACK) would let the broker, not
		// the policy, decide who the client is, and no front end runs one.
		return Verdict{Action: Reject, Reason: "bad_authentication_method", Code: CodeBadAuthMethod,
			Detail: "the CONNECT asks for enhanced authentication (MQTT 5 Authentication Method), which the firewall does not offer: " +
				"connect with a user name and password, or a client certificate, and no Authentication Method"}
	}
	if cl.Auth != AuthNone {
		return r.preAuthenticated(cl)
	}
	if c.Authenticate != nil {
		return r.external(c)
	}
	if r.p.listener(cl.Listener).RequireClientCertificate && (cl.TLS == nil || !cl.TLS.Verified) {
		return Deny("", "client_certificate_required", CodeNotAuthorized)
	}
	if r.id.byCertificate(cl) {
		name, values := r.id.certIdentity(cl.TLS)
		if len(values) > 1 {
			return r.id.ambiguousCertificate(values)
		}
		if checkIdentityName(name) != nil {
			return Verdict{Action: Reject, Reason: "certificate_identity_invalid", Code: CodeNotAuthorized,
				Detail: "the certificate's " + r.id.certField + " is empty or not usable as an identity"}
		}
		if c.UsernameSet && cl.Username != "" && cl.Username != name {
			return Verdict{Action: Reject, Reason: "username_does_not_match_certificate", Code: CodeBadUsernameOrPassword}
		}
		if _, known := r.id.creds[name]; !known && r.id.certRole == "" {
			return Verdict{Action: Reject, Reason: "unknown_certificate_identity", Code: CodeNotAuthorized,
				Detail: "no credentials line and no identity.certificate.role"}
		}
		cl.Username, cl.Auth = name, AuthCertificate
		cl.Role = r.id.roleOf(cl)
		return Verdict{}
	}
	if c.UsernameSet || len(c.Password) > 0 {
		return r.password(c)
	}
	if r.id.anonAllow != "never" && r.id.anonymousFrom(cl.RemoteIP) {
		cl.Username, cl.Auth = "", AuthAnonymous
		cl.Role = r.id.roleOf(cl)
		return Verdict{}
	}
	return Deny("", "anonymous_not_allowed", CodeNotAuthorized)
}

// preAuthenticated accepts an identity the caller established itself (a
// dry run such as wafcheck, or a front end that authenticated the client),
// as long as the policy knows it. The mochi adapter never sets one: network
// clients always go through the checks above.
func (r *authenticate) preAuthenticated(cl *Client) Verdict {
	known := false
	switch cl.Auth {
	case AuthPassword:
		_, known = r.id.creds[cl.Username]
	case AuthCertificate:
		_, known = r.id.creds[cl.Username]
		known = known || r.id.certRole != ""
	case AuthAnonymous:
		known = r.id.anonAllow != "never" && r.id.anonymousFrom(cl.RemoteIP)
	case AuthExternal:
		known = r.id.extRole != ""
	}
	if !known {
		return Deny("", "unknown_identity", CodeNotAuthorized)
	}
	cl.Role = r.id.roleOf(cl)
	return Verdict{}
}

// external asks the application's own authentication (an existing mochi
// auth hook the WAF wraps) in place of the policy's credentials: the WAF's
// lockouts, rates and ACL still apply on top of its answer, never instead.
func (r *authenticate) external(c *Connect) Verdict {
	cl := c.Client
	if r.id.extRole == "" {
		return Verdict{Action: Reject, Reason: "no_external_role", Code: CodeNotAuthorized,
			Detail: "identity.external_role is not set: name the role of the clients your own authentication admits"}
	}
	if !c.Authenticate() {
		r.lockouts.failed(cl, false)
		return Verdict{Action: Reject, Reason: "bad_credentials", Code: CodeBadUsernameOrPassword,
			Detail: "refused by the wrapped authentication hook"}
	}
	cl.Auth = AuthExternal
	cl.Role = r.id.extRole
	return Verdict{}
}

func (r *authenticate) password(c *Connect) Verdict {
	cl := c.Client
	// Lockouts were checked before the connect rates (lockoutCheck).
	cred, known := r.id.creds[cl.Username]
	res := r.passwords.check(cl.Username, cred, known, r.id.dummy, c.Password)
	if res == passwordBusy {
		return Deny("", "authentication_busy", CodeServerBusy)
	}
	if res != passwordOK {
		detail := "wrong password"
		switch {
		case !known:
			detail = "unknown identity"
		case cred.hash == "-":
			detail = "certificate-only identity"
		case isDeviceSecretHash(cred.hash) && !deviceSecretShaped(c.Password):
			// Most likely a device still sending its old password after the
			// migration to device secrets.
			detail = "the identity logs in with a device secret, and the password sent is not one (43 characters from -new-device-secret)"
		case isDeviceSecretHash(cred.hash):
			detail = "wrong device secret"
		}
		v := Verdict{Action: Reject, Reason: "bad_credentials", Code: CodeBadUsernameOrPassword, Detail: detail}
		r.lockouts.failed(cl, known)
		return v
	}
	cl.Auth = AuthPassword
	cl.Role = cred.role
	return Verdict{}
}

// binding is a compiled identity.client_id.bind template.
type binding struct {
	parts  []tpart
	prefix bool // ends with '*': any suffix
}

func compileBinding(src string) (*binding, error) {
	b := &binding{}
	s := src
	if rest, ok := strings.CutSuffix(s, "*"); ok {
		b.prefix, s = true, rest
	}
	if strings.ContainsAny(s, "*/+#") {
		return nil, fmt.Errorf("%q: only a final '*' is allowed, and no '/', '+' or '#'", src)
	}
	parts, err := compileVars(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", src, err)
	}
	for _, p := range parts {
		if p.v == varClientID {
			return nil, fmt.Errorf("%q: {clientid} cannot bind the client ID to itself", src)
		}
	}
	b.parts = parts
	return b, nil
}

func (b *binding) match(id string, c *Client) bool {
	for _, p := range b.parts {
		s := p.lit
		if p.v != varNone {
			s = varValue(p.v, c)
			if !safeValue(s) {
				return false
			}
		}
		if !strings.HasPrefix(id, s) {
			return false
		}
		id = id[len(s):]
	}
	return b.prefix || id == ""
}

// bindClientID refuses client IDs that do not match the identity's binding
// template (0x85). Anonymous clients are not bound.
type bindClientID struct{ id *identity }

func (*bindClientID) ID() string { return "identity.client_id" }

func (r *bindClientID) CheckConnect(c *Connect) Verdict {
	if len(r.id.bind) == 0 || c.Client.Auth == AuthAnonymous || c.Client.Auth == AuthNone {
		return Verdict{}
	}
	for _, b := range r.id.bind {
		if b.match(c.Client.ID, c.Client) {
			return Verdict{}
		}
	}
	return Deny("", "client_id_not_bound_to_identity", CodeClientIDNotValid)
}

// role is a compiled RolePolicy.
type role struct {
	publish, subscribe, retain, deny grantSet
	sys, broad                       bool
	minLiteral                       int
}

// grantSet is a list of templates indexed by their first level, so a check
// only visits templates that can match: a policy with hundreds of grants
// under different prefixes costs about as much as one with a few.
type grantSet struct {
	byFirst map[string][]*Template // first level is a literal
	other   []*Template            // first level is '+', '#' or has variables
}

func (g *grantSet) add(t *Template) {
	if l := t.levels[0]; l.kind == levelLiteral {
		if g.byFirst == nil {
			g.byFirst = map[string][]*Template{}
		}
		g.byFirst[l.lit] = append(g.byFirst[l.lit], t)
		return
	}
	g.other = append(g.other, t)
}

// covers reports whether any template in g covers f for c.
func (g *grantSet) covers(f string, c *Client) bool {
	first := f
	if i := strings.IndexByte(f, '/'); i >= 0 {
		first = f[:i]
	}
	if first != "+" && first != "#" {
		for _, t := range g.byFirst[first] {
			if t.Covers(f, c) {
				return true
			}
		}
	}
	for _, t := range g.other {
		if t.Covers(f, c) {
			return true
		}
	}
	return false
}

func compileRoles(p *Policy) map[string]*role {
	out := make(map[string]*role, len(p.Roles))
	for name, rp := range p.Roles {
		r := &role{sys: rp.Sys, broad: rp.BroadWildcards, minLiteral: rp.MinLiteralLevels}
		for _, g := range []struct {
			src []string
			dst *grantSet
		}{{rp.Publish, &r.publish}, {rp.Subscribe, &r.subscribe}, {rp.Retain, &r.retain}, {rp.Deny, &r.deny}} {
			for _, s := range g.src {
				t, _ := CompileTemplate(s) // validated
				g.dst.add(t)
			}
		}
		out[name] = r
	}
	return out
}

// acl enforces role permissions: publish (on the resolved topic, in
// OnPublish, because MQTT 5 topic aliases hide it from the ACL hook),
// retained publish, subscribe (with the wildcard-breadth rule and $SYS), and
// read permission at every delivery. Deny overrides allow; a client whose
// role no longer exists may do nothing.
type acl struct {
	id    *identity
	roles map[string]*role
}

func (*acl) ID() string { return "acl" }

func (r *acl) roleOf(c *Client) *role { return r.roles[r.id.roleOf(c)] }

func (r *acl) CheckPublish(p *Publish) Verdict {
	c, t := p.Client, p.Message.Topic
	ro := r.roleOf(c)
	switch {
	case ro == nil:
		return Deny("", "no_role", CodeNotAuthorized)
	case ro.deny.covers(t, c):
		return Deny("", "publish_denied", CodeNotAuthorized)
	case !ro.publish.covers(t, c):
		return Deny("", "publish_not_permitted", CodeNotAuthorized)
	case p.Message.Retain && !ro.retain.covers(t, c):
		return Deny("", "retain_not_permitted", CodeNotAuthorized)
	}
	return Verdict{}
}

func (r *acl) CheckSubscribe(c *Client, s *Subscription) Verdict {
	f := sharedFilter(s.Filter)
	ro := r.roleOf(c)
	switch {
	case ro == nil:
		return Deny("", "no_role", CodeNotAuthorized)
	case strings.HasPrefix(f, "$SYS"):
		if !ro.sys {
			return Deny("", "sys_not_permitted", CodeNotAuthorized)
		}
		return Verdict{}
	case ro.deny.covers(f, c):
		return Deny("", "subscribe_denied", CodeNotAuthorized)
	case hasWildcard(f) && !ro.broad && literalLevels(f) < ro.minLiteral:
		return OverLimit("", "wildcard_too_broad", CodeNotAuthorized, int64(literalLevels(f)), int64(ro.minLiteral))
	case !ro.subscribe.covers(f, c):
		return Deny("", "subscribe_not_permitted", CodeNotAuthorized)
	}
	return Verdict{}
}

func (r *acl) CheckDeliver(c *Client, topic string) Verdict {
	ro := r.roleOf(c)
	switch {
	case ro == nil:
		return Deny("", "no_role", CodeNotAuthorized)
	case strings.HasPrefix(topic, "$SYS"):
		if ro.sys {
			return Verdict{}
		}
		return Deny("", "sys_not_permitted", CodeNotAuthorized)
	case ro.deny.covers(topic, c):
		return Deny("", "read_denied", CodeNotAuthorized)
	case !ro.subscribe.covers(topic, c):
		return Deny("", "read_not_permitted", CodeNotAuthorized)
	}
	return Verdict{}
}

// provenance stamps the publisher's identity into a user property and
// removes any the client sent under that name.
type provenance struct{ name string }

func (*provenance) ID() string { return "provenance" }

func (r *provenance) CheckPublish(p *Publish) Verdict {
	in := p.Message.Props.User
	forged := 0
	for _, u := range in {
		if u.Key == r.name {
			forged++
		}
	}
	out := make([]UserProperty, 0, len(in)-forged+1)
	for _, u := range in {
		if u.Key != r.name {
			out = append(out, u)
		}
	}
	who := p.Client.Username
	if who == "" {
		who = "anonymous"
	}
	p.SetUserProperties(append(out, UserProperty{Key: r.name, Value: who}))
	if forged > 0 {
		return Verdict{Action: Rewrite, Reason: "forged_identity_property_removed", Value: int64(forged)}
	}
	return Verdict{}
}
