package redact

import (
	"flag"
	"os"
	"testing"
)

// The golden file pins the exact bytes produced for the seed message (in
// its normalised, compact form) by the brief's rule set (goldenOptions). To regenerate after an intended
// change: go test ./redact -run TestGolden -update, then review the diff of
// testdata/komdi-alarm.redacted.json by eye before committing.
var update = flag.Bool("update", false, "rewrite testdata/komdi-alarm.redacted.json")

const goldenPath = "testdata/komdi-alarm.redacted.json"

func TestGolden(t *testing.T) {
	r, err := New(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	out, rep, err := r.Apply(nil, []byte(komdi))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(goldenPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Fatalf("golden mismatch\n got %s\nwant %s", out, want)
	}
	// Six values: name removed, mobile, ID, plate, latitude, longitude.
	if rep.Changed != 6 || rep.Count("coarsen:DATA.LAT,DATA.LON") != 2 || rep.Count("remove:DATA.USER_NAME") != 1 {
		t.Fatalf("report: Changed %d, %v", rep.Changed, rep)
	}
}
