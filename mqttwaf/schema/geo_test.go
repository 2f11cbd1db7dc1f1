package schema

import (
	"math"
	"testing"
)

func TestDistance(t *testing.T) {
	oneDegree := 2 * math.Pi * 6371.0088 / 360 // km along a meridian
	for _, c := range []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		wantKm, tolKm          float64
	}{
		{"same point", 37.4057689, 126.9720319, 37.4057689, 126.9720319, 0, 1e-9},
		{"one degree of latitude", 10, 20, 11, 20, oneDegree, 1e-6},
		{"one degree of longitude on the equator", 0, 20, 0, 21, oneDegree, 1e-6},
		// Seoul City Hall to Busan City Hall: 325 km as the crow flies.
		{"Seoul to Busan", 37.5665, 126.9780, 35.1796, 129.0756, 325, 3},
		{"antipodes", 0, 0, 0, 180, 180 * oneDegree, 1e-6},
		{"across the date line", 0, 179.5, 0, -179.5, oneDegree, 1e-6},
	} {
		if got := distance(c.lat1, c.lon1, c.lat2, c.lon2) / 1000; math.Abs(got-c.wantKm) > c.tolKm {
			t.Errorf("%s: %.6f km, want %.6f ± %g", c.name, got, c.wantKm, c.tolKm)
		}
	}
}
