package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes this binary in one line: the module version (v1.2.3
// from go install ...@v1.2.3, "(devel)" from a checkout), the VCS revision
// and commit time stamped by go build in a checkout (with "+dirty" when
// the tree had uncommitted changes), and the Go toolchain, so a bug report
// or the admin API's status names exactly what runs.
func version() string {
	info, ok := debug.ReadBuildInfo()
	return versionOf(info, ok)
}

func versionOf(info *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	b.WriteString("hardened-broker")
	if !ok {
		b.WriteString(" (no build information)")
	} else {
		fmt.Fprintf(&b, " %s %s", info.Main.Path, info.Main.Version)
		var rev, at, dirty string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if rev != "" {
			fmt.Fprintf(&b, " revision %s%s", rev, dirty)
		}
		if at != "" {
			fmt.Fprintf(&b, " (%s)", at)
		}
	}
	fmt.Fprintf(&b, " %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func printVersion(stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, version())
	return err
}
