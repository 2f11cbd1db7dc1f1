package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Benchmarks run the seed message through the brief's rule set, against
// two baselines doing the same edits in the same run: encoding/json
// (Unmarshal into a map, edit, Marshal) and gjson+sjson (one Set or Delete
// per field). Run: go test ./redact -run '^$' -bench . -benchmem -count 5

func seedNamed(name string) []byte {
	for _, s := range seeds {
		if s.name == name {
			return []byte(s.in)
		}
	}
	panic("no seed " + name)
}

func benchApply(b *testing.B, o Options, src []byte) {
	r, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 2*len(src))
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	cpu := startCPU()
	for b.Loop() {
		if dst, _, err = r.Apply(dst[:0], src); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func BenchmarkApply(b *testing.B) {
	// The engine runs after normalize, which makes the payload compact:
	// "seed" is that form, "seed-raw" the message as received.
	src, raw := seedNamed("komdi-alarm"), seedNamed("komdi-alarm-raw")
	withDetectors := goldenOptions()
	withDetectors.Detectors = allDetectors()
	b.Run("seed/rules", func(b *testing.B) { benchApply(b, goldenOptions(), src) })
	b.Run("seed-raw/rules", func(b *testing.B) { benchApply(b, goldenOptions(), raw) })
	b.Run("seed/rules+detectors", func(b *testing.B) { benchApply(b, withDetectors, src) })
	b.Run("seed/detectors", func(b *testing.B) { benchApply(b, Options{Detectors: allDetectors(), PseudonymKey: testKey}, src) })
	exact := goldenOptions()
	exact.ExactPaths = true
	b.Run("seed/rules-exact-paths", func(b *testing.B) { benchApply(b, exact, src) })
	b.Run("seed/validate-only", func(b *testing.B) { benchApply(b, Options{}, src) })
	b.Run("seed/baseline-encoding-json", func(b *testing.B) { benchBaseline(b, src, editStdlib) })
	b.Run("seed/baseline-gjson-sjson", func(b *testing.B) { benchBaseline(b, src, editSjson) })

	// Attacker-sized: 1 MiB of strings that all pass the digit prefilters.
	big := attackerDoc(1 << 20)
	b.Run("1MiB/rules+detectors", func(b *testing.B) { benchApply(b, withDetectors, big) })
	b.Run("1MiB/baseline-encoding-json", func(b *testing.B) { benchBaseline(b, big, editStdlib) })
}

// BenchmarkApplySeeds runs every valid seed under the table rule set.
func BenchmarkApplySeeds(b *testing.B) {
	r, err := New(tableOptions())
	if err != nil {
		b.Fatal(err)
	}
	var dst []byte
	in := make([][]byte, len(seeds))
	for i, s := range seeds {
		in[i] = []byte(s.in)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, src := range in {
			dst, _, _ = r.Apply(dst[:0], src)
		}
	}
}

func attackerDoc(size int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"DATA":{"LAT":37.4057689,"LON":126.9720319},"r":[`)
	for i := 0; sb.Len() < size; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":"` + strconv.Itoa(1000000000+i) + `-2017-11-28 13:45:20.` + strconv.Itoa(i) + `","v":` + strconv.Itoa(i) + `}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

func benchBaseline(b *testing.B, src []byte, edit func([]byte) ([]byte, error)) {
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	cpu := startCPU()
	for b.Loop() {
		if _, err := edit(src); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

var baselineMAC = func() func(string) string {
	return func(v string) string {
		m := hmac.New(sha256.New, []byte(testKey))
		m.Write([]byte(v))
		return strings.ToLower(base32.StdEncoding.EncodeToString(m.Sum(nil)))[:16]
	}
}()

func baselineMask(v string, keepFirst, keepLast int) string {
	r := []rune(v)
	for i := keepFirst; i < len(r)-keepLast; i++ {
		r[i] = '*'
	}
	return string(r)
}

// baselineCell is the same 1 km grid, to keep the work comparable.
func baselineCell(lat, lon float64) (float64, float64) {
	step := 180 / math.Ceil(180/(1000/metresPerDegree))
	c := -90 + (math.Floor((lat+90)/step)+0.5)*step
	n := math.Ceil(360 * math.Cos(c*math.Pi/180) / step)
	ls := 360 / n
	return c, -180 + (math.Floor((lon+180)/ls)+0.5)*ls
}

func editStdlib(src []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if d, ok := doc["DATA"].(map[string]any); ok {
		delete(d, "USER_NAME")
		if v, ok := d["USER_MOBILE"].(string); ok {
			d["USER_MOBILE"] = baselineMask(v, 0, 4)
		}
		if v, ok := d["USER_ID"].(string); ok {
			d["USER_ID"] = baselineMAC(v)
		}
		if v, ok := d["NUMBER_PLATE"].(string); ok {
			d["NUMBER_PLATE"] = baselineMask(v, 3, 0)
		}
		lat, ok1 := d["LAT"].(float64)
		lon, ok2 := d["LON"].(float64)
		if ok1 && ok2 {
			d["LAT"], d["LON"] = baselineCell(lat, lon)
		}
	}
	return json.Marshal(doc)
}

func editSjson(src []byte) ([]byte, error) {
	if !gjson.ValidBytes(src) {
		return nil, json.Unmarshal(src, new(any))
	}
	out, err := sjson.DeleteBytes(src, "DATA.USER_NAME")
	if err != nil {
		return nil, err
	}
	if v := gjson.GetBytes(out, "DATA.USER_MOBILE"); v.Type == gjson.String {
		out, _ = sjson.SetBytes(out, "DATA.USER_MOBILE", baselineMask(v.Str, 0, 4))
	}
	if v := gjson.GetBytes(out, "DATA.USER_ID"); v.Type == gjson.String {
		out, _ = sjson.SetBytes(out, "DATA.USER_ID", baselineMAC(v.Str))
	}
	if v := gjson.GetBytes(out, "DATA.NUMBER_PLATE"); v.Type == gjson.String {
		out, _ = sjson.SetBytes(out, "DATA.NUMBER_PLATE", baselineMask(v.Str, 3, 0))
	}
	lat, lon := gjson.GetBytes(out, "DATA.LAT"), gjson.GetBytes(out, "DATA.LON")
	if lat.Type == gjson.Number && lon.Type == gjson.Number {
		a, o := baselineCell(lat.Num, lon.Num)
		out, _ = sjson.SetBytes(out, "DATA.LAT", a)
		out, _ = sjson.SetBytes(out, "DATA.LON", o)
	}
	return out, nil
}

// BenchmarkFoldedVsExactPaths measures what matching paths folded and
// through arrays (the default) costs over ExactPaths: both redactors run
// interleaved on the same document, block by block, and the ratio of the
// fastest blocks is reported (x-exact), which a shared machine disturbs far
// less than two separate sub-benchmarks.
func BenchmarkFoldedVsExactPaths(b *testing.B) {
	upper, lower := seedNamed("komdi-alarm"), []byte(strings.ToLower(string(seedNamed("komdi-alarm"))))
	batch := []byte("[" + strings.Repeat(string(upper)+",", 15) + string(upper) + "]")
	for _, tc := range []struct {
		name string
		o    Options
		in   []byte
	}{
		{"seed/rules", goldenOptions(), upper},
		{"seed-lower-case-keys/rules", goldenOptions(), lower},
		{"seed-batch-of-16/rules", goldenOptions(), batch},
		{"seed/rules+detectors", func() Options { o := goldenOptions(); o.Detectors = allDetectors(); return o }(), upper},
	} {
		folded, err := New(tc.o)
		if err != nil {
			b.Fatal(err)
		}
		tc.o.ExactPaths = true
		exact, err := New(tc.o)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			reps := max(1, 16<<10/len(tc.in))
			dst := make([]byte, 0, 2*len(tc.in))
			base, ours := time.Duration(1<<62), time.Duration(1<<62)
			for b.Loop() {
				t := time.Now()
				for range reps {
					dst, _, _ = exact.Apply(dst[:0], tc.in)
				}
				base = min(base, time.Since(t))
				t = time.Now()
				for range reps {
					if dst, _, err = folded.Apply(dst[:0], tc.in); err != nil {
						b.Fatal(err)
					}
				}
				ours = min(ours, time.Since(t))
			}
			b.ReportMetric(float64(ours)/float64(base), "x-exact")
			b.ReportMetric(float64(base.Nanoseconds())/float64(reps), "exact-ns/msg")
			b.ReportMetric(float64(ours.Nanoseconds())/float64(reps), "folded-ns/msg")
		})
	}
}

// BenchmarkDetectorCases runs every built-in detector over the shared
// corpus of positives and negatives (detectorCases, also the table tests'
// and FuzzDetect's seeds), each case as a one-string document:
//
//	go test -run '^$' -bench DetectorCases -benchmem ./redact/
func BenchmarkDetectorCases(b *testing.B) {
	var dets []Detector
	for _, k := range []Kind{KindPhone, KindEmail, KindIPv4, KindIPv6, KindMAC, KindIMEI, KindCard} {
		dets = append(dets, Detector{Kind: k})
	}
	r, err := New(Options{Detectors: dets})
	if err != nil {
		b.Fatal(err)
	}
	docs := make([][]byte, len(detectorCases))
	for i, tc := range detectorCases {
		docs[i] = []byte(marshalNoHTML(tc.text))
	}
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range docs {
			if out, _, err = r.Apply(out[:0], d); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(docs)), "ns/value")
}
