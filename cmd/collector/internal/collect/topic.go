package collect

import (
	"strings"

	"github.com/csop/tbox/signer"
)

// splitTopic returns the <device> and <kind> of csop/v1/<device>/<kind>
// (neither containing '/'), as strings.Split would find them, without
// allocating: it runs for every message.
func splitTopic(topic string) (seg, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "csop/v1/")
	if !ok {
		return "", "", false
	}
	seg, kind, ok = strings.Cut(rest, "/")
	if !ok || strings.IndexByte(kind, '/') >= 0 {
		return "", "", false
	}
	return seg, kind, true
}

// parseAddress parses s as signer.ParseAddress does (0x or 0X and 40 hex
// digits of either case), without allocating.
func parseAddress(s string) (a signer.Address, ok bool) {
	if len(s) != 2+2*len(a) || (s[:2] != "0x" && s[:2] != "0X") {
		return a, false
	}
	for i := range a {
		hi, ok1 := unhex(s[2+2*i])
		lo, ok2 := unhex(s[3+2*i])
		if !ok1 || !ok2 {
			return signer.Address{}, false
		}
		a[i] = hi<<4 | lo
	}
	return a, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isAddressText reports whether s == a.String() (0x and lowercase hex),
// without allocating.
func isAddressText(s string, a signer.Address) bool {
	const digits = "0123456789abcdef"
	if len(s) != 2+2*len(a) || s[:2] != "0x" {
		return false
	}
	for i, b := range a {
		if s[2+2*i] != digits[b>>4] || s[3+2*i] != digits[b&0xf] {
			return false
		}
	}
	return true
}
