package redact

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// This file compiles Options into a Redactor: every check happens here, so
// Apply never meets a configuration error.

// action is a validated Action.
type action struct {
	op                  Op
	keepFirst, keepLast int
	mask                []byte // the mask character, UTF-8
	length              int
	hex                 bool
	value               []byte // replace: compact JSON
	decimals            int
	metres              bool    // coarsen: grid in metres (else Decimals)
	latStep             float64 // coarsen metres: cell height in degrees
	nLat                float64 // number of latitude bands
	latDec              int     // decimals printed for a latitude centre
	bounds              []float64
	boundText           [][]byte
}

// rule is a compiled Rule; its index is its priority and Report slot.
type rule struct {
	action
}

type detector struct {
	action
	kind    Kind
	re      *regexp.Regexp
	literal []byte // a literal every regexp match contains (prefilter)
	numbers bool
	plans   phonePlans // phone: the national plans to find (0: all)
}

func errf(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ConfigError is an Options mistake New refused: Field names it by its
// YAML/JSON key ("rules[3].cell_metres"), so a policy that embeds Options
// reports it under its own path; Msg says what is wrong and how to fix it.
type ConfigError struct {
	Field, Msg string
}

func (e *ConfigError) Error() string { return "redact: " + e.Field + ": " + e.Msg }

// New validates opts and compiles them into a Redactor. Errors name the
// field by its YAML key and the fix, e.g. "redact: rules[1].keep_last: must be
// between 0 and 1024, got -2" (a *ConfigError).
func New(opts Options) (*Redactor, error) {
	r := &Redactor{trie: newTrie(!opts.ExactPaths), root: []int32{0}, maxDepth: opts.MaxDepth}
	if r.maxDepth == 0 {
		r.maxDepth = defaultMaxDepth
	}
	if r.maxDepth < 1 || r.maxDepth > maxMaxDepth {
		return nil, errf("max_depth", "must be between 1 and %d, got %d", maxMaxDepth, opts.MaxDepth)
	}
	if opts.MaxOutput < 0 {
		return nil, errf("max_output", "must be >= 0 (0: 8 times the input plus 64 KiB), got %d", opts.MaxOutput)
	}
	r.maxOut = opts.MaxOutput
	if n := len(opts.Rules) + len(opts.Detectors); n > MaxRules {
		return nil, errf("rules", "at most %d rules and detectors together, got %d; split the rule set", MaxRules, n)
	}
	needKey := false
	seen := map[string]string{}
	addID := func(field, id string) error {
		if prev, dup := seen[id]; dup {
			return errf(field+".id", "%q is also the ID of %s; set distinct IDs", id, prev)
		}
		seen[id] = field
		r.ids = append(r.ids, id)
		return nil
	}
	for i, ru := range opts.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		c, err := compileRule(&r.trie, f, int32(i), ru)
		if err != nil {
			return nil, err
		}
		needKey = needKey || c.op == OpPseudonym
		r.rules = append(r.rules, c)
		id := ru.ID
		if id == "" {
			id = string(ru.Op) + ":" + firstPath(ru)
		}
		if err := addID(f, id); err != nil {
			return nil, err
		}
	}
	for i, d := range opts.Detectors {
		f := fmt.Sprintf("detectors[%d]", i)
		c, err := compileDetector(f, d)
		if err != nil {
			return nil, err
		}
		needKey = needKey || c.op == OpPseudonym
		r.numDets = r.numDets || c.numbers
		r.detAll = append(r.detAll, i)
		if c.re != nil {
			r.detRegex = append(r.detRegex, i)
		}
		r.dets = append(r.dets, c)
		id := d.ID
		if id == "" {
			id = "detect:" + string(d.Kind)
		}
		if err := addID(f, id); err != nil {
			return nil, err
		}
	}
	if needKey {
		if n := len(opts.PseudonymKey); n < minKeyLen {
			return nil, errf("pseudonym_key", "must be at least %d bytes for the pseudonym operator, got %d; generate one with `openssl rand -base64 32`", minKeyLen, n)
		}
		r.key = []byte(opts.PseudonymKey)
	}
	if err := r.checkOutputs(opts); err != nil {
		return nil, err
	}
	return r, nil
}

func firstPath(ru Rule) string {
	if ru.Path != "" {
		return ru.Path
	}
	return strings.Join(ru.Paths, ",")
}

func compileRule(t *trie, f string, idx int32, ru Rule) (rule, error) {
	var c rule
	if ru.Op == "" {
		return c, errf(f+".op", "required; one of remove, replace, mask, pseudonym, truncate, round, bucket, coarsen")
	}
	a, err := compileAction(f, ru.Action)
	if err != nil {
		return c, err
	}
	c.action = a
	paths := ru.Paths
	switch {
	case ru.Path != "" && len(ru.Paths) > 0:
		return c, errf(f+".path", "set path or paths, not both")
	case ru.Path != "":
		paths = []string{ru.Path}
	case len(paths) == 0:
		return c, errf(f+".path", "required (a gjson path such as DATA.USER_NAME)")
	}
	parsed := make([][]comp, len(paths))
	for j, p := range paths {
		if parsed[j], err = parsePath(p, t.fold); err != nil {
			field := fmt.Sprintf("%s.paths[%d]", f, j)
			if ru.Path != "" {
				field = f + ".path"
			}
			return c, errf(field, "%v in %q", err, p)
		}
	}
	if c.op == OpCoarsen {
		if len(paths) != 2 {
			return c, errf(f+".paths", "coarsen needs exactly [latitude, longitude], got %d paths", len(paths))
		}
		lat, lon := parsed[0], parsed[1]
		if len(lat) != len(lon) || !sameComps(lat[:len(lat)-1], lon[:len(lon)-1]) {
			return c, errf(f+".paths", "latitude and longitude must sit in the same object or array (differ only in the last component), got %q and %q", paths[0], paths[1])
		}
		la, lo := lat[len(lat)-1], lon[len(lon)-1]
		if la.kind != compKey || lo.kind != compKey || la.text == lo.text {
			return c, errf(f+".paths", "the last components must be two different plain keys or indices, got %q and %q", paths[0], paths[1])
		}
		t.add(lat, idx, roleLat)
		t.add(lon, idx, roleLon)
		return c, nil
	}
	for _, p := range parsed {
		t.add(p, idx, roleNone)
	}
	return c, nil
}

func sameComps(a, b []comp) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func compileDetector(f string, d Detector) (detector, error) {
	var c detector
	switch d.Kind {
	case KindPhone, KindEmail, KindIPv4, KindIPv6, KindMAC, KindIMEI, KindCard:
		if d.Pattern != "" {
			return c, errf(f+".pattern", "only for kind regex; remove it")
		}
	case KindRegex:
		re, err := regexp.Compile(d.Pattern)
		if err != nil {
			return c, errf(f+".pattern", "%v", err)
		}
		if d.Pattern == "" || re.MatchString("") {
			return c, errf(f+".pattern", "must not match the empty string, got %q", d.Pattern)
		}
		c.re = re
		if lit := requiredLiteral(d.Pattern); lit != "" {
			c.literal = []byte(lit)
		}
	case "":
		return c, errf(f+".kind", "required; one of phone, email, ipv4, ipv6, mac, imei, card, regex")
	default:
		return c, errf(f+".kind", "unknown %q; one of phone, email, ipv4, ipv6, mac, imei, card, regex", d.Kind)
	}
	if len(d.Regions) > 0 {
		if d.Kind != KindPhone {
			return c, errf(f+".regions", "only for kind phone; remove it")
		}
		for i, r := range d.Regions {
			p, ok := phoneRegions[strings.ToUpper(r)]
			if !ok {
				return c, errf(fmt.Sprintf("%s.regions[%d]", f, i), "unknown region %q; one of %s", r, knownRegions())
			}
			c.plans |= p
		}
	}
	act := d.Action
	if act.Op == "" {
		act.Op = OpMask
	}
	switch act.Op {
	case OpMask, OpPseudonym, OpRemove, OpReplace:
	default:
		return c, errf(f+".op", "a detector supports mask, pseudonym, remove or replace, got %q", act.Op)
	}
	a, err := compileAction(f, act)
	if err != nil {
		return c, err
	}
	c.action, c.kind, c.numbers = a, d.Kind, d.Numbers
	return c, nil
}

// checkOutputs refuses configurations whose own outputs a detector would
// flag again: replace constants, and runs of a mask character (a custom
// regexp might match them). Apply re-checks at run time as well.
func (r *Redactor) checkOutputs(opts Options) error {
	if len(r.dets) == 0 {
		return nil
	}
	probe := &Redactor{dets: r.dets, trie: newTrie(false), root: []int32{0}, maxDepth: maxMaxDepth,
		key: r.key, ids: r.ids[len(r.rules):], numDets: r.numDets, detAll: r.detAll, detRegex: r.detRegex}
	check := func(f string, doc []byte) error {
		_, rep, err := probe.Apply(nil, doc)
		if err != nil {
			return errf(f, "%v", err)
		}
		for id := range rep.All() {
			return errf(f, "detector %s would flag this output again; choose another", id)
		}
		return nil
	}
	acts := make([]struct {
		f string
		a *action
	}, 0, len(r.rules)+len(r.dets))
	for i := range r.rules {
		acts = append(acts, struct {
			f string
			a *action
		}{fmt.Sprintf("rules[%d]", i), &r.rules[i].action})
	}
	for i := range r.dets {
		acts = append(acts, struct {
			f string
			a *action
		}{fmt.Sprintf("detectors[%d]", i), &r.dets[i].action})
	}
	for _, x := range acts {
		switch x.a.op {
		case OpReplace:
			if err := check(x.f+".value", x.a.value); err != nil {
				return err
			}
		case OpMask:
			for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 32, 64} {
				doc := appendString(nil, bytes.Repeat(x.a.mask, n))
				if err := check(x.f+".mask_char", doc); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
