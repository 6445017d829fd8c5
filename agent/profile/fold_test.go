package profile

import (
	"bytes"
	"fmt"
	"go/format"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// nfkdFold is foldASCII as it was written on golang.org/x/text/unicode/norm
// (before foldTable): the reference that foldASCII must agree with. One
// difference, on purpose: norm.NFKD leaves the character after an invalid
// byte as it is ("\xf3ç" stays "\ufffdç"), so an invalid byte carried an
// accented look-alike past the gate ("\xf3Façe"); foldASCII reads an invalid
// byte as U+FFFD, as range does, and folds the rest. The reference does the
// same (TestFoldInvalidUTF8).
func nfkdFold(text string) string {
	if !utf8.ValidString(text) {
		text = string([]rune(text))
	}
	var b strings.Builder
	for _, r := range norm.NFKD.String(text) {
		switch {
		case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Me, r):
			continue
		case r < 0x80:
			b.WriteRune(r)
		default:
			if a, ok := confusables[r]; ok {
				b.WriteRune(a)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// gateKey is what the privacy gate can see of a folded text: its ASCII
// characters (and those whose lower case is ASCII), and of every other
// character only what splitWords asks of it (letter, digit, upper or lower
// case). The deny-list, the context words and the "spo2" test are ASCII, so
// a word holding another character never equals one of them, and a prefix
// test sees only the ASCII before it: two texts with one gateKey split into
// words at the same places, and get the same decisions.
func gateKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 || unicode.ToLower(r) < 0x80 {
			b.WriteRune(r)
			continue
		}
		c := byte('o')
		switch {
		case unicode.IsLower(r):
			c = 'l'
		case unicode.IsUpper(r):
			c = 'u'
		case unicode.IsLetter(r):
			c = 'L'
		case unicode.IsDigit(r):
			c = 'd'
		}
		b.WriteByte(0xff)
		b.WriteByte(c)
	}
	return b.String()
}

// plainFold is foldASCII for r without the table: what r becomes when
// foldTable leaves it out.
func plainFold(r rune) string {
	var b strings.Builder
	foldPlain(&b, r)
	return b.String()
}

// TestFoldMatchesNFKD: for every code point, alone and between letters,
// foldASCII gives what the fold through norm.NFKD gives, or a text the gate
// cannot tell from it (gateKey). Code points in foldTable and Hangul
// syllables give exactly the same text.
func TestFoldMatchesNFKD(t *testing.T) {
	bad := 0
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		// A fold works character by character (NFKD reorders only combining
		// marks, which are dropped), so a code point that folds alone to
		// what NFKD gives does so between letters too.
		c := string(r)
		if foldASCII(c) == nfkdFold(c) {
			continue
		}
		for _, f := range []string{"%s", "Eye%sx", "eye%sX", "EYE%sFACE", "%s1", "1%s"} {
			s := fmt.Sprintf(f, c)
			got, want := foldASCII(s), nfkdFold(s)
			if _, inTable := foldDecompose(r); (inTable || r >= hangulFirst && r <= hangulLast) && got != want {
				t.Errorf("foldASCII(%q) = %q, NFKD gives %q", s, got, want)
				bad++
			}
			if gateKey(got) != gateKey(want) {
				t.Errorf("foldASCII(%q) = %q, NFKD gives %q: the gate tells them apart", s, got, want)
				bad++
			}
			if bad > 20 {
				t.Fatal("too many differences")
			}
		}
	}
}

// TestFoldDecisions: on random texts of letters, digits, separators and
// decomposable, invisible and look-alike characters, the gate decides as it
// does with the fold through norm.NFKD.
func TestFoldDecisions(t *testing.T) {
	pool := []rune("aAeEfFcCyYsSzZhHrR019_ .-" + "\u200b\u00ad\ufeff\u0301\u0308" +
		"асеЕНΗΕѕéÉçäｆＦ𝐅𝐚ﬁﬂⒻⓔ①㎏ÅÆǅ가각가ㄱ十⼗ﷺ\ufffd")
	words := []string{"face", "eye", "Eye", "HR", "driver", "pulse", "wheel", "sleep", "ECG", "to", "spo2", "SpO"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			if rng.IntN(4) == 0 {
				b.WriteString(words[rng.IntN(len(words))])
			} else {
				b.WriteRune(pool[rng.IntN(len(pool))])
			}
		}
		s := b.String()
		got, want := foldASCII(s), nfkdFold(s)
		if gateKey(got) != gateKey(want) {
			t.Fatalf("foldASCII(%q) = %q, NFKD gives %q", s, got, want)
		}
		gw, gok := biometricMatchIn(s, s)
		ww, wok := nfkdMatch(s)
		if gw != ww || gok != wok {
			t.Fatalf("biometricMatchIn(%q) = %q, %v; through NFKD %q, %v", s, gw, gok, ww, wok)
		}
	}
}

// nfkdMatch is biometricMatchIn(text, text) on texts folded through
// norm.NFKD: they are ASCII only where foldASCII leaves them alone, so the
// reference decision is taken on nfkdFold's output with the fold a no-op
// for them, and on the rest compared by gateKey above.
func nfkdMatch(text string) (string, bool) {
	f := nfkdFold(text)
	if !isASCII(f) {
		return biometricMatchIn(text, text)
	}
	return biometricMatchIn(f, f)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzFold: on any text, foldASCII and the fold through norm.NFKD are the
// same to the gate.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"Fасе_ID", "ＦａｃｅＩＤ", "𝐅𝐚𝐜𝐞", "ﬁngerprint", "Fa\u200bce", "Fäçé", "Ηeart rate", "Ѕleepy driver", "가나", "\xff\xfeFace", "e\u0301\u0301\u0301ye"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := foldASCII(s), nfkdFold(s)
		if gateKey(got) != gateKey(want) {
			t.Fatalf("foldASCII(%q) = %q, NFKD gives %q", s, got, want)
		}
	})
}

const foldTableFile = "foldtable.go"

// TestFoldTable: foldtable.go is what this norm generates (GOLDEN=true
// go test -run TestFoldTable rewrites it). A code point is in the table
// when its fold through NFKD is something the gate can tell from the
// character left as it is; runs of them share one entry.
func TestFoldTable(t *testing.T) {
	src := generateFoldTable()
	if os.Getenv("GOLDEN") == "true" {
		if err := os.WriteFile(foldTableFile, src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(foldTableFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, src) {
		t.Errorf("%s is not what norm (Unicode %s) generates; GOLDEN=true go test -run TestFoldTable rewrites it", foldTableFile, norm.Version)
	}
}

func generateFoldTable() []byte {
	type run struct {
		lo   rune
		n    int
		inc  bool
		d    string
		last string
	}
	var runs []run
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r < 0xE000 || r >= hangulFirst && r <= hangulLast {
			continue
		}
		var b strings.Builder
		for _, c := range norm.NFKD.String(string(r)) {
			if !unicode.Is(unicode.Mn, c) && !unicode.Is(unicode.Cf, c) && !unicode.Is(unicode.Me, c) {
				b.WriteRune(c)
			}
		}
		d := b.String()
		if gateKey(nfkdFold(string(r))) == gateKey(plainFold(r)) {
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k].lo+rune(runs[k].n) == r && runs[k].n < 255 {
			p := &runs[k]
			switch {
			case d == p.d && !p.inc:
				p.n++
				continue
			case utf8.RuneCountInString(d) == 1 && utf8.RuneCountInString(p.last) == 1 &&
				[]rune(d)[0] == []rune(p.last)[0]+1 && (p.inc || p.n == 1):
				p.inc = true
				p.n++
				p.last = d
				continue
			}
		}
		runs = append(runs, run{lo: r, n: 1, d: d, last: d})
	}
	var index, out []byte
	offs := map[string]int{}
	for _, r := range runs {
		h := byte(len(r.d))
		if len(r.d) > 0x7f {
			panic(fmt.Sprintf("decomposition of %U is %d bytes long", r.lo, len(r.d)))
		}
		if r.inc {
			h |= 0x80
		}
		key := string([]byte{h}) + r.d
		off, ok := offs[key]
		if !ok {
			off = len(out)
			offs[key] = off
			out = append(out, key...)
		}
		if off > 0xffff {
			panic("foldOut is over 64 KiB")
		}
		index = append(index, byte(r.lo>>16), byte(r.lo>>8), byte(r.lo), byte(r.n), byte(off>>8), byte(off))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by TestFoldTable (GOLDEN=true go test -run TestFoldTable); DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package profile\n\n")
	fmt.Fprintf(&b, "// foldTable: the NFKD decompositions of Unicode %s that the privacy gate\n", norm.Version)
	fmt.Fprintf(&b, "// can tell from the characters themselves, %d runs (see foldDecompose).\n", len(runs))
	fmt.Fprintf(&b, "const (\n\tfoldIndex = %s\n\tfoldOut = %s\n)\n", quoteChunks(index), quoteChunks(out))
	src, err := format.Source(b.Bytes())
	if err != nil {
		panic(err)
	}
	return src
}

func quoteChunks(p []byte) string {
	var parts []string
	for len(p) > 0 {
		n := min(len(p), 48)
		parts = append(parts, strconv.Quote(string(p[:n])))
		p = p[n:]
	}
	return "\"\" +\n\t\t" + strings.Join(parts, " +\n\t\t")
}

// TestCorpusFold: on every message and signal name and every comment of the
// opendbc corpus, with the context the gate gives each, the fold through
// foldTable and the fold through norm.NFKD give texts the gate cannot tell
// apart, and the same decision.
func TestCorpusFold(t *testing.T) {
	type judged struct{ text, ctx string }
	var all []judged
	for _, c := range corpusDBCs(t) {
		db := c.db
		for _, m := range db.messages {
			all = append(all, judged{string(m.Name), ""}, judged{db.msgComment[m.MessageID], ""})
			for _, s := range m.Signals {
				all = append(all, judged{string(s.Name), string(m.Name)},
					judged{db.sigComment[sigRef{m.MessageID, string(s.Name)}], string(s.Name) + " " + string(m.Name)})
			}
		}
	}
	nonASCII := 0
	for _, j := range all {
		for _, s := range []string{j.text, j.ctx} {
			if got, want := foldASCII(s), nfkdFold(s); gateKey(got) != gateKey(want) {
				t.Errorf("foldASCII(%q) = %q, NFKD gives %q", s, got, want)
			}
		}
		if !isASCII(j.text) || !isASCII(j.ctx) {
			nonASCII++
		}
		// The decision on what the NFKD fold gives, where it is ASCII.
		ft, fc := nfkdFold(j.text), nfkdFold(j.ctx)
		if isASCII(ft) && isASCII(fc) {
			gw, gok := biometricMatchIn(j.text, j.ctx)
			ww, wok := biometricMatchIn(ft, fc)
			if gw != ww || gok != wok {
				t.Errorf("biometricMatchIn(%q, %q) = %q, %v; through NFKD %q, %v", j.text, j.ctx, gw, gok, ww, wok)
			}
		}
	}
	t.Logf("%d names and comments judged, %d of them with non-ASCII text", len(all), nonASCII)
}

// TestFoldInvalidUTF8: an invalid byte does not stop the fold of what
// follows it, so it cannot carry a look-alike past the gate.
func TestFoldInvalidUTF8(t *testing.T) {
	for _, c := range []struct{ text, fold string }{
		{"\xf3ç", "\ufffdc"}, {"\xf3Façe", "\ufffdFace"}, {"Fa\xffçe\xc3", "Fa\ufffdce\ufffd"},
	} {
		if got := foldASCII(c.text); got != c.fold {
			t.Errorf("foldASCII(%q) = %q, want %q", c.text, got, c.fold)
		}
	}
	if _, ok := biometricMatch("\xf3Façe_ID"); !ok {
		t.Error(`biometricMatch("\xf3Façe_ID") = false, want true`)
	}
}

// TestSplitWordsASCII holds the ASCII path of splitWords to the rune path
// on random ASCII texts of the characters names are made of.
func TestSplitWordsASCII(t *testing.T) {
	const chars = "aAbBzZyY09_ -.xX"
	rng := rand.New(rand.NewPCG(15, 15))
	for n := 0; n < 200000; n++ {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		s := string(b)
		if got, want := splitWordsASCII(s), splitWordsRunes(s); !slices.Equal(got, want) {
			t.Fatalf("splitWordsASCII(%q) = %q, the rune path gives %q", s, got, want)
		}
	}
}
