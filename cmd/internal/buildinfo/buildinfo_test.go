package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	got := Line("tboxd", "v1.2.3", "1767225600")
	for _, want := range []string{"tboxd v1.2.3 ", "built 2026-01-01T00:00:00Z", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH, "commit "} {
		if !strings.Contains(got, want) {
			t.Errorf("Line = %q, want it to contain %q", got, want)
		}
	}
	if got := Line("vsim", "dev", "0"); !strings.Contains(got, "built unknown") {
		t.Errorf("unstamped build: %q, want built unknown", got)
	}
	if strings.Contains(got, "\n") {
		t.Errorf("not one line: %q", got)
	}
}

// TestSettingAsReadBuildInfo holds setting to runtime/debug's parser on the
// text the toolchain records, sentinels included.
func TestSettingAsReadBuildInfo(t *testing.T) {
	const sentinel = "0w\xaf\f\x92t\b\x02A\xe1\xc1\a\xe6\xd6\x18\xe6"
	text := "path\tgithub.com/csop/tbox/cmd/tboxd\nmod\tgithub.com/csop/tbox\t(devel)\t\n" +
		"dep\tgo.etcd.io/bbolt\tv1.4.0\th1:x=\n" +
		"build\t-trimpath=true\nbuild\tvcs=git\nbuild\tvcs.revision=0123456789abcdef0123456789abcdef01234567\n" +
		"build\tvcs.time=2026-12-01T00:00:00Z\nbuild\tvcs.modified=true\n"
	bi, err := debug.ParseBuildInfo(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if got := setting(sentinel+text+sentinel, s.Key); got != s.Value {
			t.Errorf("setting(%q) = %q, want %q", s.Key, got, s.Value)
		}
	}
	if got := setting(sentinel+text+sentinel, "vcs.missing"); got != "" {
		t.Errorf("setting of a missing key = %q, want empty", got)
	}
	if got := setting("", "vcs.revision"); got != "" {
		t.Errorf("setting of no build information = %q, want empty", got)
	}
}
