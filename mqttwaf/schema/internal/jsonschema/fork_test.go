// mqttwaf's test that this package is upstream's plus the marked changes.

package jsonschema

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ours are the files mqttwaf added; every other file must be upstream's.
var ours = map[string]bool{"fastnum.go": true, "fastnum_test.go": true, "fork_test.go": true, "MQTTWAF.md": true}

// TestForkIsUpstreamPlusMarkedChanges compares every file with the upstream
// module go.mod requires: byte for byte, once the header notice and the
// "mqttwaf: begin" ... "mqttwaf: end" blocks are taken out. So updating the
// upstream version in go.mod without carrying this package along fails here.
func TestForkIsUpstreamPlusMarkedChanges(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/santhosh-tekuri/jsonschema/v6").Output()
	if err != nil {
		t.Fatalf("locating the upstream module: %v", err)
	}
	upstream := strings.TrimSpace(string(out))
	n, marked := 0, 0
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || ours[path] {
			return err
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(upstream, path))
		if err != nil {
			t.Errorf("%s is not in upstream (%v); add it to ours if it is mqttwaf's", path, err)
			return nil
		}
		if stripped := unmark(got); !bytes.Equal(stripped, want) {
			t.Errorf("%s differs from upstream outside the marked blocks", path)
		} else if len(stripped) != len(got) {
			marked++
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 || marked != 4 {
		t.Fatalf("compared %d files, %d with marked changes; want at least 15 and exactly the 4 of MQTTWAF.md", n, marked)
	}
}

// unmark removes the header notice and the marked blocks.
func unmark(src []byte) []byte {
	const header = "// Modified by mqttwaf: the lines between \"mqttwaf: begin\" and \"mqttwaf: end\"\n// are mqttwaf's (see MQTTWAF.md).\n\n"
	src = bytes.TrimPrefix(src, []byte(header))
	var out []byte
	skip := false
	for _, line := range bytes.SplitAfter(src, []byte("\n")) {
		switch strings.TrimSpace(string(line)) {
		case "// mqttwaf: begin":
			skip = true
		case "// mqttwaf: end":
			skip = false
		default:
			if !skip {
				out = append(out, line...)
			}
		}
	}
	return out
}
