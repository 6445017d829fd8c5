package profile

import (
	"regexp"
	"testing"
)

// The expressions the scanners of lex.go stand in for.
var (
	tomlLineRE    = regexp.MustCompile(`line (\d+)`)
	busNameRE     = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)
	tableHeaderRE = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]`)
)

// checkScanners fails t where a scanner and its expression disagree on s.
func checkScanners(t *testing.T, s string) {
	t.Helper()
	got, ok := tomlLine(s)
	if m := tomlLineRE.FindStringSubmatch(s); ok != (m != nil) || ok && got != m[1] {
		t.Errorf("tomlLine(%q) = %q, %v; the expression finds %q", s, got, ok, m)
	}
	if got, want := isBusName(s), busNameRE.MatchString(s); got != want {
		t.Errorf("isBusName(%q) = %v, want %v", s, got, want)
	}
	name, ok := tableHeader(s)
	if m := tableHeaderRE.FindStringSubmatch(s); ok != (m != nil) || ok && name != m[1] {
		t.Errorf("tableHeader(%q) = %q, %v; the expression finds %q", s, name, ok, m)
	}
}

var scannerSeeds = []string{
	"", "line 12", "toml: line 3 (last key \"x\"): expected", "line x, line 7", "line line 42x", "line", "line ", "inline 5", "LINE 5",
	"line 99999999999999999999", "can0", "vcan0", "can_1.a:b-c", "can0 ", " can0", "can0\n", "abcdefghijklmno", "abcdefghijklmnop",
	"can\u00e90", "[odometer]", "  [ odometer ]  # x", "[odometer", "[]", "[ ]", "[[odometer]]", "[odo meter]", "\t[\fodometer\r]x",
	"\v[odometer]", "[odometer.x-y_z]", "[odométer]", "x = [1]", "[\"odometer\"]",
}

func TestScannersMatchRegexps(t *testing.T) {
	for _, s := range scannerSeeds {
		checkScanners(t, s)
	}
}

func FuzzScanners(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add(s)
	}
	f.Fuzz(checkScanners)
}
