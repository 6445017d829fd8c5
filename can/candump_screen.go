package can

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrNoTimestamp means a line is candump's screen output without absolute
// timestamps (plain `candump can0`, or -td, -tz, -tA): its frames have no
// time to replay by. The error says which flag records a usable log.
var ErrNoTimestamp = errors.New("candump output without absolute timestamps")

// recordHint is how to record a log this reader takes.
const recordHint = "record with `candump -l can0` (a log file) or `candump -ta can0` (screen output with absolute times)"

// screenTimeDigits is the width of candump -ta's seconds ("%010llu");
// -td and -tz print relative seconds as "%03llu".
const screenTimeDigits = 10

// looksLikeScreen reports whether a line without a leading '(' is candump's
// screen output without timestamps: "  can0  123   [8]  11 22 ...": one of
// its second to sixth fields, split at blanks as the parser does, is "[n]".
func looksLikeScreen(line []byte) bool {
	i := 0
	for n := 0; n < 6; n++ {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isBlank(line[i]) {
			i++
		}
		f := line[start:i]
		if n > 0 && len(f) >= 3 && f[0] == '[' && f[len(f)-1] == ']' {
			return true
		}
	}
	return false
}

// parseScreen parses the frame part of a line of candump's screen output
// with absolute timestamps (candump -ta, optionally -x, -a, -e):
//
//	(1700000000.123456)  can0  123   [8]  11 22 33 44 55 66 77 88
//	(1700000000.123456)  can0  RX - -  12345678   [2]  11 22
//	(1700000000.123456)  can0  123  [12]  11 22 33 44 55 66 77 88 99 AA BB CC
//	(1700000000.123456)  can0  123   [8]  remote request
//	(1700000000.123456)  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME
//
// p starts at the first token after the interface name; secDigits is the
// number of digits of the timestamp's seconds.
func (r *Reader) parseScreen(p []byte, secDigits int) error {
	f := &r.frame
	if secDigits != screenTimeDigits {
		return errorf("%w: relative timestamps (candump -td or -tz) cannot be replayed; %s", ErrNoTimestamp, recordHint)
	}
	tok, p := nextField(p)
	brs, esi := false, false
	if string(tok) == "RX" || string(tok) == "TX" { // candump -x
		var b, e []byte
		b, p = nextField(p)
		e, p = nextField(p)
		if (string(b) != "B" && string(b) != "-") || (string(e) != "E" && string(e) != "-") {
			return syntaxErr("candump -x flags", "B or - then E or -", []byte(string(b)+" "+string(e)))
		}
		brs, esi = b[0] == 'B', e[0] == 'E'
		tok, p = nextField(p)
	}
	if len(tok) > 8 {
		return syntaxErr("CAN id", "3 hex digits (standard) or 8 (extended)", tok)
	}
	var id uint32
	for _, c := range tok {
		v := hexVal[c]
		if v > 15 {
			return syntaxErr("CAN id", "3 hex digits (standard) or 8 (extended)", tok)
		}
		id = id<<4 | uint32(v)
	}
	if err := r.setID(id, tok); err != nil {
		return err
	}

	// "[8]" for a classic frame, "[08]" (two digits) for CAN FD.
	tok, p = nextField(p)
	if len(tok) < 3 || tok[0] != '[' || tok[len(tok)-1] != ']' {
		return syntaxErr("length", "[<length>] after the id", tok)
	}
	digits := tok[1 : len(tok)-1]
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' || n > MaxFDDataLen {
			return syntaxErr("length", "[0] to [8], or [00] to [64] for CAN FD", tok)
		}
		n = n*10 + int(c-'0')
	}
	fd := len(digits) == 2 || brs || esi
	switch {
	case len(digits) > 2, !fd && n > MaxDataLen, fd && (n > MaxFDDataLen || !validFDLen(uint8(n))):
		return syntaxErr("length", "[0] to [8], or [00] to [64] for CAN FD", tok)
	}
	if fd {
		if f.Flags&ErrorFrame != 0 {
			return syntaxErr("frame", "an error frame as a classic frame, not CAN FD", tok)
		}
		f.Flags |= FD
		if brs {
			f.Flags |= BRS
		}
		if esi {
			f.Flags |= ESI
		}
	}
	rest := trimLeft(p)
	if !fd && bytes.HasPrefix(rest, []byte("remote request")) {
		if f.Flags&ErrorFrame != 0 {
			return syntaxErr("frame", "an error frame with data, not remote", rest)
		}
		if len(trimLeft(rest[len("remote request"):])) != 0 {
			return syntaxErr("end of line", "nothing after remote request", rest)
		}
		f.Flags |= Remote
		f.Len = uint8(n)
		r.clearData(0)
		return nil
	}
	for d := 0; d < n; d++ {
		tok, p = nextField(p)
		if len(tok) != 2 || hexVal[tok[0]]|hexVal[tok[1]] > 15 {
			if len(tok) == 9 && (tok[0] == '0' || tok[0] == '1') {
				return syntaxErr("data", "hex bytes (record without -b)", tok)
			}
			return syntaxErr("data", fmt.Sprintf("%d hex bytes as [%d] says", n, n), tok)
		}
		f.Data[d] = hexVal[tok[0]]<<4 | hexVal[tok[1]]
	}
	f.Len = uint8(n)
	r.clearData(n)

	// What candump puts behind the data: ERRORFRAME, or the bytes as ASCII
	// in quotes (-a). Anything else is not candump's.
	rest = trimLeft(p)
	switch {
	case len(rest) == 0:
	case f.Flags&ErrorFrame != 0 && string(rest) == "ERRORFRAME":
		r.errDetail = true // candump -e writes the decoded error on lines of its own
	case f.Flags&ErrorFrame == 0 && len(rest) >= 2 && rest[0] == '\'' && rest[len(rest)-1] == '\'' && len(rest)-2 <= n:
	default:
		return syntaxErr("end of line", "nothing, ERRORFRAME, or the data as 'ASCII' (-a)", rest)
	}
	return nil
}

// nextField returns the next blank-separated field of p and what follows it.
// Not inlined at its 6 calls (tboxd size).
//
//go:noinline
func nextField(p []byte) (field, rest []byte) {
	p = trimLeft(p)
	i := 0
	for i < len(p) && !isBlank(p[i]) {
		i++
	}
	return p[:i], p[i:]
}

func trimLeft(p []byte) []byte {
	for len(p) > 0 && isBlank(p[0]) {
		p = p[1:]
	}
	return p
}
