// Package buildinfo formats what a binary knows of its own build for --version.
package buildinfo

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"
	_ "unsafe" // go:linkname
)

// modinfo is the build information the Go toolchain records in the
// binary, the text debug.ReadBuildInfo parses (the runtime hands it to
// runtime/debug under this name). Line reads its two vcs settings from it
// directly: ReadBuildInfo's full parser would link 6 KiB more into each
// binary for them.
//
//go:linkname modinfo runtime/debug.modinfo
func modinfo() string

// setting returns the value of the build setting key in the recorded build
// information: the text of its "build\tkey=value" line.
func setting(info, key string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, "build\t"+key+"="); ok {
			return v
		}
	}
	return ""
}

// Line returns one line for --version: the program, the version stamped by
// the Makefile (-X main.version), the commit and its time as the Go
// toolchain recorded them (or "unknown" for a build outside a checkout), the
// build time stamped by the Makefile (-X main.buildTime, unix seconds; the
// commit time, so that builds are reproducible), the Go version and the
// target.
func Line(prog, version, buildTime string) string {
	commit, dirty := "unknown", ""
	info := modinfo()
	if c := setting(info, "vcs.revision"); c != "" {
		commit = c
		if len(commit) > 12 {
			commit = commit[:12]
		}
	}
	if setting(info, "vcs.modified") == "true" {
		dirty = "-dirty"
	}
	built := "unknown"
	if n, err := strconv.ParseInt(buildTime, 10, 64); err == nil && n > 0 {
		built = time.Unix(n, 0).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s (commit %s%s, built %s, %s %s/%s)",
		prog, version, commit, dirty, built, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
