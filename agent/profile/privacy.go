package profile

import (
	"sort"
	"strings"
	"unicode"
)

// denyRule is one entry of the biometric deny-list: consecutive words
// (blank-separated in text) that each start with (or, when exact, equal)
// the stems in order.
type denyRule struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	text  string
	exact bool
}

// The deny-list documented in doc.go. Keep both in step.
var (
	denyPrefix = [...]string{
		"face", "facial", "finger", "voice", "iris", "retina", "heart", "pulse",
		"gaze", "drows", "biometr", "breath", "alcohol", "pupil", "eyelid",
		"blood", "sweat", "emotion", "cardio", "electrocardio", "microphone",
		"driver monitor", "occupant monitor", "driver attention", "driver camera",
		"cabin camera", "driver fatigue",
		"yawn", "respirat", "microsleep", "sleepin", "sleepy", "electroderm",
		"skin conduct", "galvanic skin", "electromyo", "electroenceph",
		"breathalys", "breathalyz",
	}
	denyExact = [...]string{
		"palm", "vein", "eye", "eyes", "ecg", "ekg", "eeg", "emg", "hrv", "dms", "oms",
		"bac", "gsr", "skin",
	}
)

// denyRulesBy holds the deny rules by the first letter of their first stem
// (all are lower-case ASCII): a word can match only those that begin as it
// does. (Trying all of them on every word made the gate's scan of a 15 MB
// DBC take over a minute.)
var denyRulesBy = func() (by [26][]denyRule) {
	for _, p := range denyPrefix {
		by[p[0]-'a'] = append(by[p[0]-'a'], denyRule{text: p})
	}
	for _, e := range denyExact {
		by[e[0]-'a'] = append(by[e[0]-'a'], denyRule{text: e, exact: true})
	}
	return by
}()

// The word sets below are blank-separated lists read by inWords: a few
// words each, judged only at a deny-list or context hit, where a map
// literal cost tboxd its initialisation code.

// personWords make an ambiguous word biometric when it stands within two
// words of one of them: "HR" is heart rate beside a driver and high
// resolution elsewhere; "sleep" is a network-management state of an ECU,
// but not of a driver.
const personWords = "driver drv drvr occupant occ passenger psngr pass person rider"

// contextWords are the ambiguous words judged beside personWords.
const contextWords = "hr bpm sleep sleeping asleep"

// exemptWords are words that start with a deny stem but name something
// innocent.
const exemptWords = "heartbeat heartbeats heartbit"

// pulseParts are words that make a "pulse" a machine's: an encoder, a brake
// or regeneration pulse, a distance accumulator.
const pulseParts = "wheel whl brk brake batt battery rgen regen distance dist accumulator " +
	"encoder pwm ignition injector injection speed spd odometer odo tach engine motor pump valve"

// gatewayWords mark Ford's ECG, the Enhanced Central Gateway, in its message
// names (DTE_HPCMtoECG, ECG_Data2_FD1, SmartChargingData_ECG_3,
// PARSEDPushPCMtoGWM_ECG).
const gatewayWords = "to gwm fd smart dte gateway"

// inWords reports whether w is one of the blank-separated words of set.
func inWords(set, w string) bool {
	for set != "" {
		var f string
		f, set, _ = strings.Cut(set, " ")
		if f == w {
			return true
		}
	}
	return false
}

// anyWord reports whether a word of the lists is in set. Not inlined at its
// 4 calls (tboxd size).
//
//go:noinline
func anyWord(set string, lists ...[]string) bool {
	for _, l := range lists {
		for _, w := range l {
			if inWords(set, w) {
				return true
			}
		}
	}
	return false
}

// biometricMatch reports the deny-list entry that text matches, if any.
// Text is folded to ASCII first (foldASCII), so look-alike letters do not
// get past it.
func biometricMatch(text string) (string, bool) {
	return biometricMatchIn(text, "")
}

// biometricMatchIn is biometricMatch with context: the words of context
// (a commented signal's name) count for the exemptions, never for a match.
func biometricMatchIn(text, context string) (string, bool) {
	if text == "" {
		return "", false
	}
	text = foldASCII(text)
	ctx := splitWords(foldASCII(context))
	// "SpO2" (blood oxygen) splits into words too short to judge alone.
	if strings.Contains(strings.ToLower(text), "spo2") {
		return "spo2", true
	}
	w := splitWords(text)
	for i := range w {
		if inWords(contextWords, w[i]) {
			for j := max(0, i-2); j <= min(len(w)-1, i+2); j++ {
				if inWords(personWords, w[j]) {
					return w[j] + " " + w[i], true
				}
			}
		}
		if w[i] == "" || w[i][0]-'a' >= 26 {
			continue
		}
		for _, r := range denyRulesBy[w[i][0]-'a'] {
			if !r.matchAt(w, i) || exempt(w, i, r, ctx) {
				continue
			}
			return r.text, true
		}
	}
	return "", false
}

// matchAt reports whether the words from w[i] on match r, stem by stem.
func (r denyRule) matchAt(w []string, i int) bool {
	for rest := r.text; rest != ""; i++ {
		var s string
		s, rest, _ = strings.Cut(rest, " ")
		if i >= len(w) {
			return false
		}
		if r.exact {
			if w[i] != s {
				return false
			}
		} else if !strings.HasPrefix(w[i], s) {
			return false
		}
	}
	return true
}

func exempt(w []string, i int, r denyRule, ctx []string) bool {
	first, _, multi := strings.Cut(r.text, " ")
	if !multi && inWords(exemptWords, w[i]) {
		return true
	}
	switch first {
	case "ecg":
		return anyWord(gatewayWords, w, ctx)
	case "alcohol":
		// Flex fuel: the ethanol share of the fuel (FUEL_ALCOHOL_PERCNT).
		return anyWord("fuel ethanol flex", w, ctx)
	case "voice":
		// A steering-wheel push-to-talk button, a blower limit during a call:
		// a switch's state, not the voice.
		return anyWord("ptt button buttons btn blower", w, ctx)
	case "pulse":
		if anyWord(pulseParts, w, ctx) {
			return true
		}
	}
	if first == "pulse" && !r.exact {
		if i > 0 && (w[i-1] == "wheel" || w[i-1] == "whl") {
			return true
		}
		if strings.HasPrefix(w[i], "pulsecount") || strings.HasPrefix(w[i], "pulsewidth") {
			return true
		}
		if i+1 < len(w) && (w[i+1] == "count" || w[i+1] == "cnt" || w[i+1] == "width" || w[i+1] == "counter") {
			return true
		}
	}
	return false
}

// splitWords lower-cases s and splits it into words at characters that are
// not letters or digits, at lower-to-upper case changes ("heartRate"), at the
// end of an upper-case run ("DMSFace" -> "dms", "face") and between letters
// and digits.
func splitWords(s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return splitWordsRunes(s)
		}
	}
	return splitWordsASCII(s)
}

// splitWordsASCII is splitWords on ASCII text, without a rune slice: one
// allocation per word.
func splitWordsASCII(s string) []string {
	words := make([]string, 0, 8)
	start := -1
	// i == len(s) ends the last word as a separator would.
	for i := 0; i <= len(s); i++ {
		var c byte
		if i < len(s) {
			c = s[i]
		}
		sep := !asciiLetter(c) && !asciiDigit(c)
		cut := sep
		if !sep && start >= 0 {
			p := s[i-1]
			cut = asciiLower(p) && asciiUpper(c) ||
				asciiUpper(p) && asciiUpper(c) && i+1 < len(s) && asciiLower(s[i+1]) ||
				asciiDigit(p) != asciiDigit(c)
		}
		if cut && start >= 0 {
			words = append(words, strings.ToLower(s[start:i]))
			start = -1
		}
		if !sep && start < 0 {
			start = i
		}
	}
	return words
}

func asciiUpper(c byte) bool  { return c >= 'A' && c <= 'Z' }
func asciiLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func asciiLetter(c byte) bool { return asciiUpper(c) || asciiLower(c) }
func asciiDigit(c byte) bool  { return c >= '0' && c <= '9' }

// splitWordsRunes is splitWords on any text.
func splitWordsRunes(s string) []string {
	var words []string
	rs := []rune(s)
	start := -1
	// i == len(rs) ends the last word as a separator would.
	for i := 0; i <= len(rs); i++ {
		r := rune(' ')
		if i < len(rs) {
			r = rs[i]
		}
		sep := !unicode.IsLetter(r) && !unicode.IsDigit(r)
		cut := sep
		if !sep && start >= 0 {
			p := rs[i-1]
			cut = unicode.IsLower(p) && unicode.IsUpper(r) ||
				unicode.IsUpper(p) && unicode.IsUpper(r) && i+1 < len(rs) && unicode.IsLower(rs[i+1]) ||
				unicode.IsDigit(p) != unicode.IsDigit(r)
		}
		if cut && start >= 0 {
			words = append(words, strings.ToLower(string(rs[start:i])))
			start = -1
		}
		if !sep && start < 0 {
			start = i
		}
	}
	return words
}

// confusableFrom lists letters that look like ASCII ones (Cyrillic, Greek,
// Armenian and others), in code point order for confusable's binary
// search; confusableTo holds the ASCII letter of each (in the comments too).
// The decomposition (foldTable) already takes fullwidth forms, mathematical
// letters, ligatures and accents apart. (A map literal cost tboxd its
// initialisation code.)
var confusableFrom = [...]rune{
	'Ø', 'ß', 'ø', 'Đ', 'đ', 'Ħ', 'ħ', 'ı', 'ŀ', 'Ł', 'ł', 'ȷ', // O s o D d H h i l L l j
	'ɑ', 'ɡ', 'ɩ', 'ɪ', 'ʏ', 'Α', 'Β', 'Ε', 'Ζ', 'Η', 'Ι', 'Κ', // a g i I y A B E Z H I K
	'Μ', 'Ν', 'Ο', 'Ρ', 'Τ', 'Υ', 'Χ', 'α', 'β', 'γ', 'ε', 'ι', // M N O P T Y X a b y e i
	'κ', 'ν', 'ο', 'ρ', 'τ', 'υ', 'χ', 'ω', 'ϲ', 'ϳ', 'Ϲ', 'Ё', // k v o p t u x w c j C E
	'Ѕ', 'І', 'Ї', 'Ј', 'А', 'В', 'Е', 'К', 'М', 'Н', 'О', 'Р', // S I I J A B E K M H O P
	'С', 'Т', 'У', 'Х', 'а', 'в', 'г', 'е', 'к', 'м', 'н', 'о', // C T Y X a b r e k m h o
	'п', 'р', 'с', 'т', 'у', 'х', 'ь', 'ё', 'ѕ', 'і', 'ї', 'ј', // n p c t y x b e s i i j
	'Ү', 'һ', 'Ӏ', 'ӏ', 'Ԁ', 'ԁ', 'Ԛ', 'ԛ', 'Ԝ', 'ԝ', 'հ', 'ո', // Y h I l D d Q q W w h n
	'ս', 'ց', 'օ', 'ᴀ', // u g o A
}

const confusableTo = "OsoDdHhilLljagiIyABEZHIKMNOPTYXabyeikvoptuxwcjCESIIJABEKMHOPCTYXabrekmhonpctyxbesiijYhIlDdQqWwhnugoA"

// confusable returns the ASCII letter that r looks like, if it is one of
// confusableFrom.
func confusable(r rune) (rune, bool) {
	lo, hi := 0, len(confusableFrom)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := confusableFrom[m]; {
		case c == r:
			return rune(confusableTo[m]), true
		case c < r:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// foldASCII rewrites text so that what looks like an ASCII word is one: it
// decomposes as Unicode NFKD does ("ｆａｃｅ", "𝐟𝐚𝐜𝐞", "ﬁnger", "façe"), drops
// combining marks and invisible characters (zero-width space and joiners,
// soft hyphen, BOM), and maps look-alike letters of other scripts. ASCII text
// is returned as is.
//
// The decomposition comes from foldTable (22 KiB), generated from
// golang.org/x/text/unicode/norm by TestFoldTable and holding only the
// characters whose decomposition can change what the gate sees; norm
// itself is 73 KiB of tboxd. TestFoldMatchesNFKD checks every code point
// against the fold through norm.NFKD, TestCorpusFold every name and comment
// of the opendbc corpus.
func foldASCII(text string) string {
	ascii := true
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return text
	}
	var b strings.Builder
	for _, r := range text {
		switch d, ok := foldDecompose(r); {
		case ok:
			for _, c := range d {
				foldPlain(&b, c)
			}
		case r >= hangulFirst && r <= hangulLast:
			// Hangul syllables decompose by arithmetic (Unicode 3.12).
			s := r - hangulFirst
			foldPlain(&b, 0x1100+s/(21*28))
			foldPlain(&b, 0x1161+s%(21*28)/28)
			if t := s % 28; t != 0 {
				foldPlain(&b, 0x11A7+t)
			}
		default:
			foldPlain(&b, r)
		}
	}
	return b.String()
}

const hangulFirst, hangulLast = 0xAC00, 0xD7A3

// foldPlain writes r, a character left as it is by the decomposition, to b:
// dropped if it is a combining mark or a format character (zero-width,
// soft hyphen, BOM), mapped if it is a look-alike letter.
func foldPlain(b *strings.Builder, r rune) {
	switch {
	case r < 0x80:
		b.WriteByte(byte(r))
	case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Me, r):
	default:
		if a, ok := confusable(r); ok {
			b.WriteRune(a)
		} else {
			b.WriteRune(r)
		}
	}
}

// foldDecompose looks r up in foldTable: runs of consecutive code points,
// each of foldIndexSize bytes in foldIndex (the first code point, 3 bytes
// big-endian; the run's length; the offset of its decomposition in foldOut,
// 2 bytes). At that offset, a byte holds the decomposition's length in bytes,
// with the high bit set when the run counts up (its n-th code point
// decomposes to the single character of the first's plus n) rather than
// sharing one decomposition; the decomposition's bytes follow, with
// combining marks and format characters already dropped.
func foldDecompose(r rune) (string, bool) {
	n := len(foldIndex) / foldIndexSize
	i := sort.Search(n, func(i int) bool { return foldRuneAt(i) > r }) - 1
	if i < 0 {
		return "", false
	}
	e := foldIndex[i*foldIndexSize:]
	k := r - foldRuneAt(i)
	if k >= rune(e[3]) {
		return "", false
	}
	off := int(e[4])<<8 | int(e[5])
	h := foldOut[off]
	d := foldOut[off+1 : off+1+int(h&0x7f)]
	if h&0x80 == 0 {
		return d, true
	}
	for _, c := range d {
		return string(c + k), true
	}
	return d, true
}

const foldIndexSize = 6

func foldRuneAt(i int) rune {
	e := foldIndex[i*foldIndexSize:]
	return rune(e[0])<<16 | rune(e[1])<<8 | rune(e[2])
}
