package mqttwaf

import (
	"fmt"
	"strings"
)

// Template is a topic filter whose levels may contain the variables
// {clientid}, {username} and {cn}, compiled once and matched against topics
// and filters without building strings, so an ACL check allocates nothing.
//
// A variable whose value is empty or contains '/', '+', '#', '$' or NUL
// makes the template match nothing: a client ID "+" or a user name "a/#"
// can never widen a grant (template injection).
type Template struct {
	src    string
	levels []tlevel
}

type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus
	levelHash
	levelVars // literal text mixed with variables
)

type tlevel struct {
	kind  levelKind
	lit   string  // levelLiteral
	parts []tpart // levelVars
}

type varKind uint8

const (
	varNone varKind = iota
	varClientID
	varUsername
	varCN
)

type tpart struct {
	lit string
	v   varKind // varNone: lit is literal text
}

var varNames = map[string]varKind{"clientid": varClientID, "username": varUsername, "cn": varCN}

// CompileTemplate parses a topic filter template such as
// "fleet/{username}/#" or "devices/dev-{clientid}/+/state".
func CompileTemplate(src string) (*Template, error) {
	if src == "" {
		return nil, fmt.Errorf("empty topic template")
	}
	t := &Template{src: src}
	levels := strings.Split(src, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return nil, fmt.Errorf("template %q: '#' must be the last level", src)
			}
			t.levels = append(t.levels, tlevel{kind: levelHash})
		case l == "+":
			t.levels = append(t.levels, tlevel{kind: levelPlus})
		case strings.ContainsAny(l, "+#"):
			return nil, fmt.Errorf("template %q: '+' and '#' must fill a whole level", src)
		case strings.Contains(l, "{"):
			parts, err := compileVars(l)
			if err != nil {
				return nil, fmt.Errorf("template %q: %w", src, err)
			}
			t.levels = append(t.levels, tlevel{kind: levelVars, parts: parts})
		default:
			if strings.Contains(l, "}") || hasControl(l) {
				return nil, fmt.Errorf("template %q: level %q is not valid", src, l)
			}
			t.levels = append(t.levels, tlevel{kind: levelLiteral, lit: l})
		}
	}
	return t, nil
}

func compileVars(level string) ([]tpart, error) {
	var parts []tpart
	for level != "" {
		open := strings.IndexByte(level, '{')
		if open < 0 {
			parts = append(parts, tpart{lit: level})
			break
		}
		if open > 0 {
			parts = append(parts, tpart{lit: level[:open]})
		}
		end := strings.IndexByte(level[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed '{' in %q", level)
		}
		name := level[open+1 : open+end]
		v, ok := varNames[name]
		if !ok {
			return nil, fmt.Errorf("unknown variable {%s}: use {clientid}, {username} or {cn}", name)
		}
		parts = append(parts, tpart{v: v})
		level = level[open+end+1:]
	}
	return parts, nil
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// Covers reports whether every topic that f (a topic name or a filter,
// possibly "$share/group/..."-free) can match is also matched by the
// template, with the variables taken from c. For a topic name that is plain
// MQTT matching; for a filter it is containment ("fleet/+/telemetry" covers
// "fleet/dev1/telemetry" and itself, not "fleet/#"). Topics beginning with
// '$' are not matched by a leading wildcard, as in MQTT.
func (t *Template) Covers(f string, c *Client) bool {
	if strings.HasPrefix(f, "$") && len(t.levels) > 0 && (t.levels[0].kind == levelPlus || t.levels[0].kind == levelHash) {
		return false
	}
	rest, done := f, false
	for _, lv := range t.levels {
		if lv.kind == levelHash {
			return true // '#' also matches the parent level: "a/#" covers "a"
		}
		if done {
			return false
		}
		var level string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			level, rest = rest[:i], rest[i+1:]
		} else {
			level, done = rest, true
		}
		if level == "#" {
			return false // the filter reaches further than this template level
		}
		switch lv.kind {
		case levelPlus:
		case levelLiteral:
			if level != lv.lit {
				return false
			}
		case levelVars:
			if level == "+" || !lv.matchVars(level, c) {
				return false
			}
		}
	}
	return done
}

// matchVars reports whether level equals the level's parts with the
// variables substituted from c.
func (lv *tlevel) matchVars(level string, c *Client) bool {
	for _, p := range lv.parts {
		s := p.lit
		if p.v != varNone {
			s = varValue(p.v, c)
			if !safeValue(s) {
				return false
			}
		}
		if !strings.HasPrefix(level, s) {
			return false
		}
		level = level[len(s):]
	}
	return level == ""
}

func varValue(v varKind, c *Client) string {
	if c == nil {
		return ""
	}
	switch v {
	case varClientID:
		return c.ID
	case varUsername:
		return c.Username
	case varCN:
		if c.TLS != nil && c.TLS.Verified {
			return c.TLS.CommonName
		}
	}
	return ""
}

// safeValue reports whether a substituted value is safe to match with:
// non-empty, and free of characters that have meaning in topics.
func safeValue(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#$\x00")
}

// literalLevels counts the levels of filter f before its first wildcard.
func literalLevels(f string) int {
	n := 0
	for l := range strings.SplitSeq(f, "/") {
		if l == "+" || l == "#" {
			return n
		}
		n++
	}
	return n
}

// hasWildcard reports whether filter f has a '+' or '#' level.
func hasWildcard(f string) bool { return strings.ContainsAny(f, "+#") }
