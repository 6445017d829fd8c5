package shell

import (
	"strconv"
	"unicode/utf8"
)

// oneLine returns text from outside the agent (a nack reason, an MQTT
// payload, an error quoting either) fit for one line of the terminal:
// backslash, control bytes (C0, DEL, C1), line and paragraph separators and
// bidirectional overrides are escaped as \n, \xNN or \uNNNN, and invalid
// UTF-8 as \xNN, so nothing from outside can start a line of its own, move
// the cursor or reorder what the technician reads.
func oneLine(s string) string {
	// One append per character, of the escape or of the character itself:
	// a strings.Builder's WriteString is inlined at each call (tboxd size).
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		esc := s[i : i+size]
		switch {
		case r == utf8.RuneError && size == 1:
			esc = `\x` + hex2(s[i])
		case r == '\\':
			esc = `\\`
		case r == '\n':
			esc = `\n`
		case r == '\r':
			esc = `\r`
		case r == '\t':
			esc = `\t`
		case r < 0x20 || r == 0x7f:
			esc = `\x` + hex2(byte(r))
		case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			u := strconv.FormatInt(int64(r), 16)
			esc = `\u` + "000"[:4-len(u)] + u // zero-padded to 4 digits (all are 2 to 4)
		}
		b = append(b, esc...)
		i += size
	}
	return string(b)
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
