package schema

import "github.com/tidwall/gjson"

// This file is a reference evaluator for field rules, used to check the
// one-pass trie (fieldset.go) in tests and fuzzing: every rule on its own,
// in Options order, with one gjson lookup per path component.

func referenceCheck(rules []fieldRule, doc string) *ValidationError {
	for i := range rules {
		if e := referenceRule(&rules[i], doc); e != nil {
			return e
		}
	}
	return nil
}

func referenceRule(fr *fieldRule, doc string) *ValidationError {
	var e *ValidationError
	var walk func(r gjson.Result, i int, idx []int) bool
	walk = func(r gjson.Result, i int, idx []int) bool {
		for ; i < len(fr.path.raw); i++ {
			if fr.path.raw[i] != "#" {
				r = r.Get(fr.path.raw[i])
				if !r.Exists() {
					if fr.required {
						e = fr.missing(i+1, idx)
					}
					return e == nil
				}
				continue
			}
			if !r.IsArray() {
				if fr.required {
					e = verr(fr.path.pointer(i, idx), "type", "must be an array")
				}
				return e == nil
			}
			n := 0
			r.ForEach(func(_, el gjson.Result) bool {
				ok := walk(el, i+1, append(idx[:len(idx):len(idx)], n))
				n++
				return ok
			})
			return e == nil
		}
		e = fr.check(r, idx)
		return e == nil
	}
	walk(gjson.Parse(doc), 0, nil)
	return e
}
