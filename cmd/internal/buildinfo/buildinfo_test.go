package buildinfo

import (
	"runtime"
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
