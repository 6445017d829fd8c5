package profile

import (
	"math"
	"strconv"
	"strings"
)

// unit is a spelling of a unit (as normUnit folds it) and its scale. The
// tables are searched in order (a map literal cost tboxd its
// initialisation code; they are read once per profile).
type unit struct {
	name  string
	scale float64
}

// Scales to meters.
var distanceUnits = [...]unit{
	{"m", 1}, {"meter", 1}, {"meters", 1}, {"metre", 1}, {"metres", 1},
	{"km", 1000}, {"kms", 1000}, {"kilometer", 1000}, {"kilometers", 1000}, {"kilometre", 1000}, {"kilometres", 1000},
	{"mi", 1609.344}, {"mile", 1609.344}, {"miles", 1609.344},
	{"hm", 100}, {"hectometer", 100}, {"hectometre", 100},
	{"dm", 0.1}, {"cm", 0.01},
}

// Scales to km/h.
var speedUnits = [...]unit{
	{"km/h", 1}, {"kmh", 1}, {"kph", 1}, {"kmph", 1}, {"km/hr", 1},
	{"kilometerperhour", 1}, {"kilometersperhour", 1}, {"kilometreperhour", 1}, {"kilometresperhour", 1},
	{"m/s", 3.6}, {"mps", 3.6}, {"meterpersecond", 3.6}, {"meterspersecond", 3.6}, {"metrepersecond", 3.6},
	{"metrespersecond", 3.6}, {"meterpersecon", 3.6}, // Vector's truncated "Unit_MeterPerSecon"
	{"mph", 1.609344}, {"mi/h", 1.609344}, {"mileperhour", 1.609344}, {"milesperhour", 1.609344},
}

// normUnit folds the spellings of a unit: case, a leading "Unit_", spaces,
// underscores and hyphens.
func normUnit(u string) string {
	s := strings.ToLower(strings.TrimSpace(u))
	s = strings.TrimPrefix(s, "unit_")
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '_', '-', '\t':
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

// unitScale returns the factor that turns a value in unit u into the kind's
// normal unit (meters, km/h).
func unitScale(k Kind, u string) (float64, bool) {
	var table []unit
	switch k {
	case Odometer:
		table = distanceUnits[:]
	case Speed:
		table = speedUnits[:]
	default:
		return 1, true
	}
	n := normUnit(u)
	for _, t := range table {
		if t.name == n {
			return t.scale, true
		}
	}
	return 0, false
}

// clean rounds x to 15 significant digits, removing the binary noise of a
// product like 0.1*1000.
func clean(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	y, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 15, 64), 64)
	if err != nil {
		return x
	}
	return y
}
