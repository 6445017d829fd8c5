// Package buildinfo formats what a binary knows of its own build for --version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// Line returns one line for --version: the program, the version stamped by
// the Makefile (-X main.version), the commit and its time as the Go
// toolchain recorded them (or "unknown" for a build outside a checkout), the
// build time stamped by the Makefile (-X main.buildTime, unix seconds; the
// commit time, so that builds are reproducible), the Go version and the
// target.
func Line(prog, version, buildTime string) string {
	commit, dirty := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	built := "unknown"
	if n, err := strconv.ParseInt(buildTime, 10, 64); err == nil && n > 0 {
		built = time.Unix(n, 0).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s (commit %s%s, built %s, %s %s/%s)",
		prog, version, commit, dirty, built, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
