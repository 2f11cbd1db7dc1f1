package schema

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/sjson"
)

// t0 is the seed message's REPORT_TIME, read as Korean time.
var t0 = time.Date(2017, 11, 28, 13, 45, 20, 0, time.FixedZone("KST", 9*3600))

// Positions: the seed's depot, Seoul City Hall and Busan City Hall.
const (
	depotLat, depotLon = 37.4057689, 126.9720319
	seoulLat, seoulLon = 37.5665, 126.9780
	busanLat, busanLon = 35.1796, 129.0756
	metreLat           = 1 / 111195.0 // one metre north, in degrees of latitude
)

func fleetOptions() PlausibilityOptions {
	return PlausibilityOptions{
		TimestampPath: "DATA.REPORT_TIME", TimestampFormat: "20060102150405", TimestampZone: "+09:00",
		LatPath: "DATA.LAT", LonPath: "DATA.LON", MaxSpeedKmh: 150,
		ReplayWindow: 10 * time.Minute,
	}
}

// msg is the seed message reported sec seconds after t0 at lat, lon.
// count varies the payload without changing what the checks read.
func msg(sec int, lat, lon float64, count int) string {
	s := komdi
	for _, kv := range []struct {
		path string
		v    any
	}{
		{"DATA.REPORT_TIME", t0.Add(time.Duration(sec) * time.Second).Format("20060102150405")},
		{"DATA.LAT", lat}, {"DATA.LON", lon}, {"DATA.REPORT_COUNT", count},
	} {
		var err error
		if s, err = sjson.Set(s, kv.path, kv.v); err != nil {
			panic(err)
		}
	}
	return s
}

type step struct {
	now     int // seconds after t0 (arrival)
	device  string
	payload string
	want    string // keyword; "" = accepted
}

func runSteps(t *testing.T, p *Plausibility, steps []step) {
	t.Helper()
	for i, s := range steps {
		err := p.Check(t0.Add(time.Duration(s.now)*time.Second), s.device, []byte(s.payload))
		got := ""
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("step %d: %T %v, want a *ValidationError", i, err, err)
			}
			got = ve.Keyword
		}
		if got != s.want {
			t.Errorf("step %d (%s at +%ds): got %q (%v), want %q", i, s.device, s.now, got, err, s.want)
		}
	}
}

func TestPlausibility(t *testing.T) {
	noTimestamp := fleetOptions()
	noTimestamp.TimestampPath, noTimestamp.TimestampFormat, noTimestamp.TimestampZone = "", "", ""
	tolerant := fleetOptions()
	tolerant.BackwardsTolerance = 30 * time.Second
	for _, c := range []struct {
		name  string
		opts  PlausibilityOptions
		steps []step
	}{
		{"normal drift accepted", fleetOptions(), []step{
			{0, "a", msg(0, depotLat, depotLon, 1), ""},
			{10, "a", msg(10, depotLat+55*metreLat, depotLon, 2), ""}, // 20 km/h
			{20, "a", msg(20, depotLat+110*metreLat, depotLon, 3), ""},
			{3600, "a", msg(3600, seoulLat, seoulLon, 4), ""}, // 18 km in an hour
		}},
		{"Seoul to Busan in one second", fleetOptions(), []step{
			{0, "a", msg(0, seoulLat, seoulLon, 1), ""},
			{1, "a", msg(1, busanLat, busanLon, 2), KeywordSpeed},
			// The jump was not recorded: Seoul is still the reference.
			{2, "a", msg(2, seoulLat+10*metreLat, seoulLon, 3), ""},
			// 4 hours by road is plausible.
			{4 * 3600, "a", msg(4*3600, busanLat, busanLon, 4), ""},
		}},
		{"identical timestamps", fleetOptions(), []step{
			{0, "a", msg(0, depotLat, depotLon, 1), ""},
			{0, "a", msg(0, depotLat+10*metreLat, depotLon, 2), ""}, // within jitter
			{0, "a", msg(0, depotLat+1000*metreLat, depotLon, 3), KeywordSpeed},
		}},
		{"timestamp backwards", fleetOptions(), []step{
			{0, "a", msg(100, depotLat, depotLon, 1), ""},
			{100, "a", msg(99, depotLat, depotLon, 2), KeywordTimestampBackwards},
			{100, "a", msg(100, depotLat, depotLon, 3), ""}, // equal is fine
			{100, "b", msg(99, depotLat, depotLon, 1), ""},  // another device
		}},
		{"backwards within tolerance, no walking back", tolerant, []step{
			{0, "a", msg(100, depotLat, depotLon, 1), ""},
			{100, "a", msg(75, depotLat, depotLon, 2), ""},
			{100, "a", msg(50, depotLat, depotLon, 3), KeywordTimestampBackwards},
			{100, "a", msg(69, depotLat, depotLon, 4), KeywordTimestampBackwards},
			{100, "a", msg(70, depotLat, depotLon, 5), ""},
		}},
		{"timestamp too far ahead", fleetOptions(), []step{
			{0, "a", msg(301, depotLat, depotLon, 1), KeywordTimestampFuture}, // first message too
			{0, "a", msg(299, depotLat, depotLon, 2), ""},
			{0, "a", msg(3600, depotLat, depotLon, 3), KeywordTimestampFuture},
			// Had the future message been recorded, this one would be "backwards".
			{300, "a", msg(300, depotLat, depotLon, 4), ""},
		}},
		{"rejected messages do not poison the history", fleetOptions(), []step{
			{0, "a", msg(0, depotLat, depotLon, 1), ""},
			{5, "a", msg(200, busanLat, busanLon, 2), KeywordSpeed},
			{10, "a", msg(10, depotLat+50*metreLat, depotLon, 3), ""},
			{11, "a", msg(11, depotLat+50*metreLat, depotLon, 3), ""},
			{12, "a", msg(11, depotLat+50*metreLat, depotLon, 3), KeywordReplay},
			{13, "a", msg(13, depotLat+60*metreLat, depotLon, 4), ""},
		}},
		{"replay", fleetOptions(), []step{
			{0, "a", msg(0, depotLat, depotLon, 1), ""},
			{5, "a", msg(0, depotLat, depotLon, 1), KeywordReplay},
			{5, "b", msg(0, depotLat, depotLon, 1), ""}, // same bytes, other device
			{6, "a", msg(0, depotLat, depotLon, 2), ""}, // changed payload
			{599, "a", msg(0, depotLat, depotLon, 1), KeywordReplay},
			{600, "a", msg(0, depotLat, depotLon, 1), ""}, // window over
		}},
		{"unreadable fields", fleetOptions(), []step{
			{0, "a", del("DATA.REPORT_TIME"), KeywordTimestamp},
			{0, "a", set("DATA.REPORT_TIME", "2017-11-28"), KeywordTimestamp},
			{0, "a", set("DATA.REPORT_TIME", 20171128134520), ""},
			{0, "a", del("DATA.LAT"), KeywordPosition},
			{0, "a", set("DATA.LAT", "37.4"), KeywordPosition},
			{0, "a", set("DATA.LON", 180.5), KeywordPosition},
			{0, "a", `not json`, KeywordTimestamp},
		}},
		{"arrival time without a timestamp path", noTimestamp, []step{
			{0, "a", msg(0, seoulLat, seoulLon, 1), ""},
			{60, "a", msg(0, busanLat, busanLon, 2), KeywordSpeed},
			{4 * 3600, "a", msg(0, busanLat, busanLon, 3), ""},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPlausibility(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, p, c.steps)
		})
	}
}

func TestPlausibilityEvictionBound(t *testing.T) {
	o := fleetOptions()
	o.MaxDevices, o.Shards = 4, 1
	p, err := NewPlausibility(o)
	if err != nil {
		t.Fatal(err)
	}
	m := msg(0, depotLat, depotLon, 1)
	var steps []step
	for i := range 5 {
		steps = append(steps, step{0, "dev" + strconv.Itoa(i), m, ""})
	}
	runSteps(t, p, steps)
	if p.Len() != 4 || p.Cap() != 4 {
		t.Fatalf("Len %d, Cap %d; want 4 and 4", p.Len(), p.Cap())
	}
	runSteps(t, p, []step{
		{1, "dev4", m, KeywordReplay}, // still known
		{1, "dev0", m, ""},            // evicted: its replay passes as a first message
		{1, "dev0", m, KeywordReplay},
	})
	if p.Len() != 4 {
		t.Errorf("Len %d after re-entry, want 4", p.Len())
	}
	for i := range 1000 {
		_ = p.Check(t0, "flood"+strconv.Itoa(i), []byte(m))
	}
	if p.Len() != 4 {
		t.Errorf("Len %d after a flood of device keys, want 4", p.Len())
	}
}

func TestPlausibilityForget(t *testing.T) {
	p, err := NewPlausibility(fleetOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := msg(0, depotLat, depotLon, 1)
	runSteps(t, p, []step{{0, "a", m, ""}, {1, "a", m, KeywordReplay}})
	if !p.Forget("a") || p.Forget("a") {
		t.Error("Forget: want true, then false")
	}
	runSteps(t, p, []step{{2, "a", m, ""}})
}

// TestPlausibilityConcurrentReplay: one device's identical messages racing
// on many goroutines; exactly one may pass.
func TestPlausibilityConcurrentReplay(t *testing.T) {
	p, err := NewPlausibility(fleetOptions())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		m := []byte(msg(round, depotLat, depotLon, round))
		var passed atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if p.Check(t0.Add(time.Duration(round)*time.Second), "a", m) == nil {
					passed.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := passed.Load(); n != 1 {
			t.Fatalf("round %d: %d identical messages passed, want 1", round, n)
		}
	}
}

func TestPlausibilityOptionErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*PlausibilityOptions)
		field string
	}{
		{"nothing enabled", func(o *PlausibilityOptions) { *o = PlausibilityOptions{} }, "PlausibilityOptions"},
		{"bad timestamp path", func(o *PlausibilityOptions) { o.TimestampPath = "DATA.#.T" }, "PlausibilityOptions.TimestampPath"},
		{"format without path", func(o *PlausibilityOptions) { o.TimestampPath = "" }, "PlausibilityOptions.TimestampPath"},
		{"bad layout", func(o *PlausibilityOptions) { o.TimestampFormat = "HHmmss" }, "PlausibilityOptions.TimestampFormat"},
		{"negative future", func(o *PlausibilityOptions) { o.MaxFuture = -time.Second }, "PlausibilityOptions.MaxFuture"},
		{"negative tolerance", func(o *PlausibilityOptions) { o.BackwardsTolerance = -1 }, "PlausibilityOptions.BackwardsTolerance"},
		{"negative speed", func(o *PlausibilityOptions) { o.MaxSpeedKmh = -1 }, "PlausibilityOptions.MaxSpeedKmh"},
		{"speed without lon", func(o *PlausibilityOptions) { o.LonPath = "" }, "PlausibilityOptions.MaxSpeedKmh"},
		{"lat path without speed", func(o *PlausibilityOptions) { o.MaxSpeedKmh = 0 }, "PlausibilityOptions.MaxSpeedKmh"},
		{"bad lat path", func(o *PlausibilityOptions) { o.LatPath = "DATA.L*" }, "PlausibilityOptions.LatPath"},
		{"negative jitter", func(o *PlausibilityOptions) { o.JitterMeters = -1 }, "PlausibilityOptions.JitterMeters"},
		{"negative window", func(o *PlausibilityOptions) { o.ReplayWindow = -1 }, "PlausibilityOptions.ReplayWindow"},
		{"history too long", func(o *PlausibilityOptions) { o.ReplayHistory = 65 }, "PlausibilityOptions.ReplayHistory"},
		{"history without window", func(o *PlausibilityOptions) { o.ReplayWindow, o.ReplayHistory = 0, 4 }, "PlausibilityOptions.ReplayWindow"},
		{"too many devices", func(o *PlausibilityOptions) { o.MaxDevices = 1 << 25 }, "PlausibilityOptions.MaxDevices"},
		{"shards not a power of two", func(o *PlausibilityOptions) { o.Shards = 3 }, "PlausibilityOptions.Shards"},
	} {
		o := fleetOptions()
		c.edit(&o)
		_, err := NewPlausibility(o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%s: got %v, want an *OptionError on %s", c.name, err, c.field)
		}
	}
}

// TestPlausibilityFoldedPaths: by default the paths find keys the way
// case-insensitive back ends read them, and through arrays of objects; a
// value found twice is refused as ambiguous. ExactPaths reads as gjson.
func TestPlausibilityFoldedPaths(t *testing.T) {
	ts := t0.Format("20060102150405")
	far := strconv.FormatFloat(busanLat, 'f', -1, 64)
	lower := `{"data":{"report_time":"` + ts + `","lat":37.4057689,"Lon":126.9720319}}`
	array := `{"DATA":[{"REPORT_TIME":"` + ts + `","LAT":37.4057689,"LON":126.9720319}]}`
	twoTimes := `{"DATA":{"REPORT_TIME":"` + ts + `","report_time":"20991231000000","LAT":37.4057689,"LON":126.9720319}}`
	twoObjects := `{"DATA":[{"REPORT_TIME":"` + ts + `","LAT":37.4057689,"LON":126.9720319},{"LAT":` + far + `}]}`
	for _, c := range []struct {
		name            string
		payload         string
		want, wantExact string
	}{
		{"lower-case keys", lower, "", KeywordTimestamp},
		{"array of one object", array, "", KeywordTimestamp},
		{"a timestamp twice", twoTimes, KeywordTimestamp, ""},
		{"a latitude twice", twoObjects, KeywordPosition, KeywordTimestamp},
		{"the seed", msg(0, depotLat, depotLon, 1), "", ""},
	} {
		for _, exact := range []bool{false, true} {
			o := fleetOptions()
			o.ExactPaths = exact
			p, err := NewPlausibility(o)
			if err != nil {
				t.Fatal(err)
			}
			want := c.want
			if exact {
				want = c.wantExact
			}
			t.Run(c.name+"/exact="+strconv.FormatBool(exact), func(t *testing.T) {
				runSteps(t, p, []step{{0, "a", c.payload, want}})
			})
		}
	}
	// A hostile nest of arrays is refused, not walked without bound.
	o := fleetOptions()
	p, _ := NewPlausibility(o)
	deep := `{"DATA":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`
	runSteps(t, p, []step{{0, "a", deep, KeywordTimestamp}})
}
