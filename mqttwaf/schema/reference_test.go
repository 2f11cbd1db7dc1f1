package schema

import (
	"github.com/tidwall/gjson"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// referenceCheck evaluates rules one by one, the obvious way, for
// comparison with the one-pass evaluator: with gjson.Get as written
// (exact), or matching keys by normalize.FoldKey and through arrays.
func referenceCheck(rules []fieldRule, doc string, fold bool) *ValidationError {
	for i := range rules {
		ref := referenceRule
		if fold {
			ref = referenceFolded
		}
		if e := ref(&rules[i], doc); e != nil {
			return e
		}
	}
	return nil
}

// with returns at followed by one more place, without sharing at's array.
func with(at trail, key string, idx int) trail {
	return append(at[:len(at):len(at)], place{key, idx})
}

func referenceRule(fr *fieldRule, doc string) *ValidationError {
	var e *ValidationError
	var walk func(r gjson.Result, i int, at trail) bool
	walk = func(r gjson.Result, i int, at trail) bool {
		for ; i < len(fr.path.raw); i++ {
			if fr.path.raw[i] != "#" {
				r = r.Get(fr.path.raw[i])
				if !r.Exists() {
					if fr.required {
						e = fr.missing(at, i)
					}
					return e == nil
				}
				at = with(at, fr.path.keys[i], -1)
				continue
			}
			if !r.IsArray() {
				if fr.required {
					e = verr(at.pointer(nil), "type", "must be an array")
				}
				return e == nil
			}
			n := 0
			r.ForEach(func(_, el gjson.Result) bool {
				ok := walk(el, i+1, with(at, "", n))
				n++
				return ok
			})
			return e == nil
		}
		e = fr.check(r, at)
		return e == nil
	}
	walk(gjson.Parse(doc), 0, nil)
	return e
}

// referenceFolded: a key step matches every key that folds alike; met by
// an array, it applies to the objects in it (and in arrays in it), each of
// which must have a required key; an array without objects lacks it.
func referenceFolded(fr *fieldRule, doc string) *ValidationError {
	p := &fr.path
	var e *ValidationError
	var walk func(r gjson.Result, i int, at trail) bool
	var walkKey func(r gjson.Result, i int, at trail, through, nested bool) (int, bool)
	fail := func(err *ValidationError) bool {
		e = err
		return false
	}
	walk = func(r gjson.Result, i int, at trail) bool {
		switch {
		case i == len(p.keys):
			e = fr.check(r, at)
			return e == nil
		case p.raw[i] == "#":
			if !r.IsArray() {
				return !fr.required || fail(verr(at.pointer(nil), "type", "must be an array"))
			}
			n, ok := 0, true
			r.ForEach(func(_, el gjson.Result) bool {
				ok = walk(el, i+1, with(at, "", n))
				n++
				return ok
			})
			return ok
		}
		_, ok := walkKey(r, i, at, false, false)
		return ok
	}
	walkKey = func(r gjson.Result, i int, at trail, through, nested bool) (int, bool) {
		switch {
		case r.IsObject():
			found, ok := false, true
			r.ForEach(func(k, v gjson.Result) bool {
				if normalize.FoldKey(k.Str) == p.folded[i] {
					found = true
					ok = walk(v, i+1, with(at, k.Str, -1))
				}
				return ok
			})
			if ok && !found && fr.required && !(through && p.index[i] >= 0) {
				ok = fail(fr.missing(at, i))
			}
			return 1, ok
		case r.IsArray():
			if !nested && p.index[i] >= 0 {
				found, ok, j := false, true, 0
				r.ForEach(func(_, v gjson.Result) bool {
					if j == p.index[i] {
						found = true
						ok = walk(v, i+1, with(at, "", j))
					}
					j++
					return ok
				})
				if !ok || !found && fr.required && !fail(fr.missing(at, i)) {
					return 0, false
				}
			}
			objs, ok, j := 0, true, 0
			r.ForEach(func(_, v gjson.Result) bool {
				if v.IsObject() || v.IsArray() {
					var n int
					n, ok = walkKey(v, i, with(at, "", j), true, v.IsArray())
					objs += n
				}
				j++
				return ok
			})
			if ok && !nested && objs == 0 && p.index[i] < 0 && fr.required {
				ok = fail(fr.missing(at, i))
			}
			return objs, ok
		}
		return 0, !fr.required || fail(fr.missing(at, i))
	}
	walk(gjson.Parse(doc), 0, nil)
	return e
}
