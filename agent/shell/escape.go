package shell

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// oneLine returns text from outside the agent (a nack reason, an MQTT
// payload, an error quoting either) fit for one line of the terminal:
// backslash, control bytes (C0, DEL, C1), line and paragraph separators and
// bidirectional overrides are escaped as \n, \xNN or \uNNNN, and invalid
// UTF-8 as \xNN, so nothing from outside can start a line of its own, move
// the cursor or reorder what the technician reads.
func oneLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			b.WriteString(`\u`)
			u := strconv.FormatInt(int64(r), 16)
			b.WriteString("000"[:4-len(u)]) // zero-padded to 4 digits (all are 2 to 4)
			b.WriteString(u)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
