package redact

import (
	"bytes"
	"slices"
)

// This file pairs the two coordinates of a coarsen rule in metres, members
// of one object ({"LAT":..,"LON":..}) or elements of one array (GeoJSON's
// [lon, lat]). The longitude's cell width depends on the latitude band, but
// the seed message sends LON before LAT, as GeoJSON does. Rather than
// scanning ahead,
// the rewriter leaves a gap in the output where the longitude goes and
// fills it when the latitude arrives; the bytes written in between are moved
// once (a memmove, cheaper than parsing them twice). A longitude whose
// latitude never comes, or is not governed by the same rule, becomes null.

// pendingLon is a longitude whose output waits for its latitude.
type pendingLon struct {
	rule   int32
	pos    int     // where in dst its value goes
	v      float64 // the input longitude
	raw    []byte  // its input token (src is not modified during Apply)
	quoted bool    // a number written as a string stays a string
}

// coarsenLat snaps a latitude, remembers its band for the longitudes of
// the same object or array that follow, and fills those that came before.
func (s *state) coarsenLat(dst []byte, a *action, ri int32, lat float64, fr *frame) ([]byte, bool) {
	dst, ok := a.appendLat(dst, lat)
	if !a.metres || fr == nil {
		return dst, ok
	}
	c, _ := a.latCentre(lat)
	if ok {
		fr.latRule, fr.latC = ri, c
	}
	if fr.npend > 0 {
		s.resolveLons(fr, ri, c, ok)
	}
	return dst, ok
}

// deferLon leaves the gap for a longitude (s.pendV) whose latitude has
// not been seen yet.
func (s *state) deferLon(fr *frame, ri int32, raw []byte, quoted bool) {
	if fr.npend == len(fr.pend) { // more pairs in one object than we track
		s.null(int(ri), raw, true)
		return
	}
	fr.pend[fr.npend] = pendingLon{rule: ri, pos: len(s.dst), v: s.pendV, raw: raw, quoted: quoted}
	fr.npend++
}

// resolveLons fills the gaps of rule ri (every rule when ri < 0) with the
// longitude snapped in the band centred on latC, or null when !ok.
func (s *state) resolveLons(fr *frame, ri int32, latC float64, ok bool) {
	for k := 0; k < fr.npend; k++ {
		p := fr.pend[k]
		if ri >= 0 && p.rule != ri {
			continue
		}
		a := &s.r.rules[p.rule].action
		good := ok
		s.d = s.d[:0]
		if p.quoted {
			s.d = append(s.d, '"')
		}
		if good {
			s.d, good = a.appendLon(s.d, p.v, latC)
		}
		if p.quoted {
			s.d = append(s.d, '"')
		}
		if !good {
			s.d = append(s.d[:0], "null"...)
		}
		s.dst = slices.Insert(s.dst, p.pos, s.d...)
		if !bytes.Equal(s.d, p.raw) {
			s.count(int(p.rule))
			s.rep.Changed++
			if !good {
				s.rep.Nulled++
			}
		}
		for j := 0; j < fr.npend; j++ { // later gaps moved right
			if j != k && fr.pend[j].pos >= p.pos {
				fr.pend[j].pos += len(s.d)
			}
		}
		fr.npend--
		fr.pend[k] = fr.pend[fr.npend]
		k--
	}
}
