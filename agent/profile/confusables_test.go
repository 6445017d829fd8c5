package profile

import "testing"

// confusables is the table of confusable as a map, for the reference fold
// (nfkdFold) and the tests.
var confusables = func() map[rune]rune {
	m := make(map[rune]rune, len(confusableFrom))
	for i, r := range confusableFrom {
		m[r] = rune(confusableTo[i])
	}
	return m
}()

// TestConfusableTable: the table is sorted (confusable's binary search
// relies on it), one ASCII letter per entry, and every entry is found.
func TestConfusableTable(t *testing.T) {
	if len(confusableTo) != len(confusableFrom) {
		t.Fatalf("confusableTo has %d letters for %d code points", len(confusableTo), len(confusableFrom))
	}
	for i, r := range confusableFrom {
		if i > 0 && confusableFrom[i-1] >= r {
			t.Errorf("confusableFrom[%d] = %U after %U: want ascending code points", i, r, confusableFrom[i-1])
		}
		if c := confusableTo[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			t.Errorf("confusableTo[%d] = %q: want an ASCII letter", i, c)
		}
		if a, ok := confusable(r); !ok || a != rune(confusableTo[i]) {
			t.Errorf("confusable(%U) = %q, %v: want %q", r, a, ok, confusableTo[i])
		}
	}
	for _, r := range []rune{'a', 'Z', 0xD7, 0x1D00 + 1, 0x10FFFF} {
		if a, ok := confusable(r); ok {
			t.Errorf("confusable(%U) = %q: want none", r, a)
		}
	}
}

// TestStatementKeywordsSorted: isStatementKeyword's binary search relies on
// the order, and finds every keyword and nothing else.
func TestStatementKeywordsSorted(t *testing.T) {
	for i, k := range statementKeywords {
		if i > 0 && statementKeywords[i-1] >= k {
			t.Errorf("statementKeywords[%d] = %q after %q: want ascending", i, k, statementKeywords[i-1])
		}
		if !isStatementKeyword([]byte(k)) {
			t.Errorf("isStatementKeyword(%q) = false", k)
		}
		if isStatementKeyword([]byte(k + "X")) {
			t.Errorf("isStatementKeyword(%q) = true", k+"X")
		}
	}
	for _, w := range []string{"", "A", "BO", "ZZZ", "bo_"} {
		if isStatementKeyword([]byte(w)) {
			t.Errorf("isStatementKeyword(%q) = true", w)
		}
	}
}
