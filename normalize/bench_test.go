package normalize

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// seedByName looks a payload up in the shared seed list.
func seedByName(name string) []byte {
	for _, tc := range seeds {
		if tc.name == name {
			return []byte(tc.in)
		}
	}
	panic("no seed " + name)
}

// BenchmarkPayloads measures the realistic payloads in every mode against two baselines in the
// same run: gjson.ValidBytes (a fast validator that checks less) and an encoding/json
// Unmarshal+Marshal round trip (what a naive canonicaliser does).
func BenchmarkPayloads(b *testing.B) {
	for _, name := range []string{"komdi-alarm", "komdi-alarm minified", "telemetry-64k"} {
		in := seedByName(name)
		b.Run(name+"/baseline=gjson.ValidBytes", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if !gjson.ValidBytes(in) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/baseline=encoding-json-roundtrip", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var v any
				if err := json.Unmarshal(in, &v); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Keys are compared folded by default; compact-exactkeys is the opt-out, to show what
		// folding costs.
		for _, n := range []*Normalizer{nValidate, nCompact, nJCS, nRFC, nExact} {
			label := string(n.opts.Output)
			if n.opts.Profile == ProfileRFC8259 {
				label = "rfc8259-compact"
			}
			if n.opts.ExactKeys {
				label = "compact-exactkeys"
			}
			b.Run(name+"/mode="+label, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				dst := make([]byte, 0, 2*len(in))
				for b.Loop() {
					var err error
					if dst, err = n.Append(dst[:0], in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVsGjson runs each mode interleaved with gjson.ValidBytes on the same payload, block
// by block, and reports the ratio of the fastest blocks (x-gjson). On a shared machine this is
// far steadier than comparing two separate sub-benchmarks: both sides see the same load.
func BenchmarkVsGjson(b *testing.B) {
	for _, name := range []string{"komdi-alarm", "komdi-alarm minified", "telemetry-64k"} {
		in := seedByName(name)
		reps := max(1, 16<<10/len(in)) // blocks of about 16 KiB of input
		for _, n := range []*Normalizer{nValidate, nCompact, nJCS} {
			b.Run(name+"/mode="+string(n.opts.Output), func(b *testing.B) {
				dst := make([]byte, 0, 2*len(in))
				base, ours := time.Duration(1<<62), time.Duration(1<<62)
				for b.Loop() {
					t := time.Now()
					for range reps {
						gjson.ValidBytes(in)
					}
					base = min(base, time.Since(t))
					t = time.Now()
					for range reps {
						dst, _ = n.Append(dst[:0], in)
					}
					ours = min(ours, time.Since(t))
				}
				b.ReportMetric(float64(ours)/float64(base), "x-gjson")
				b.ReportMetric(float64(base.Nanoseconds())/float64(reps), "gjson-ns/msg")
				b.ReportMetric(float64(ours.Nanoseconds())/float64(reps), "ns/msg")
			})
		}
	}
}

// BenchmarkFoldedVsExact measures what comparing keys folded (the default) costs over
// ExactKeys: both run interleaved on the same payload, block by block, and the ratio of the
// fastest blocks is reported (x-exact), which a shared machine disturbs far less than two
// separate sub-benchmarks. The seed's keys are upper-case ASCII, the common case. "korean keys"
// are non-ASCII keys that are their own fold (checked, not copied); "non-ascii upper-case keys"
// is the worst case: every key is folded in full.
func BenchmarkFoldedVsExact(b *testing.B) {
	payloads := []struct {
		name string
		in   []byte
	}{
		{"komdi-alarm", seedByName("komdi-alarm")},
		{"komdi-alarm minified", seedByName("komdi-alarm minified")},
		{"telemetry-64k", seedByName("telemetry-64k")},
		{"many keys", []byte(members(1000, -1))},
		{"korean keys", []byte(strings.ReplaceAll(strings.ToLower(string(seedByName("komdi-alarm minified"))), `":`, `_값":`))},
		{"non-ascii upper-case keys", []byte(strings.ReplaceAll(string(seedByName("komdi-alarm minified")), `":`, `É":`))},
	}
	for _, p := range payloads {
		reps := max(1, 16<<10/len(p.in))
		for _, out := range []Output{OutputCompact, OutputValidate} {
			folded, exact := mustNew(Options{Output: out, MaxMembers: 2000}), mustNew(Options{Output: out, MaxMembers: 2000, ExactKeys: true})
			b.Run(p.name+"/mode="+string(out), func(b *testing.B) {
				b.ReportAllocs()
				dst := make([]byte, 0, 2*len(p.in))
				base, ours := time.Duration(1<<62), time.Duration(1<<62)
				for b.Loop() {
					t := time.Now()
					for range reps {
						dst, _ = exact.Append(dst[:0], p.in)
					}
					base = min(base, time.Since(t))
					t = time.Now()
					for range reps {
						var err error
						if dst, err = folded.Append(dst[:0], p.in); err != nil {
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
}

// BenchmarkDeepBrackets: 1 MiB of '[' must be rejected in time bounded by MaxDepth, not size.
func BenchmarkDeepBrackets(b *testing.B) {
	in := seedByName("1 MiB of [")
	b.Run("baseline=gjson.ValidBytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if gjson.ValidBytes(in) {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("baseline=encoding-json.Valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if json.Valid(in) {
				b.Fatal("accepted")
			}
		}
	})
	for _, n := range []*Normalizer{nValidate, nCompact} {
		b.Run("mode="+string(n.opts.Output), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Append(nil, in); ReasonOf(err) != ReasonDepth {
					b.Fatal(err)
				}
			}
		})
	}
}

// hostile builds accepted inputs of about size bytes in shapes that stress one part each.
func hostile(shape string, size int) []byte {
	var b strings.Builder
	switch shape {
	case "members": // one huge object: the duplicate-key hash set
		b.WriteByte('{')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"member-%d":%d`, i, i)
		}
		b.WriteByte('}')
	case "small-objects": // many objects of linearKeys members: the linear duplicate scan
		b.WriteByte('[')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"a":0,"b":1,"c":2,"d":3,"e":4,"f":5,"g":6,"h":7,"i":8,"j":9,"k":0,"l":1,"m":2,"n":3,"o":4,"p":5}`)
		}
		b.WriteByte(']')
	case "unfolded-keys": // keys that take the full Unicode fold (fullwidth, combining marks)
		b.WriteByte('[')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"ＬＡＴ%d":1,"Ｅ\u0301%d":2,"ﬁ%d":3}`, i, i, i)
		}
		b.WriteByte(']')
	case "escapes": // every character escaped
		b.WriteString(`["`)
		for b.Len() < size {
			b.WriteString(`\u0000\u00e9\ud83d\ude00\n\/`)
		}
		b.WriteString(`"]`)
	case "nesting": // depth-32 nests, side by side
		b.WriteByte('[')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(nest(31))
		}
		b.WriteByte(']')
	case "numbers": // long floats near the binary64 limit
		b.WriteByte('[')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`1.797693134862315708145274237317043567981e308`)
		}
		b.WriteByte(']')
	case "utf8": // multi-byte text
		b.WriteString(`["`)
		for b.Len() < size {
			b.WriteString("홍길수 😀 é ")
		}
		b.WriteString(`"]`)
	}
	return []byte(b.String())
}

// BenchmarkHostile reports ns/byte for hostile shapes from 1 KiB to 1 MiB: a flat ns/byte
// across sizes shows linear time.
func BenchmarkHostile(b *testing.B) {
	big := Options{MaxMembers: 1 << 20, MaxElements: 1 << 20, MaxStringBytes: 2 << 20, MaxBytes: 2 << 20}
	for _, shape := range []string{"members", "small-objects", "unfolded-keys", "escapes", "nesting", "numbers", "utf8"} {
		for _, size := range []int{1 << 10, 16 << 10, 256 << 10, 1 << 20} {
			in := hostile(shape, size)
			for _, out := range []Output{OutputValidate, OutputCompact, OutputJCS} {
				o := big
				o.Output = out
				n := mustNew(o)
				b.Run(fmt.Sprintf("shape=%s/size=%dKiB/mode=%s", shape, size>>10, out), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(in)))
					dst := make([]byte, 0, 2*len(in))
					for b.Loop() {
						var err error
						if dst, err = n.Append(dst[:0], in); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in)), "ns/byte")
				})
			}
			b.Run(fmt.Sprintf("shape=%s/size=%dKiB/baseline=gjson.ValidBytes", shape, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					if !gjson.ValidBytes(in) {
						b.Fatal("invalid")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in)), "ns/byte")
			})
		}
	}
}
