package mileage

import (
	"slices"
	"strings"
	"testing"
)

func TestSortModes(t *testing.T) {
	for _, names := range [][]string{
		nil,
		{"eco"},
		{"sport", "eco", "normal", "Eco", "", "eco2", "a"},
		{"z", "y", "x", "w", "v", "u", "t", "s", "r", "q", "p"},
	} {
		var modes []ModeMeters
		for i, n := range names {
			modes = append(modes, ModeMeters{Mode: n, Meters: uint64(i)})
		}
		want := slices.Clone(modes)
		slices.SortFunc(want, func(a, b ModeMeters) int { return strings.Compare(a.Mode, b.Mode) })
		SortModes(modes)
		if !slices.Equal(modes, want) {
			t.Errorf("SortModes(%q) = %v, want %v", names, modes, want)
		}
	}
}
