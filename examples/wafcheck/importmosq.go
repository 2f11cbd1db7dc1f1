package main

// `wafcheck import-mosquitto`: a way in from mosquitto. It reads a
// mosquitto password file and ACL file (man mosquitto.conf, "acl_file") and
// writes a policy and a credentials file that decide the same publishes and
// deliveries, so a fleet moves without re-issuing a single password (the
// $6$/$7$ hashes are copied; the broker verifies them as mosquitto does).
//
// What cannot be expressed is never dropped silently: each such ACL line is
// named in a warning on stderr, and the policy's header says what to review.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

const importUsage = "usage: wafcheck import-mosquitto -passwd FILE -acl FILE [-out DIR]"

// The files import-mosquitto writes in -out.
const (
	importedPolicyName = "mosquitto-policy.yaml"
	importedCredsName  = "mosquitto.creds"
)

// maxMosquittoFileBytes bounds the files read: a password or ACL file for a
// million devices is still well under it.
const maxMosquittoFileBytes = 256 << 20

// mosqRule is one `topic` or `pattern` line of a mosquitto ACL file.
type mosqRule struct {
	Line   int
	Access string // read, write, readwrite or deny
	Topic  string // as written; for a pattern, %c and %u not yet replaced
}

// mosqACL is a parsed mosquitto ACL file.
type mosqACL struct {
	Anonymous []mosqRule            // topic lines before any user line
	Users     map[string][]mosqRule // topic lines after "user NAME"
	Order     []string              // users in the order the file names them
	UserLine  map[string]int        // the first "user NAME" line of each
	Patterns  []mosqRule            // pattern lines, for everyone
}

// importWarnings collects what the import could not carry over, each
// naming the file and line, for stderr.
type importWarnings []importWarning

type importWarning struct {
	Path string
	Line int
	Text string
}

func (w importWarning) String() string { return fmt.Sprintf("%s:%d: %s", w.Path, w.Line, w.Text) }

func (w *importWarnings) add(path string, line int, format string, args ...any) {
	if w == nil {
		return // a line already reported
	}
	*w = append(*w, importWarning{path, line, fmt.Sprintf(format, args...)})
}

// parseMosquittoACL reads an ACL file as mosquitto does: '#' comments and
// blank lines skipped, "topic [access] TOPIC" with readwrite when the access
// is left out, the rest of the line being the topic.
func parseMosquittoACL(data []byte, path string, warn *importWarnings) mosqACL {
	acl := mosqACL{Users: map[string][]mosqRule{}, UserLine: map[string]int{}}
	user, inUser := "", false
	for n, line := range configLines(data) {
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch keyword {
		case "user":
			if rest == "" {
				warn.add(path, n, "\"user\" without a name: the topic lines after it are skipped until the next user line")
				user, inUser = "", true
				continue
			}
			user, inUser = rest, true
			if _, seen := acl.Users[user]; !seen {
				acl.Users[user] = nil
				acl.UserLine[user] = n
				acl.Order = append(acl.Order, user)
			}
		case "topic", "pattern":
			access, topic, _ := strings.Cut(rest, " ")
			switch access {
			case "read", "write", "readwrite", "deny":
				topic = strings.TrimSpace(topic)
			default:
				access, topic = "readwrite", rest // mosquitto's default when no access is given
			}
			if topic == "" {
				warn.add(path, n, "%q has no topic: skipped", line)
				continue
			}
			r := mosqRule{Line: n, Access: access, Topic: topic}
			switch {
			case keyword == "pattern":
				acl.Patterns = append(acl.Patterns, r)
			case !inUser:
				acl.Anonymous = append(acl.Anonymous, r)
			case user != "":
				acl.Users[user] = append(acl.Users[user], r)
			}
		default:
			warn.add(path, n, "%q is not a user, topic or pattern line: skipped", line)
		}
	}
	return acl
}

// configLines yields the lines of a mosquitto file with their numbers,
// trimmed, without blank lines and '#' comments, as mosquitto reads them.
func configLines(data []byte) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !yield(i+1, line) {
				return
			}
		}
	}
}

// passwdEntry is one line of a mosquitto password file.
type passwdEntry struct {
	Line       int
	Name, Hash string
}

// parseMosquittoPasswd reads NAME:HASH lines, keeping those whose hash the
// broker can verify ($6$ and $7$, what mosquitto_passwd writes).
func parseMosquittoPasswd(data []byte, path string, warn *importWarnings) []passwdEntry {
	var out []passwdEntry
	seen := map[string]bool{}
	for n, line := range configLines(data) {
		name, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || name == "":
			warn.add(path, n, "not a NAME:HASH line: skipped")
		case !strings.HasPrefix(hash, "$6$") && !strings.HasPrefix(hash, "$7$"):
			warn.add(path, n, "user %q: the password is not a mosquitto $6$ or $7$ hash (plaintext?): skipped; "+
				"hash the file with mosquitto_passwd -U on a copy, or make a new hash with hardened-broker -hash-password", name)
		case seen[name]:
			warn.add(path, n, "user %q appears twice: the first line is kept", name)
		default:
			seen[name] = true
			out = append(out, passwdEntry{Line: n, Name: name, Hash: hash})
		}
	}
	return out
}

// importedRole is the grants one mosquitto rule set maps to.
type importedRole struct {
	Name                             string
	Members                          []string // identities with this role
	Publish, Subscribe, Retain, Deny []string
	Sys, Broad                       bool
}

// key identifies the rule set, so users with identical grants share a role.
func (r *importedRole) key() string {
	b, _ := json.Marshal([]any{sorted(r.Publish), sorted(r.Subscribe), sorted(r.Retain), sorted(r.Deny), r.Sys, r.Broad})
	return string(b)
}

func sorted(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }

// addRule maps one ACL line onto the role: read -> subscribe (also the read
// permission at delivery), write -> publish and retain (mosquitto lets any
// writer retain), readwrite -> both, deny -> deny. pattern says whether %c
// and %u are substituted (mosquitto does so in pattern lines only).
func (r *importedRole) addRule(rule mosqRule, pattern bool, path string, warn *importWarnings) {
	topic := rule.Topic
	if strings.ContainsAny(topic, "{}") {
		warn.add(path, rule.Line, "topic %q contains '{' or '}', which policy templates read as variables: skipped; grant it by hand if it is needed", topic)
		return
	}
	if pattern {
		topic = strings.NewReplacer("%c", "{clientid}", "%u", "{username}").Replace(topic)
	}
	if _, err := mqttwaf.CompileTemplate(topic); err != nil {
		warn.add(path, rule.Line, "topic %q is not a valid topic filter (%v): skipped", rule.Topic, err)
		return
	}
	read := rule.Access == "read" || rule.Access == "readwrite"
	write := rule.Access == "write" || rule.Access == "readwrite"
	if strings.HasPrefix(topic, "$") {
		if rule.Access == "deny" {
			warn.add(path, rule.Line, "deny %q: topics starting with '$' are refused to clients unless a role has sys, so this line is not needed: skipped", rule.Topic)
			return
		}
		if write {
			warn.add(path, rule.Line, "write access to %q cannot be granted: clients may never publish to topics starting with '$'", rule.Topic)
		}
		if read {
			if !strings.HasPrefix(topic, "$SYS") {
				warn.add(path, rule.Line, "read access to %q cannot be granted: only $SYS topics can be read, with sys: true", rule.Topic)
				return
			}
			if topic != "$SYS/#" {
				warn.add(path, rule.Line, "%q became sys: true for role %q, which reads all of $SYS, not only this part", rule.Topic, r.Name)
			}
			r.Sys = true
		}
		return
	}
	switch {
	case rule.Access == "deny":
		r.Deny = append(r.Deny, topic)
		return
	case read:
		r.Subscribe = append(r.Subscribe, topic)
		if first, _, _ := strings.Cut(topic, "/"); first == "+" || first == "#" {
			r.Broad = true // mosquitto lets this user subscribe to "#" itself
		}
	}
	if write {
		r.Publish = append(r.Publish, topic)
		r.Retain = append(r.Retain, topic)
	}
}

// importMosquitto turns the two files into a policy and a credentials file.
// The policy refers to the credentials file as credsName, next to it.
func importMosquitto(passwd, acl []byte, passwdPath, aclPath, credsName string) (policy, creds []byte, warn importWarnings) {
	entries := parseMosquittoPasswd(passwd, passwdPath, &warn)
	parsed := parseMosquittoACL(acl, aclPath, &warn)

	// Every user: those with a password, then those the ACL names only.
	var users []string
	hasPasswd := map[string]bool{}
	passwdLine := map[string]int{}
	for _, e := range entries {
		users = append(users, e.Name)
		hasPasswd[e.Name] = true
		passwdLine[e.Name] = e.Line
	}
	for _, u := range parsed.Order {
		if !hasPasswd[u] {
			users = append(users, u)
		}
	}
	usable := map[string]bool{}
	for _, u := range users {
		if err := checkName(u); err != nil {
			path, line := aclPath, parsed.UserLine[u]
			if hasPasswd[u] {
				path, line = passwdPath, passwdLine[u]
			}
			warn.add(path, line, "user %q cannot be an identity: %v; it is left out of the policy and the credentials file", u, err)
			continue
		}
		usable[u] = true
		if !hasPasswd[u] {
			warn.add(aclPath, parsed.UserLine[u], "user %q has ACL rules but no password in %s: it gets a role and no credentials line; "+
				"add one, or give its certificate identity this role", u, passwdPath)
		}
	}

	build := func(name string, rules []mosqRule, anonymous bool) *importedRole {
		r := &importedRole{Name: name}
		for _, rule := range rules {
			r.addRule(rule, false, aclPath, &warn)
		}
		for _, rule := range parsed.Patterns {
			if anonymous && strings.Contains(rule.Topic, "%u") {
				continue // no user name: mosquitto skips the pattern, {username} would match nothing
			}
			r.addRule(rule, true, aclPath, nil) // reported once, below
		}
		return r
	}
	// Pattern lines are reported once here, not for every role.
	probe := &importedRole{Name: "every role"}
	for _, rule := range parsed.Patterns {
		probe.addRule(rule, true, aclPath, &warn)
		if rule.Access == "deny" {
			warn.add(aclPath, rule.Line, "pattern deny %q is a deny in every role: in mosquitto a user's own topic grant wins over a pattern deny, "+
				"here the deny wins; review the roles whose grants overlap it", rule.Topic)
		}
	}

	var roles []*importedRole
	byKey := map[string]*importedRole{}
	roleOf := map[string]string{}
	for _, u := range users {
		if !usable[u] {
			continue
		}
		r := build(u, parsed.Users[u], false)
		if have, ok := byKey[r.key()]; ok {
			have.Members = append(have.Members, u)
			roleOf[u] = have.Name
			continue
		}
		r.Members = []string{u}
		byKey[r.key()] = r
		roles = append(roles, r)
		roleOf[u] = u
	}
	// Anonymous clients: the topic lines before any user line, and the
	// patterns without %u.
	anonName := "anonymous"
	for usable[anonName] {
		anonName = "mosquitto-" + anonName
	}
	anon := build(anonName, parsed.Anonymous, true)
	roles = append(roles, anon)

	var cb bytes.Buffer
	fmt.Fprintf(&cb, "# identities imported from the mosquitto password file %s: name:role:hash\n", filepath.Base(passwdPath))
	for _, e := range entries {
		if usable[e.Name] {
			fmt.Fprintf(&cb, "%s:%s:%s\n", e.Name, roleOf[e.Name], e.Hash)
		}
	}
	// In file order: passwords first, then the ACL top to bottom.
	slices.SortStableFunc(warn, func(a, b importWarning) int {
		if a.Path != b.Path {
			return cmp.Compare(fileRank(a.Path, passwdPath), fileRank(b.Path, passwdPath))
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return writeImportedPolicy(roles, anonName, credsName, passwdPath, aclPath, len(warn)), cb.Bytes(), warn
}

func fileRank(path, first string) int {
	if path == first {
		return 0
	}
	return 1
}

// checkName applies the broker's rule for identity and role names.
func checkName(name string) error {
	switch {
	case len(name) > 256:
		return errors.New("names are at most 256 bytes")
	case strings.ContainsAny(name, "/+#$:"):
		return errors.New("names must not contain '/', '+', '#', '$' or ':'")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("names must not contain control characters")
		}
	}
	return nil
}

// writeImportedPolicy writes the policy as commented YAML: the header is
// what an operator must review before putting it in front of devices.
func writeImportedPolicy(roles []*importedRole, anonName, credsName, passwdPath, aclPath string, warnings int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Imported from mosquitto by "wafcheck import-mosquitto"
# (password file %s, ACL file %s).
#
# Review before use:
# - %d warning(s) were printed for ACL or password lines that could not be carried over.
# - identity.anonymous.allow is never. If mosquitto had allow_anonymous true, set it to loopback,
#   networks or anywhere; anonymous clients get role %q (the ACL's topic lines before any user line).
# - mosquitto accepts any SUBSCRIBE and filters at delivery; this policy refuses a subscription that
#   no subscribe grant contains (0x87), so a client subscribing to a filter wider than its grants
#   (e.g. "#") is now told so instead of silently receiving less.
# - Every write grant is also a retain grant, as in mosquitto; remove retain entries where retained
#   messages are not wanted.
# - Roles with a read grant starting with '+' or '#' have broad_wildcards: true (they could subscribe to
#   "#" in mosquitto); consider narrowing them.
# - Payload rules, rate limits, redaction and provenance have no mosquitto counterpart: the secure
#   defaults apply. Run "wafcheck lint" and a "wafcheck test" suite before switching.
identity:
  credentials_file: %s
  anonymous:
    allow: never
    role: %s
roles:
`, filepath.Base(passwdPath), filepath.Base(aclPath), warnings, anonName, quote(credsName), quote(anonName))
	for _, r := range roles {
		switch {
		case r.Name == anonName:
			fmt.Fprintf(&b, "  # anonymous clients (identity.anonymous.role)\n")
		case len(r.Members) > 1:
			fmt.Fprintf(&b, "  # users with the same ACL: %s\n", strings.Join(r.Members, ", "))
		}
		fmt.Fprintf(&b, "  %s:\n", quote(r.Name))
		list := func(key string, items []string) {
			if len(items) == 0 {
				fmt.Fprintf(&b, "    %s: []\n", key)
				return
			}
			fmt.Fprintf(&b, "    %s:\n", key)
			for _, it := range slices.Compact(items) {
				fmt.Fprintf(&b, "      - %s\n", quote(it))
			}
		}
		list("publish", r.Publish)
		list("subscribe", r.Subscribe)
		list("retain", r.Retain)
		if len(r.Deny) > 0 {
			list("deny", r.Deny)
		}
		if r.Sys {
			fmt.Fprintf(&b, "    sys: true\n")
		}
		if r.Broad {
			fmt.Fprintf(&b, "    broad_wildcards: true\n")
		}
	}
	return b.Bytes()
}

// quote writes s as a YAML double-quoted scalar (JSON's string syntax is
// one), so '#', '+', ':' and '%' in topics never change the YAML's meaning.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func runImportMosquitto(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wafcheck import-mosquitto", flag.ContinueOnError)
	fs.SetOutput(stderr)
	passwdPath := fs.String("passwd", "", "mosquitto password file (password_file), hashed by mosquitto_passwd")
	aclPath := fs.String("acl", "", "mosquitto ACL file (acl_file)")
	out := fs.String("out", ".", "directory to write "+importedPolicyName+" and "+importedCredsName+" to (existing files are not overwritten)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *passwdPath == "" || *aclPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, importUsage)
		return 2
	}
	read := func(path string) ([]byte, bool) {
		b, err := readAtMost(path, maxMosquittoFileBytes, "split the file or import it in parts")
		if err != nil {
			fmt.Fprintln(stderr, "wafcheck import-mosquitto:", err)
			return nil, false
		}
		return b, true
	}
	passwd, ok1 := read(*passwdPath)
	acl, ok2 := read(*aclPath)
	if !ok1 || !ok2 {
		return 2
	}
	policy, creds, warn := importMosquitto(passwd, acl, *passwdPath, *aclPath, importedCredsName)
	for _, w := range warn {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	policyPath := filepath.Join(*out, importedPolicyName)
	credsPath := filepath.Join(*out, importedCredsName)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{credsPath, creds, 0o600}, {policyPath, policy, 0o644}} {
		if err := writeNew(f.path, f.data, f.mode); err != nil {
			fmt.Fprintln(stderr, "wafcheck import-mosquitto:", err)
			return 2
		}
	}
	// The result must load as the broker loads it; say so now rather than
	// at the broker's start.
	if _, err := mqttwaf.ReadPolicyFile(policyPath); err != nil {
		fmt.Fprintf(stderr, "wafcheck import-mosquitto: the imported policy does not load (please report this): %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "wrote %s and %s (%d warning(s)); review the policy's header before use\n", policyPath, credsPath, len(warn))
	return 0
}

// writeNew writes a file that must not exist yet: an import never
// overwrites a policy or credentials file.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: remove it or choose another -out", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
