package schema

import "math"

// earthRadius is the mean Earth radius (IUGG), in metres. The haversine
// formula on a sphere errs by at most about 0.5% against the ellipsoid,
// far below what a speed limit needs.
const earthRadius = 6_371_008.8

// distance returns the great-circle distance in metres between two points
// given in decimal degrees.
func distance(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Sqrt(min(1, a)))
}
