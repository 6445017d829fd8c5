package shell

// The line editor turns the raw bytes of a serial terminal into command
// lines, one byte at a time, with bounded memory whatever arrives:
//
//	0x20..0x7e       printable ASCII: appended (and echoed) while the line is
//	                 shorter than the limit; beyond it discarded, and the line
//	                 is reported as too long when it ends
//	0x09 (TAB)       a space
//	0x08, 0x7f       backspace: removes the last character
//	0x0d (CR)        ends the line; an LF right after it is swallowed (CRLF)
//	0x0a (LF)        ends the line, unless it follows a CR
//	0x03 (^C)        cancels the line
//	0x15 (^U)        erases the line
//	0x1b (ESC)       starts an escape sequence, which is discarded whole:
//	                 CSI (ESC [ params final), SS3 (ESC O x) or ESC x
//	anything else    NUL, other control bytes, bytes >= 0x80: ignored

// Line editor results.
type editResult uint8

const (
	editNone    editResult = iota // keep reading
	editLine                      // a line ended: Line() holds it
	editCancel                    // ^C: the line was discarded
	editTooLong                   // a line ended that was longer than the limit; discarded
)

const bell = 0x07

type escState uint8

const (
	escNone escState = iota
	escStart
	escCSI
	escSS3
)

// editor is a line editor with echo. The zero value is not usable: see
// newEditor.
type editor struct {
	buf      []byte // the line so far, printable ASCII only, len <= max
	line     string // the last line ended
	max      int
	overflow bool // bytes were discarded from this line
	afterCR  bool // the last byte ended a line with CR
	esc      escState
	echo     []byte // what to send back to the terminal; the caller drains it
}

func newEditor(max int) *editor {
	return &editor{buf: make([]byte, 0, max), max: max}
}

// Line returns the line that the last editLine ended.
func (e *editor) Line() string { return e.line }

// Echo returns the bytes to echo and empties the echo buffer.
func (e *editor) Echo() []byte {
	out := e.echo
	e.echo = e.echo[:0]
	return out
}

// Reset discards the line being edited and any escape sequence.
func (e *editor) Reset() {
	e.buf = e.buf[:0]
	e.overflow, e.afterCR = false, false
	e.esc = escNone
}

// Feed processes one byte.
func (e *editor) Feed(b byte) editResult {
	if e.esc != escNone {
		if e.escape(b) {
			return editNone
		}
		// An unexpected byte ended the sequence: process it normally.
	}
	afterCR := e.afterCR
	e.afterCR = false
	switch {
	case b == '\r' || b == '\n':
		if b == '\n' && afterCR {
			return editNone // the LF of a CRLF
		}
		e.afterCR = b == '\r'
		e.echo = append(e.echo, '\r', '\n')
		if e.overflow {
			e.buf, e.overflow = e.buf[:0], false
			return editTooLong
		}
		e.line = string(e.buf)
		e.buf = e.buf[:0]
		return editLine
	case b >= 0x20 && b < 0x7f, b == '\t':
		if b == '\t' {
			b = ' '
		}
		if len(e.buf) >= e.max {
			if !e.overflow {
				e.echo = append(e.echo, bell)
			}
			e.overflow = true
			return editNone
		}
		e.buf = append(e.buf, b)
		e.echo = append(e.echo, b)
	case b == 0x08 || b == 0x7f:
		if len(e.buf) > 0 && !e.overflow {
			e.buf = e.buf[:len(e.buf)-1]
			e.echo = append(e.echo, '\b', ' ', '\b')
		}
	case b == 0x03:
		e.buf, e.overflow = e.buf[:0], false
		e.echo = append(e.echo, '^', 'C', '\r', '\n')
		return editCancel
	case b == 0x15:
		for range len(e.buf) {
			e.echo = append(e.echo, '\b', ' ', '\b')
		}
		e.buf, e.overflow = e.buf[:0], false
	case b == 0x1b:
		e.esc = escStart
	}
	return editNone
}

// escape consumes b as part of an escape sequence and reports whether it
// did; false means b is not part of it and the sequence is over.
func (e *editor) escape(b byte) bool {
	switch e.esc {
	case escStart:
		switch b {
		case '[':
			e.esc = escCSI
			return true
		case 'O':
			e.esc = escSS3
			return true
		}
		e.esc = escNone
		// ESC followed by a printable byte is a two-byte sequence (ESC x);
		// ESC followed by a control byte (CR, another ESC) is just ESC.
		return b >= 0x20 && b < 0x7f
	case escSS3:
		e.esc = escNone
		return b >= 0x20 && b < 0x7f
	case escCSI:
		switch {
		case b >= 0x40 && b <= 0x7e: // final byte
			e.esc = escNone
			return true
		case b >= 0x20 && b <= 0x3f: // parameter and intermediate bytes: no state kept
			return true
		}
		e.esc = escNone
		return false
	}
	e.esc = escNone
	return false
}
