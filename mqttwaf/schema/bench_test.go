package schema

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema/internal/jsonschema"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// attacker is an attacker-sized payload: the seed message with 64 KiB of
// extra members, valid for both rule sets.
var attacker = func() string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; b.Len() < 64<<10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"k":"` + strconv.Itoa(i) + `","v":[1,2.5,true,null,"x\u00e9"]}`)
	}
	b.WriteByte(']')
	s, err := sjson.SetRaw(komdi, "DATA.EXTRA", b.String())
	if err != nil {
		panic(err)
	}
	return s
}()

// BenchmarkValidate compares the JSON Schema (decoding included) with the
// equivalent field rules on the seed message, and splits the schema's cost
// into decoding and validating. Baselines: the library's own decoder
// (jsonschema.UnmarshalJSON, encoding/json), the unpatched upstream
// library, and gjson's validity check.
func BenchmarkValidate(b *testing.B) {
	schemaV, fieldsV := komdiValidators(b)
	both, err := New(Options{Schema: komdiSchema, Fields: komdiFields()})
	if err != nil {
		b.Fatal(err)
	}
	// Field paths match keys folded and through arrays by default; the
	// opt-out, measured beside it, reads them as gjson does.
	exact, err := New(Options{Fields: komdiFields(), ExactPaths: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name string
		doc  []byte
	}{{"komdi", []byte(seeds[0].payload)}, {"attacker-64KiB", []byte(attacker)}} {
		for _, c := range []struct {
			name string
			v    *Validator
		}{{"schema", schemaV}, {"fields", fieldsV}, {"fields-exact-paths", exact}, {"fields+schema", both}} {
			b.Run(in.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.doc)))
				for b.Loop() {
					if err := c.v.Validate(in.doc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(in.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.doc)))
			d := &decoder{}
			for b.Loop() {
				d.reset(in.doc, defaultMaxDepth, true)
				if _, err := d.document(); err != nil {
					b.Fatal(err)
				}
				d.release() // as Validate does
			}
		})
		b.Run(in.name+"/baseline-jsonschema.UnmarshalJSON", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.doc)))
			for b.Loop() {
				if _, err := jsonschema.UnmarshalJSON(bytes.NewReader(in.doc)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/schema-without-decode", func(b *testing.B) {
			d := &decoder{}
			d.reset(in.doc, defaultMaxDepth, true)
			doc, _ := d.document()
			b.ReportAllocs()
			for b.Loop() {
				if err := schemaV.sch.Validate(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/schema-without-decode/baseline-upstream", func(b *testing.B) {
			// The same schema compiled by the upstream library, which
			// internal/jsonschema patches (see its MQTTWAF.md).
			up := compileUpstream(b, map[string]string{"komdi.json": mustRead(b, komdiSchema),
				"coordinates.schema.json": mustRead(b, "testdata/coordinates.schema.json")}, "komdi.json")
			d := &decoder{}
			d.reset(in.doc, defaultMaxDepth, true)
			doc, _ := d.document()
			b.ReportAllocs()
			for b.Loop() {
				if err := up.Validate(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.doc)))
			d := &decoder{}
			for b.Loop() {
				d.reset(in.doc, defaultMaxDepth, false)
				if _, err := d.document(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/baseline-gjson.ValidBytes", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.doc)))
			for b.Loop() {
				if !gjson.ValidBytes(in.doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
	// Four rules on the seed, as BenchmarkFleetScenario's policy has them:
	// most members are named by no rule. Baseline: gjson.ForEach over the
	// same two objects, which decodes every member (the walk did so before).
	fleet, err := New(Options{Fields: []FieldRule{
		{Path: "DATA.LAT", Required: true, Type: "number", Min: f64(-90), Max: f64(90)},
		{Path: "DATA.LON", Required: true, Type: "number", Min: f64(-180), Max: f64(180)},
		{Path: "DATA.REPORT_TIME", Required: true, Type: "string", Pattern: `^[0-9]{14}$`},
		{Path: "TYPE", Required: true, Enum: []any{"MALARM_INFO", "MALARM_CLEAR"}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	seed := seeds[0].payload
	// The same rules through Validate (the decoder's scan, then the walk)
	// and ValidateChecked (the walk alone, for a payload normalize
	// checked as strictly), on the normalised seed.
	compact := []byte(seed)
	for _, c := range []struct {
		name     string
		validate func([]byte) error
	}{{"Validate", fleet.Validate}, {"ValidateChecked", fleet.ValidateChecked}} {
		b.Run("komdi/fleet-fields/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.validate(compact); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("komdi/fleet-fields/baseline-gjson.ForEach", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			gjson.Parse(seed).ForEach(func(_, v gjson.Result) bool {
				v.ForEach(func(gjson.Result, gjson.Result) bool { n++; return true })
				return true
			})
		}
		if n == 0 {
			b.Fatal("no members")
		}
	})
	b.Run("komdi-invalid/fields", func(b *testing.B) {
		in := []byte(seeds[4].payload) // lat-too-big
		b.ReportAllocs()
		for b.Loop() {
			if fieldsV.Validate(in) == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("komdi-invalid/schema", func(b *testing.B) {
		in := []byte(seeds[4].payload)
		b.ReportAllocs()
		for b.Loop() {
			if schemaV.Validate(in) == nil {
				b.Fatal("accepted")
			}
		}
	})
}

// BenchmarkPlausibility measures Check for a known device on the seed
// message (timestamp, speed and replay checks all on), against a baseline
// that reads the same values and hashes the payload without any history.
func BenchmarkPlausibility(b *testing.B) {
	const n = 1024
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(msg(i, depotLat+float64(i)*metreLat, depotLon, i))
	}
	// Paths match keys folded and through arrays by default; exact-paths
	// reads them with gjson.Get.
	for _, exact := range []bool{false, true} {
		name := "known-device"
		if exact {
			name += "-exact-paths"
		}
		b.Run(name, func(b *testing.B) {
			o := fleetOptions()
			o.ExactPaths = exact
			benchKnownDevice(b, o, msgs)
		})
	}
	b.Run("baseline-read-values", func(b *testing.B) {
		p, _ := NewPlausibility(fleetOptions())
		b.ReportAllocs()
		i := 0
		var sink float64
		for b.Loop() {
			doc := unsafe.String(unsafe.SliceData(msgs[i%n]), len(msgs[i%n])) // as Check does
			ts, _ := p.tsFmt.read(gjson.Get(doc, p.tsPath.text))
			lat, lon := gjson.Get(doc, p.latPath.text).Num, gjson.Get(doc, p.lonPath.text).Num
			sink += float64(ts) + lat + lon + float64(maphash.Bytes(p.seed, msgs[i%n]))
			i++
		}
		_ = sink
	})
}

func benchKnownDevice(b *testing.B, o PlausibilityOptions, msgs [][]byte) {
	p, err := NewPlausibility(o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(msgs) {
			// Start the device over: timestamps would go back.
			p.Forget("TTNU1372314")
			i = 0
		}
		if err := p.Check(t0.Add(time.Duration(i)*time.Second), "TTNU1372314", msgs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFoldedVsExactPaths measures what matching paths folded and
// through arrays (the default) costs over ExactPaths: the two run
// interleaved on the same input, block by block, and the ratio of the
// fastest blocks is reported (x-exact), which a shared machine disturbs far
// less than two separate sub-benchmarks.
func BenchmarkFoldedVsExactPaths(b *testing.B) {
	doc := []byte(seeds[0].payload)
	folded, err := New(Options{Fields: komdiFields()})
	if err != nil {
		b.Fatal(err)
	}
	exact, err := New(Options{Fields: komdiFields(), ExactPaths: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("komdi/fields", func(b *testing.B) {
		interleave(b, 32, func() { _ = exact.Validate(doc) }, func() {
			if err := folded.Validate(doc); err != nil {
				b.Fatal(err)
			}
		})
	})
	const n = 4096
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(msg(i, depotLat+float64(i)*metreLat, depotLon, i))
	}
	check := func(o PlausibilityOptions) func() {
		p, err := NewPlausibility(o)
		if err != nil {
			b.Fatal(err)
		}
		i := 0
		return func() {
			if i == n {
				p.Forget("TTNU1372314")
				i = 0
			}
			if err := p.Check(t0.Add(time.Duration(i)*time.Second), "TTNU1372314", msgs[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	o := fleetOptions()
	o.ExactPaths = true
	b.Run("plausibility/known-device", func(b *testing.B) { interleave(b, 32, check(o), check(fleetOptions())) })
}

// interleave runs base and ours reps times each, alternately, and reports
// the ratio of their fastest blocks.
func interleave(b *testing.B, reps int, base, ours func()) {
	b.ReportAllocs()
	tb, to := time.Duration(1<<62), time.Duration(1<<62)
	for b.Loop() {
		t := time.Now()
		for range reps {
			base()
		}
		tb = min(tb, time.Since(t))
		t = time.Now()
		for range reps {
			ours()
		}
		to = min(to, time.Since(t))
	}
	b.ReportMetric(float64(to)/float64(tb), "x-exact")
	b.ReportMetric(float64(tb.Nanoseconds())/float64(reps), "exact-ns/op")
	b.ReportMetric(float64(to.Nanoseconds())/float64(reps), "folded-ns/op")
}
