package shell

import (
	"strings"
	"testing"
	"unicode"
)

func TestOneLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fork: seq 3", "fork: seq 3"},
		{"bad\nservice unlocked", `bad\nservice unlocked`},
		{"a\r\x1b[2Kb", `a\r\x1b[2Kb`},
		{"back\\slash", `back\\slash`},
		{"\u2028x\u202e", `\u2028x\u202e`},
		{"\xff", `\xff`},
		{"运动 ÉCO", "运动 ÉCO"},
		{"\u0085", `\u0085`},
	} {
		if got := oneLine(c.in); got != c.want {
			t.Errorf("oneLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzOneLine(f *testing.F) {
	f.Add("x\ny")
	f.Add("\x1b]0;title\x07")
	f.Fuzz(func(t *testing.T, s string) {
		out := oneLine(s)
		for _, r := range out {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("oneLine(%q) = %q keeps %U", s, out, r)
			}
		}
		if s != "" && out == "" || strings.Count(out, "\n") != 0 {
			t.Fatalf("oneLine(%q) = %q", s, out)
		}
	})
}
