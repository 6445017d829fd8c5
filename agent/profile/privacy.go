package profile

import (
	"strings"
	"unicode"
)

// denyRule is one entry of the biometric deny-list: consecutive words that
// each start with (or, when exact, equal) the stems in order.
type denyRule struct {
	stems []string
	exact bool
}

// The deny-list documented in doc.go. Keep both in step.
var denyRules = func() []denyRule {
	prefix := []string{
		"face", "facial", "finger", "voice", "iris", "retina", "heart", "pulse",
		"gaze", "drows", "biometr", "breath", "alcohol", "pupil", "eyelid",
		"blood", "sweat", "emotion", "cardio", "electrocardio", "microphone",
		"driver monitor", "occupant monitor", "driver attention", "driver camera",
		"cabin camera", "driver fatigue",
	}
	exact := []string{"palm", "vein", "eye", "eyes", "ecg", "ekg", "eeg", "hrv", "bpm", "dms", "oms"}
	var rules []denyRule
	for _, p := range prefix {
		rules = append(rules, denyRule{stems: strings.Fields(p)})
	}
	for _, e := range exact {
		rules = append(rules, denyRule{stems: []string{e}, exact: true})
	}
	return rules
}()

// exemptWords are words that start with a deny stem but name something
// innocent.
var exemptWords = map[string]bool{"heartbeat": true, "heartbeats": true}

// biometricMatch reports the deny-list entry that text matches, if any.
func biometricMatch(text string) (string, bool) {
	// "SpO2" (blood oxygen) splits into words too short to judge alone.
	if strings.Contains(strings.ToLower(text), "spo2") {
		return "spo2", true
	}
	w := splitWords(text)
	for i := range w {
		for _, r := range denyRules {
			if i+len(r.stems) > len(w) || !r.matchAt(w, i) {
				continue
			}
			if exempt(w, i, r) {
				continue
			}
			return strings.Join(r.stems, " "), true
		}
	}
	return "", false
}

func (r denyRule) matchAt(w []string, i int) bool {
	for j, s := range r.stems {
		word := w[i+j]
		if r.exact {
			if word != s {
				return false
			}
		} else if !strings.HasPrefix(word, s) {
			return false
		}
	}
	return true
}

func exempt(w []string, i int, r denyRule) bool {
	if len(r.stems) == 1 && exemptWords[w[i]] {
		return true
	}
	if r.stems[0] == "pulse" && !r.exact {
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
	var words []string
	rs := []rune(s)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
			continue
		}
		p := rs[i-1]
		switch {
		case unicode.IsLower(p) && unicode.IsUpper(r):
			flush(i)
			start = i
		case unicode.IsUpper(p) && unicode.IsUpper(r) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
			flush(i)
			start = i
		case unicode.IsDigit(p) != unicode.IsDigit(r):
			flush(i)
			start = i
		}
	}
	flush(len(rs))
	return words
}
