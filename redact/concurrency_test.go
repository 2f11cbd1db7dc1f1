package redact

import (
	"sync"
	"testing"
)

// One Redactor, many goroutines: each result must equal the sequential one
// (run with -race).
func TestConcurrentApply(t *testing.T) {
	r, err := New(tableOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(seeds))
	for i, sd := range seeds {
		out, _, _ := r.Apply(nil, []byte(sd.in))
		want[i] = string(out)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var buf []byte
			for k := range 50 {
				i := (g + k) % len(seeds)
				buf, _, _ = r.Apply(buf[:0], []byte(seeds[i].in))
				if string(buf) != want[i] {
					t.Errorf("goroutine %d, seed %s: got %s, want %s", g, seeds[i].name, buf, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
