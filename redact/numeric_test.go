package redact

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestRound(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		dec  int
		want string
	}{
		{21.456, 1, "21.5"},
		{21.456, 0, "21"},
		{19.04, 1, "19"},
		{-0.04, 1, "0"},
		{0.1 + 0.2, 2, "0.3"},
		{12345, -2, "12300"},
		{-12355, -1, "-12360"},
		{1e20, 2, "100000000000000000000"},
		{70.9000015258789, 3, "70.9"},
	} {
		got, ok := appendRound(nil, tc.v, tc.dec)
		if !ok || string(got) != tc.want {
			t.Errorf("round(%v, %d) = %q, %v; want %q", tc.v, tc.dec, got, ok, tc.want)
		}
		v, _ := strconv.ParseFloat(string(got), 64)
		if again, _ := appendRound(nil, v, tc.dec); string(again) != string(got) {
			t.Errorf("round is not idempotent on %s: %s", got, again)
		}
	}
	if _, ok := appendRound(nil, 1e300, -2); ok {
		t.Error("rounding 1e300 to hundreds should be refused")
	}
}

func TestBucket(t *testing.T) {
	a := action{bounds: []float64{0, 18, 30, 50}, boundText: [][]byte{[]byte("0"), []byte("18"), []byte("30"), []byte("50")}}
	for _, tc := range []struct {
		v    float64
		want string
	}{{-0.1, ""}, {0, "0"}, {17.99, "0"}, {18, "18"}, {42, "30"}, {50, "50"}, {1e9, "50"}} {
		got, ok := appendBucket(nil, tc.v, &a)
		if string(got) != tc.want || ok != (tc.want != "") {
			t.Errorf("bucket(%v) = %q, %v; want %q", tc.v, got, ok, tc.want)
		}
	}
}

// TestCoarsenGrid checks the 1 km grid on points all over the globe: the
// output is the centre of a cell containing the input, about 1 km wide
// and high, re-coarsening it changes nothing, and points of one cell share
// one output.
func TestCoarsenGrid(t *testing.T) {
	r, err := New(Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}}}})
	if err != nil {
		t.Fatal(err)
	}
	a := &r.rules[0].action
	rng := rand.New(rand.NewPCG(1, 2))
	snap := func(lat, lon float64) (float64, float64, float64) {
		lc, ok := a.latCentre(lat)
		if !ok {
			t.Fatalf("latCentre(%v) refused", lat)
		}
		lt, _ := a.appendLat(nil, lat)
		ln, ok := a.appendLon(nil, lon, lc)
		if !ok {
			t.Fatalf("appendLon(%v) refused", lon)
		}
		x, _ := strconv.ParseFloat(string(lt), 64)
		y, _ := strconv.ParseFloat(string(ln), 64)
		return x, y, lc
	}
	for range 20000 {
		lat, lon := rng.Float64()*179.8-89.9, rng.Float64()*360-180
		clat, clon, band := snap(lat, lon)
		// Half a cell, plus the rounding of the printed centre (1% of a cell).
		if dy := math.Abs(clat-lat) * metresPerDegree; dy > 510 {
			t.Fatalf("(%v,%v): latitude moved %v m, more than half a cell", lat, lon, dy)
		}
		width := 360 / math.Ceil(360*math.Cos(band*math.Pi/180)/a.latStep)
		if w := width * metresPerDegree * math.Cos(band*math.Pi/180); math.Abs(band) < 89 && (w > 1000 || w < 500) {
			t.Fatalf("(%v,%v): cell %v m wide", lat, lon, w)
		}
		if dx := math.Abs(clon - lon); dx > width*0.51 && dx < 360-width {
			t.Fatalf("(%v,%v): longitude moved %v deg, cell is %v deg", lat, lon, dx, width)
		}
		if x, y, _ := snap(clat, clon); x != clat || y != clon {
			t.Fatalf("(%v,%v) -> (%v,%v) -> (%v,%v): not idempotent", lat, lon, clat, clon, x, y)
		}
		// A point a tenth of a cell from the centre lands in the same cell.
		if x, y, _ := snap(clat+a.latStep/10, clon-width/10); x != clat || y != clon {
			t.Fatalf("neighbour of (%v,%v) went to (%v,%v)", clat, clon, x, y)
		}
	}
	// The poles and the antimeridian stay inside the grid.
	for _, p := range [][2]float64{{90, 180}, {-90, -180}, {0, 180}, {89.9999, 0}} {
		x, y, _ := snap(p[0], p[1])
		if math.Abs(x) > 90 || math.Abs(y) > 180 {
			t.Errorf("(%v,%v) -> (%v,%v)", p[0], p[1], x, y)
		}
		if x2, y2, _ := snap(x, y); x2 != x || y2 != y {
			t.Errorf("(%v,%v) -> (%v,%v) -> (%v,%v)", p[0], p[1], x, y, x2, y2)
		}
	}
}

// The integer fast path of appendFixed must agree with strconv up to the
// last digit, and its output must parse back within half a unit of it.
func TestAppendFixedFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		dec := rng.IntN(9)
		v := (rng.Float64()*2 - 1) * math.Pow10(rng.IntN(8))
		got := string(appendFixed(nil, v, dec))
		ref, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', dec, 64), 64)
		g, err := strconv.ParseFloat(got, 64)
		ulp := math.Nextafter(math.Abs(v), math.Inf(1)) - math.Abs(v)
		if err != nil || math.Abs(g-ref) > 1.0001*math.Pow10(-dec)+4*ulp || math.Abs(g-v) > 0.5001*math.Pow10(-dec)+4*ulp {
			t.Fatalf("appendFixed(%v, %d) = %q, strconv says %v", v, dec, got, ref)
		}
		if got != "0" && (got[len(got)-1] == '0' && contains(got, '.') || got[len(got)-1] == '.' || got == "-0") {
			t.Fatalf("appendFixed(%v, %d) = %q: not trimmed", v, dec, got)
		}
		if again := string(appendFixed(nil, g, dec)); again != got {
			t.Fatalf("appendFixed(%v, %d) = %q, then %q", v, dec, got, again)
		}
	}
	for _, tc := range []struct {
		v    float64
		dec  int
		want string
	}{{0.05, 2, "0.05"}, {-0.004, 2, "0"}, {-0.0451, 3, "-0.045"}, {37.405575539568346, 5, "37.40558"}, {126.96792452830186, 4, "126.9679"}, {100, 2, "100"}, {1e20, 2, "100000000000000000000"}, {0.00012, 5, "0.00012"}} {
		if got := string(appendFixed(nil, tc.v, tc.dec)); got != tc.want {
			t.Errorf("appendFixed(%v, %d) = %q, want %q", tc.v, tc.dec, got, tc.want)
		}
	}
}

func contains(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}
