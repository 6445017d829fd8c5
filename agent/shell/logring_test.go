package shell

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestLogRing(t *testing.T) {
	r := NewLogRing(3)
	if got := r.Lines(10); len(got) != 0 {
		t.Fatalf("empty ring: %q", got)
	}
	fmt.Fprintf(r, "one\ntwo\n")
	if got := strings.Join(r.Lines(0), "|"); got != "one|two" {
		t.Errorf("two lines: %q", got)
	}
	for _, l := range []string{"three\n", "four\n", "five\n"} {
		r.Write([]byte(l))
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "three|four|five"}, {10, "three|four|five"}, {2, "four|five"}, {1, "five"}} {
		if got := strings.Join(r.Lines(tc.n), "|"); got != tc.want {
			t.Errorf("Lines(%d) after wrapping = %q, want %q", tc.n, got, tc.want)
		}
	}
	r.Write([]byte(strings.Repeat("x", 2000) + "\n"))
	if got := r.Lines(1)[0]; len(got) != maxLogLine {
		t.Errorf("a 2000-byte line is kept as %d bytes, want %d", len(got), maxLogLine)
	}
}

func TestLogRingHandler(t *testing.T) {
	var stderr bytes.Buffer
	next := slog.NewTextHandler(&stderr, &slog.HandlerOptions{Level: slog.LevelWarn})
	r := NewLogRing(10)
	log := slog.New(r.Handler(next, slog.LevelInfo)).With("device", "0xabc").WithGroup("g")
	log.Debug("debug line")
	log.Info("info line", "k", 1)
	log.Warn("warn line")
	lines := r.Lines(0)
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="info line" device=0xabc g.k=1`) || !strings.Contains(lines[1], `msg="warn line"`) {
		t.Errorf("ring holds %q, want the info and warn lines with their attributes", lines)
	}
	if s := stderr.String(); strings.Contains(s, "info line") || !strings.Contains(s, `msg="warn line" device=0xabc`) {
		t.Errorf("the wrapped handler got %q, want only the warn line", s)
	}
}
