package can

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Key
		wantErr bool
	}{
		{"5A1", Key{ID: 0x5A1}, false},
		{"0x5A1", Key{ID: 0x5A1}, false},
		{"0X5a1", Key{ID: 0x5A1}, false},
		{"7FF", Key{ID: 0x7FF}, false},
		{"800", Key{ID: 0x800, Extended: true}, false},
		{"000005A1", Key{ID: 0x5A1, Extended: true}, false},
		{"18FEF100", Key{ID: 0x18FEF100, Extended: true}, false},
		{"0x1FFFFFFF", Key{ID: 0x1FFFFFFF, Extended: true}, false},
		{"20000000", Key{}, true},
		{"", Key{}, true},
		{"0x", Key{}, true},
		{"5G1", Key{}, true},
		{"123456789", Key{}, true},
		{"-1", Key{}, true},
		{"+5", Key{}, true},
		{"5_1", Key{}, true},
	} {
		got, err := ParseKey(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseKey(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestKeyStringRoundTrip(t *testing.T) {
	for _, k := range []Key{{ID: 0}, {ID: 0x5A1}, {ID: 0x7FF}, {ID: 0x5A1, Extended: true}, {ID: 0x1FFFFFFF, Extended: true}} {
		got, err := ParseKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
}

func TestFilterKeys(t *testing.T) {
	f := NewFilter(Key{ID: 0x300}, Key{ID: 0x10, Extended: true}, Key{ID: 0x100}, Key{ID: 0x300}, Key{ID: 0x5, Extended: true})
	want := []Key{{ID: 0x100}, {ID: 0x300}, {ID: 0x5, Extended: true}, {ID: 0x10, Extended: true}}
	if got := f.Keys(); !slices.Equal(got, want) {
		t.Errorf("Keys() = %v, want %v", got, want)
	}
	f.Keys()[0] = Key{ID: 0x7FF}
	if got := f.Keys(); !slices.Equal(got, want) {
		t.Error("changing the slice Keys returned changed the filter")
	}
	if n := len(f.Rules()); n != len(want) {
		t.Errorf("%d rules, want one per key (%d)", n, len(want))
	}
}

func TestFilterMatch(t *testing.T) {
	f := NewFilter(Key{ID: 0x123}, Key{ID: 0x7FF}, Key{ID: 0x18FEF100, Extended: true})
	for _, tc := range []struct {
		fr   Frame
		want bool
	}{
		{Frame{ID: 0x123}, true},
		{Frame{ID: 0x7FF, Len: 8}, true},
		{Frame{ID: 0x122}, false},
		{Frame{ID: 0x124}, false},
		{Frame{ID: 0x800}, false},
		{Frame{ID: 0x123, Flags: Extended}, false},
		{Frame{ID: 0x18FEF100, Flags: Extended}, true},
		{Frame{ID: 0x18FEF100 & 0x7FF}, false},
		{Frame{ID: 0x123, Flags: FD | BRS, Len: 64}, true},
		{Frame{ID: 0x123, Flags: Remote}, false},
		{Frame{ID: 0x18FEF100, Flags: Extended | Remote}, false},
		{Frame{ID: 0x123, Flags: ErrorFrame}, false},
	} {
		if got := f.Match(&tc.fr); got != tc.want {
			t.Errorf("Match(%v %+v) = %v, want %v", tc.fr.String(), tc.fr.Flags, got, tc.want)
		}
	}
}

func TestFilterEmptyAndNil(t *testing.T) {
	fr := Frame{ID: 0x123}
	var nilFilter *Filter
	for name, f := range map[string]*Filter{"empty": NewFilter(), "zero": {}, "nil": nilFilter} {
		if f.Match(&fr) {
			t.Errorf("%s filter passed a frame", name)
		}
		if r := f.Rules(); r == nil || len(r) != 0 {
			t.Errorf("%s filter: Rules() = %#v, want an empty non-nil slice", name, r)
		}
		if k := f.Keys(); len(k) != 0 {
			t.Errorf("%s filter: Keys() = %v, want none", name, k)
		}
	}
}

// kernelPasses applies rules as the kernel's CAN_RAW_FILTER does (raw.c,
// af_can.c): error frames are only delivered through the error mask, never
// through can_filter rules; any other frame passes if one rule matches
// can_id & mask == rule.can_id & mask.
func kernelPasses(rules []Rule, fr *Frame) bool {
	id := KernelID(fr)
	if id&KernelERRFlag != 0 {
		return false
	}
	for _, r := range rules {
		if id&r.Mask == r.ID&r.Mask {
			return true
		}
	}
	return false
}

// TestFilterMatchesKernelRules: for random allowlists and random frames,
// Filter.Match agrees with the kernel's formula applied to Filter.Rules.
func TestFilterMatchesKernelRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	randKey := func() Key {
		if rng.IntN(2) == 0 {
			return Key{ID: rng.Uint32N(MaxID + 1)}
		}
		// Extended ids near standard ones too, to catch a confused mask.
		if rng.IntN(2) == 0 {
			return Key{ID: rng.Uint32N(MaxID + 1), Extended: true}
		}
		return Key{ID: rng.Uint32N(MaxExtendedID + 1), Extended: true}
	}
	passed, checked := 0, 0
	for round := 0; round < 200; round++ {
		keys := make([]Key, rng.IntN(8))
		for i := range keys {
			keys[i] = randKey()
		}
		f := NewFilter(keys...)
		rules := f.Rules()
		for i := 0; i < 500; i++ {
			var fr Frame
			k := randKey()
			if len(keys) > 0 && rng.IntN(3) == 0 {
				k = keys[rng.IntN(len(keys))] // often an allowed id
			}
			fr.ID = k.ID
			if k.Extended {
				fr.Flags |= Extended
			}
			switch rng.IntN(6) {
			case 0:
				fr.Flags |= Remote
			case 1:
				fr.Flags = ErrorFrame // error class in the id
			case 2:
				fr.Flags |= FD | BRS
			}
			got, want := f.Match(&fr), kernelPasses(rules, &fr)
			if got != want {
				t.Fatalf("keys %v, frame %s (flags %#x): Match = %v, kernel rules %v pass = %v",
					keys, fr.String(), fr.Flags, got, fmt.Sprintf("%#x", rules), want)
			}
			if got && fr.Flags&(Remote|ErrorFrame) != 0 {
				t.Fatalf("a remote or error frame passed: %s", fr.String())
			}
			checked++
			if got {
				passed++
			}
		}
	}
	if passed < checked/10 {
		t.Errorf("only %d of %d random frames passed: the test does not exercise matching", passed, checked)
	}
}

func TestKernelID(t *testing.T) {
	for _, tc := range []struct {
		fr   Frame
		want uint32
	}{
		{Frame{ID: 0x123}, 0x123},
		{Frame{ID: 0x123, Flags: Extended}, 0x80000123},
		{Frame{ID: 0x123, Flags: Remote}, 0x40000123},
		{Frame{ID: 0x18FEF100, Flags: Extended | Remote}, 0xD8FEF100},
		{Frame{ID: 0x4, Flags: ErrorFrame}, 0x20000004},
	} {
		if got := KernelID(&tc.fr); got != tc.want {
			t.Errorf("KernelID(%+v) = %#x, want %#x", tc.fr, got, tc.want)
		}
	}
}

func TestSortKeys(t *testing.T) {
	keys := []Key{{0x7ff, false}, {0x100, true}, {0x1, false}, {0x1fffffff, true}, {0x100, false}, {0x0, true}}
	SortKeys(keys)
	want := []Key{{0x1, false}, {0x100, false}, {0x7ff, false}, {0x0, true}, {0x100, true}, {0x1fffffff, true}}
	if !slices.Equal(keys, want) {
		t.Errorf("SortKeys = %v, want %v", keys, want)
	}
}
