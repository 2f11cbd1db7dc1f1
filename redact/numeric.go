package redact

import (
	"math"
	"strconv"
)

// This file holds the number operators: round, bucket and coarsen. Each
// output parses back to a value the operator maps to itself, so applying a
// rule set twice changes nothing the second time.

// metresPerDegree is one degree of a great circle on the mean Earth sphere
// (radius 6371.0088 km): 111.195 km. The sphere is accurate to 0.5 %,
// plenty for a privacy grid.
const metresPerDegree = 6371008.8 * math.Pi / 180

// decimalsFor returns enough decimals to print a cell centre to 1/100 of
// the cell size, so a printed centre falls back into its own cell.
func decimalsFor(step float64) int {
	d, p := 2, 1.0
	for ; step < p && d < 12; p /= 10 {
		d++
	}
	for ; step >= p*10 && d > 0; p *= 10 {
		d--
	}
	return d
}

// appendFixed formats v with at most dec decimals, without trailing zeros
// or a negative zero. Values that fit in float64's exact integer range
// after scaling take an integer fast path; the last digit may then differ
// from strconv's exact decimal rounding at a tie, which is still a valid
// rounding and just as deterministic.
func appendFixed(dst []byte, v float64, dec int) []byte {
	if dec >= 0 && dec < len(pow10) {
		if x := v * pow10[dec]; math.Abs(x) < 1<<52 {
			k := int64(math.Round(x))
			if k == 0 {
				return append(dst, '0')
			}
			if k < 0 {
				dst = append(dst, '-')
				k = -k
			}
			for dec > 0 && k%10 == 0 {
				k /= 10
				dec--
			}
			n := len(dst)
			dst = strconv.AppendInt(dst, k, 10)
			if dec == 0 {
				return dst
			}
			if digits := len(dst) - n; digits <= dec { // 0.00ddd
				pad := dec - digits + 2
				dst = append(dst, make([]byte, pad)...)[:len(dst)+pad]
				copy(dst[n+pad:], dst[n:n+digits])
				dst[n], dst[n+1] = '0', '.'
				for i := n + 2; i < n+pad; i++ {
					dst[i] = '0'
				}
				return dst
			}
			dst = append(dst, 0)
			p := len(dst) - 1 - dec
			copy(dst[p+1:], dst[p:len(dst)-1])
			dst[p] = '.'
			return dst
		}
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, v, 'f', dec, 64)
	if dec > 0 {
		for dst[len(dst)-1] == '0' {
			dst = dst[:len(dst)-1]
		}
		if dst[len(dst)-1] == '.' {
			dst = dst[:len(dst)-1]
		}
	}
	if string(dst[n:]) == "-0" {
		dst = append(dst[:n], '0')
	}
	return dst
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// appendRound rounds v to dec decimals (dec < 0: to tens, hundreds, ...).
// Rounding to tens is meaningless above 1e15, where float64 has no units
// digit left: such values are refused (nulled).
func appendRound(dst []byte, v float64, dec int) ([]byte, bool) {
	if dec < 0 {
		if math.Abs(v) >= 1e15 {
			return dst, false
		}
		p := math.Pow10(-dec)
		v = math.Round(v/p) * p
		dec = 0
	}
	return appendFixed(dst, v, dec), true
}

// appendBucket replaces v by the largest boundary <= v. Values below the
// first boundary have no bucket and are refused (nulled).
func appendBucket(dst []byte, v float64, a *action) ([]byte, bool) {
	i := 0
	for i < len(a.bounds) && a.bounds[i] <= v {
		i++
	}
	if i == 0 {
		return dst, false
	}
	return append(dst, a.boundText[i-1]...), true
}

// latCentre returns the centre of the latitude band holding lat. Bands
// tile [-90, 90] exactly (180/latStep of them); +90 belongs to the top one.
func (a *action) latCentre(lat float64) (float64, bool) {
	if !(lat >= -90 && lat <= 90) {
		return 0, false
	}
	k := math.Floor((lat + 90) / a.latStep)
	if k >= a.nLat {
		k = a.nLat - 1
	}
	return -90 + (k+0.5)*a.latStep, true
}

func (a *action) appendLat(dst []byte, lat float64) ([]byte, bool) {
	if !a.metres {
		if !(lat >= -90 && lat <= 90) {
			return dst, false
		}
		return appendFixed(dst, lat, a.decimals), true
	}
	c, ok := a.latCentre(lat)
	if !ok {
		return dst, false
	}
	return appendFixed(dst, c, a.latDec), true
}

// appendLon snaps lon to the centre of its cell in the band centred on
// latC. A band's cells are as wide (in metres, at the band centre) as they
// are high, and tile [-180, 180) exactly; +180 is the same meridian as -180.
func (a *action) appendLon(dst []byte, lon, latC float64) ([]byte, bool) {
	if !(lon >= -180 && lon <= 180) {
		return dst, false
	}
	if !a.metres {
		return appendFixed(dst, lon, a.decimals), true
	}
	n := max(math.Ceil(360*math.Cos(latC*math.Pi/180)/a.latStep), 1)
	step := 360 / n
	j := math.Floor((lon + 180) / step)
	if j >= n {
		j = 0
	}
	return appendFixed(dst, -180+(j+0.5)*step, decimalsFor(step)), true
}
