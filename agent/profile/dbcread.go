package profile

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/scanner"
	"unicode/utf8"

	"go.einride.tech/can/pkg/dbc"
)

// This file is the DBC reader. It reads what the field hands over: the
// statements the profile needs (BO_, SG_ with simple and extended
// multiplexing, CM_, VAL_, SIG_VALTYPE_, SG_MUL_VAL_) and skips the rest.
// A statement it cannot read is recorded with its line and what was expected;
// whether that is a warning or an error depends on whether the profile uses
// the message it belongs to (see database.problems).
//
// The lexer streams: the file is scanned once, token by token, and only the
// definitions are kept, so reading costs little more than the file itself.

// tokKind is a lexical class.
type tokKind uint8

const (
	tokEOF  tokKind = iota
	tokWord         // a run of characters other than space, '"' and punctuation
	tokString
	tokPunct // one of : | @ ( ) [ ] , ;
)

type token struct {
	kind      tokKind
	text      []byte // a slice of the file for words and punctuation; unescaped for strings
	line      int
	firstLine bool // first token on its line
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of file"
	case tokString:
		return strconv.Quote(string(t.text))
	}
	s := string(t.text)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

type lexer struct {
	data     []byte
	off      int
	line     int
	lastLine int // line of the last token returned
	// openFrom is the offset from which no string can end: a string that
	// began before it ran to the end of the file. Later ones end at once,
	// so a file of unterminated strings reads in linear time.
	openFrom  int
	peeked    *token
	peekToken token
}

func isPunct(c byte) bool {
	switch c {
	case ':', '|', '@', '(', ')', '[', ']', ',', ';':
		return true
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'
}

// peek is not inlined at each of its ~20 calls (tboxd size).
//
//go:noinline
func (l *lexer) peek() token {
	if l.peeked == nil {
		l.peekToken = l.scan()
		l.peeked = &l.peekToken
	}
	return *l.peeked
}

// next is not inlined at its 22 calls (tboxd size).
//
//go:noinline
func (l *lexer) next() token {
	t := l.peek()
	l.peeked = nil
	return t
}

func (l *lexer) scan() token {
	for l.off < len(l.data) && isSpace(l.data[l.off]) {
		if l.data[l.off] == '\n' {
			l.line++
		}
		l.off++
	}
	if l.off >= len(l.data) {
		return token{kind: tokEOF, line: l.line, firstLine: true}
	}
	t := token{line: l.line, firstLine: l.line != l.lastLine}
	defer func() { l.lastLine = l.line }()
	c := l.data[l.off]
	switch {
	case c == '"':
		t.kind = tokString
		t.text = l.scanString()
	case isPunct(c):
		t.kind = tokPunct
		t.text = l.data[l.off : l.off+1]
		l.off++
	default:
		start := l.off
		for l.off < len(l.data) {
			c := l.data[l.off]
			if isSpace(c) || isPunct(c) || c == '"' {
				break
			}
			l.off++
		}
		t.kind = tokWord
		t.text = l.data[start:l.off]
	}
	return t
}

// scanString reads a quoted string that may span lines; a backslash escapes
// the next character. An unterminated string ends at the end of its first
// line, so that one stray quote does not swallow the rest of the file.
func (l *lexer) scanString() []byte {
	open := l.off
	l.off++
	if l.openFrom >= 0 && open >= l.openFrom {
		return l.unterminated(open)
	}
	end := bytes.IndexByte(l.data[l.off:], '"')
	if end >= 0 && bytes.IndexByte(l.data[l.off:l.off+end], '\\') < 0 {
		s := l.data[l.off : l.off+end]
		l.line += bytes.Count(s, []byte{'\n'})
		l.off += end + 1
		return s
	}
	var out []byte
	for i := l.off; i < len(l.data); i++ {
		c := l.data[i]
		switch c {
		case '\\':
			if i+1 < len(l.data) {
				i++
				if l.data[i] == '\n' {
					l.line++
				}
				out = append(out, l.data[i])
			}
			continue
		case '"':
			l.off = i + 1
			return out
		case '\n':
			l.line++
		}
		out = append(out, c)
	}
	// Unterminated: end at the first line.
	l.line -= bytes.Count(out, []byte{'\n'})
	l.openFrom = open
	return l.unterminated(open)
}

// unterminated ends the string that opens at offset open at the end of its
// line.
func (l *lexer) unterminated(open int) []byte {
	eol := bytes.IndexByte(l.data[open:], '\n')
	if eol < 0 {
		l.off = len(l.data)
		return l.data[open+1:]
	}
	l.off = open + eol
	return bytes.TrimRight(l.data[open+1:open+eol], "\r")
}

// statementKeywords begin a statement when they are the first token on a
// line. A statement ends at ';' or where the next one begins, whichever comes
// first, so a missing ';' costs nothing.
var statementKeywords = [...]string{ // sorted, for isStatementKeyword
	"BA_", "BA_DEF_", "BA_DEF_DEF_", "BA_DEF_DEF_REL_", "BA_DEF_REL_",
	"BA_DEF_SGTYPE_", "BA_REL_", "BA_SGTYPE_", "BO_", "BO_TX_BU_", "BS_", "BU_",
	"BU_BO_REL_", "BU_EV_REL_", "BU_SG_REL_", "CAT_", "CAT_DEF_", "CM_",
	"ENVVAR_DATA_", "EV_", "EV_DATA_", "FILTER", "NS_", "SGTYPE_", "SGTYPE_VAL_",
	"SG_", "SG_MUL_VAL_", "SIGTYPE_VALTYPE_", "SIG_GROUP_", "SIG_TYPE_REF_",
	"SIG_VALTYPE_", "VAL_", "VAL_TABLE_", "VERSION",
}

// isStatementKeyword reports whether w is one of statementKeywords. (A map
// literal cost tboxd its initialisation code.) Not inlined (tboxd size).
//
//go:noinline
func isStatementKeyword(w []byte) bool {
	lo, hi := 0, len(statementKeywords)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch k := statementKeywords[m]; {
		case string(w) == k:
			return true
		case string(w) > k:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}

// problem is a statement the reader could not read.
type problem struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	line int
	msg  string // "SG_: expected ..., found ..."
}

// muxValue is an SG_MUL_VAL_ statement: signal is present when the switch
// named holds a value in one of the ranges.
type muxValue struct {
	line   int
	sw     string
	ranges [][2]uint64
}

// readResult is what the reader hands to the index.
type readResult struct {
	defs     []dbc.Def
	problems map[dbc.MessageID][]problem // statements that name a message
	general  []problem                   // statements that name none
	notes    []problem                   // statements read with a liberal reading
	muxVals  map[sigRef]muxValue
	frames   frameFormats // VFrameFormat (dbcframe.go)
	more     int          // problems and notes past the bounds, counted only
}

type reader struct {
	lex  lexer
	file string
	res  readResult
	cur  *dbc.MessageDef // the message whose SG_ lines follow
	// sigs collects cur's signals; flush copies them to a slice of their
	// number. (Appended to cur.Signals directly, the doubling slices of
	// 100-byte SignalDefs cost twice the memory kept: a 15 MB file of
	// small signals allocated 142 MB.)
	sigs []dbc.SignalDef
	vals []dbc.ValueDescriptionDef // the same for a VAL_ statement's values
	// inBroken: the SG_ lines that follow belong to a BO_ that could not be
	// read; they are skipped without a warning each.
	inBroken bool
	utf8     bool // the file is valid UTF-8; otherwise strings are Latin-1
}

// readDBC reads a DBC. It never fails: what it cannot read is in the
// result's problems.
func readDBC(file string, data []byte) readResult {
	r := &reader{lex: lexer{data: data, line: 1, openFrom: -1}, file: file, utf8: utf8.Valid(data)}
	r.res.problems = make(map[dbc.MessageID][]problem)
	r.res.muxVals = make(map[sigRef]muxValue)
	for {
		t := r.lex.next()
		if t.kind == tokEOF {
			break
		}
		if t.kind != tokWord || !isStatementKeyword(t.text) {
			if len(r.res.general) < maxGeneral {
				r.general(problem{line: t.line, msg: fmt.Sprintf("expected a DBC keyword (BO_, SG_, CM_, VAL_, ...), found %s", t)})
			} else {
				r.res.more++
			}
			r.skipStatement()
			continue
		}
		kw := string(t.text)
		if kw != "SG_" && kw != "BO_" {
			r.flush()
		}
		switch kw {
		case "BO_":
			r.flush()
			r.message(t)
		case "SG_":
			r.signal(t)
		case "CM_":
			r.comment(t)
		case "VAL_":
			r.values(t)
		case "SIG_VALTYPE_":
			r.valueType(t)
		case "SG_MUL_VAL_":
			r.muxVal(t)
		case "BA_DEF_":
			r.attrDef(t)
		case "BA_DEF_DEF_":
			r.attrDefault(t)
		case "BA_":
			r.attr(t)
		case "NS_":
			r.skipNewSymbols()
		default:
			r.skipStatement()
		}
	}
	r.flush()
	return r.res
}

// Bounds on what the reader keeps of what it could not read: a file of
// garbage must not cost memory or time per bad statement beyond a count. A
// message keeps its first problems (the first is what an error reports), so
// a used message with any problem is still refused.
const (
	maxProblemsPerMessage = 4
	maxGeneral            = 100
)

func (r *reader) onMessage(id dbc.MessageID, p problem) {
	if ps := r.res.problems[id]; len(ps) < maxProblemsPerMessage {
		r.res.problems[id] = append(ps, p)
	} else {
		r.res.more++
	}
}

func (r *reader) general(p problem) {
	if len(r.res.general) < maxGeneral {
		r.res.general = append(r.res.general, p)
	} else {
		r.res.more++
	}
}

func (r *reader) note(p problem) {
	if len(r.res.notes) < maxGeneral {
		r.res.notes = append(r.res.notes, p)
	} else {
		r.res.more++
	}
}

// flush ends the current message. Not inlined at its 3 calls (tboxd size).
//
//go:noinline
func (r *reader) flush() {
	r.inBroken = false
	if r.cur != nil {
		if len(r.sigs) > 0 {
			r.cur.Signals = append([]dbc.SignalDef(nil), r.sigs...)
			clear(r.sigs)
			r.sigs = r.sigs[:0]
		}
		r.res.defs = append(r.res.defs, r.cur)
		r.cur = nil
	}
}

// atEnd reports whether the statement has ended before the next token,
// consuming a ';' that ends it.
func (r *reader) atEnd() bool {
	t := r.lex.peek()
	if t.kind == tokEOF {
		return true
	}
	if t.kind == tokPunct && t.text[0] == ';' {
		r.lex.next()
		return true
	}
	return t.firstLine && t.kind == tokWord && isStatementKeyword(t.text)
}

// skipStatement skips to the end of the current statement.
func (r *reader) skipStatement() {
	for !r.atEnd() {
		r.lex.next()
	}
}

// skipNewSymbols skips the NS_ list (keywords, one per line) up to the BS_,
// BU_ or BO_ that follows it.
func (r *reader) skipNewSymbols() {
	for {
		t := r.lex.peek()
		if t.kind == tokEOF {
			return
		}
		if t.kind == tokWord && t.firstLine {
			switch string(t.text) {
			case "BS_", "BU_", "BO_":
				return
			}
		}
		r.lex.next()
	}
}

// stmtError is a statement that cannot be read.
type stmtError struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	line int
	msg  string
}

func (r *reader) expect(what string) *stmtError {
	t := r.lex.peek()
	if r.endsHere(t) && t.kind != tokPunct {
		return &stmtError{line: t.line, msg: fmt.Sprintf("expected %s, found the end of the statement", what)}
	}
	return &stmtError{line: t.line, msg: fmt.Sprintf("expected %s, found %s", what, t)}
}

// endsHere reports whether t is past the current statement (without
// consuming a ';').
func (r *reader) endsHere(t token) bool {
	return t.kind == tokEOF || (t.kind == tokPunct && t.text[0] == ';') ||
		(t.firstLine && t.kind == tokWord && isStatementKeyword(t.text))
}

func (r *reader) word(what string) (token, *stmtError) {
	t := r.lex.peek()
	if t.kind != tokWord || r.endsHere(t) {
		return t, r.expect(what)
	}
	return r.lex.next(), nil
}

func (r *reader) punct(c byte) *stmtError {
	t := r.lex.peek()
	if t.kind != tokPunct || t.text[0] != c {
		return r.expect(strconv.Quote(string(c)))
	}
	r.lex.next()
	return nil
}

func (r *reader) str(what string) (string, *stmtError) {
	t := r.lex.peek()
	if t.kind != tokString {
		return "", r.expect(what)
	}
	r.lex.next()
	return r.text(t.text), nil
}

// text returns a DBC string as UTF-8: a file that is not valid UTF-8 is
// read as Latin-1 (Vector's tools write Windows-1252).
func (r *reader) text(b []byte) string {
	if r.utf8 {
		return string(b)
	}
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

func isIdent(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ident reads a name: letters, digits and '_' (opendbc has names that begin
// with a digit, such as 2017_5 and 0_COUNTER).
func (r *reader) ident(what string) (string, *stmtError) {
	t := r.lex.peek()
	if t.kind != tokWord || r.endsHere(t) || !isIdent(t.text) {
		return "", r.expect(what)
	}
	r.lex.next()
	return string(t.text), nil
}

func (r *reader) uint(what string, bits int) (uint64, *stmtError) {
	t := r.lex.peek()
	if t.kind != tokWord || r.endsHere(t) {
		return 0, r.expect(what)
	}
	v, err := strconv.ParseUint(string(t.text), 10, bits)
	if err != nil {
		return 0, r.expect(what)
	}
	r.lex.next()
	return v, nil
}

func (r *reader) float(what string) (float64, *stmtError) {
	t := r.lex.peek()
	if t.kind != tokWord || r.endsHere(t) {
		return 0, r.expect(what)
	}
	v, err := parseNumber(string(t.text))
	if err != nil {
		return 0, r.expect(what)
	}
	r.lex.next()
	return v, nil
}

// parseNumber reads a DBC number: decimal, with an optional exponent; a
// leading '+' is allowed. Hexadecimal, infinities and NaN are not numbers
// here.
func parseNumber(s string) (float64, error) {
	if s == "" || strings.ContainsAny(s, "xXpP_") {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, strconv.ErrSyntax
	}
	return v, nil
}

func (r *reader) pos(line int) scanner.Position {
	return scanner.Position{Filename: r.file, Line: line}
}

// fail records a statement that cannot be read, against its message when it
// names one, and skips the rest of the statement.
func (r *reader) fail(kw token, id dbc.MessageID, hasID bool, e *stmtError) {
	p := problem{line: e.line, msg: string(kw.text) + ": " + e.msg}
	if hasID {
		r.onMessage(id, p)
	} else {
		r.general(p)
	}
	r.skipStatement()
}

// message reads "BO_ <id> <name>: <size> <transmitter>".
func (r *reader) message(kw token) {
	r.inBroken = true // until the header is read
	id64, e := r.uint("a message ID (decimal)", 32)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	id := dbc.MessageID(id64)
	name, e := r.ident("a message name")
	if e != nil {
		r.fail(kw, id, true, e)
		return
	}
	if e := r.punct(':'); e != nil {
		r.fail(kw, id, true, e)
		return
	}
	size, e := r.uint("the message size in bytes", 32)
	if e != nil {
		r.fail(kw, id, true, e)
		return
	}
	m := &dbc.MessageDef{Pos: r.pos(kw.line), MessageID: id, Name: dbc.Identifier(name), Size: size}
	if t, err := r.ident("the transmitter"); err == nil {
		m.Transmitter = dbc.Identifier(t)
	}
	r.skipStatement()
	r.cur, r.inBroken = m, false
}

// signal reads
// "SG_ <name> [M|m<n>|m<n>M] : <start>|<length>@<0|1><+|-> (<factor>,<offset>) [<min>|<max>] "<unit>" <receivers>".
func (r *reader) signal(kw token) {
	if r.cur == nil {
		if r.inBroken {
			r.skipStatement()
			return
		}
		r.fail(kw, 0, false, &stmtError{line: kw.line, msg: "a signal outside a message (no BO_ before it)"})
		return
	}
	id := r.cur.MessageID
	s, e := r.signalBody(kw)
	if e != nil {
		r.fail(kw, id, true, e)
		return
	}
	r.sigs = append(r.sigs, s)
	r.skipStatement()
}

func (r *reader) signalBody(kw token) (dbc.SignalDef, *stmtError) {
	s := dbc.SignalDef{Pos: r.pos(kw.line)}
	name, e := r.ident("a signal name")
	if e != nil {
		return s, e
	}
	s.Name = dbc.Identifier(name)
	if t := r.lex.peek(); t.kind == tokWord && !r.endsHere(t) {
		if err := parseMux(&s, string(t.text)); err != nil {
			return s, r.expect("a multiplexer indicator (M, m<n> or m<n>M) or ':'")
		}
		r.lex.next()
	}
	if e := r.punct(':'); e != nil {
		return s, e
	}
	if s.StartBit, e = r.uint("the start bit", 16); e != nil {
		return s, e
	}
	if e := r.punct('|'); e != nil {
		return s, e
	}
	if s.Size, e = r.uint("the length in bits", 16); e != nil {
		return s, e
	}
	if e := r.punct('@'); e != nil {
		return s, e
	}
	t := r.lex.peek()
	if t.kind != tokWord || len(t.text) != 2 || (t.text[0] != '0' && t.text[0] != '1') || (t.text[1] != '+' && t.text[1] != '-') {
		return s, r.expect("the byte order and sign (0+, 0-, 1+ or 1-)")
	}
	r.lex.next()
	s.IsBigEndian, s.IsSigned = t.text[0] == '0', t.text[1] == '-'
	if e := r.punct('('); e != nil {
		return s, e
	}
	if s.Factor, e = r.float("the factor"); e != nil {
		return s, e
	}
	if e := r.punct(','); e != nil {
		return s, e
	}
	if s.Offset, e = r.float("the offset"); e != nil {
		return s, e
	}
	if e := r.punct(')'); e != nil {
		return s, e
	}
	if e := r.punct('['); e != nil {
		return s, e
	}
	if s.Minimum, e = r.float("the minimum"); e != nil {
		return s, e
	}
	if e := r.punct('|'); e != nil {
		return s, e
	}
	if s.Maximum, e = r.float("the maximum"); e != nil {
		return s, e
	}
	if e := r.punct(']'); e != nil {
		return s, e
	}
	if s.Unit, e = r.str("the unit (a quoted string)"); e != nil {
		return s, e
	}
	// The receivers are not kept: the agent does not need them.
	for !r.endsHere(r.lex.peek()) {
		r.lex.next()
	}
	return s, nil
}

// parseMux reads a multiplexer indicator: M (the switch), m<n> (present when
// the switch is n) or m<n>M (both, extended multiplexing).
func parseMux(s *dbc.SignalDef, w string) error {
	if w == "M" {
		s.IsMultiplexerSwitch = true
		return nil
	}
	if len(w) < 2 || w[0] != 'm' {
		return strconv.ErrSyntax
	}
	w = w[1:]
	if strings.HasSuffix(w, "M") {
		s.IsMultiplexerSwitch = true
		w = w[:len(w)-1]
	}
	v, err := strconv.ParseUint(w, 10, 64)
	if err != nil {
		return err
	}
	s.IsMultiplexed, s.MultiplexerSwitch = true, v
	return nil
}

// comment reads CM_ "<text>"; CM_ BU_ <node> "<text>"; CM_ BO_ <id> "<text>";
// CM_ SG_ <id> <signal> "<text>"; CM_ EV_ <name> "<text>". Two forms found in
// opendbc are read as message comments, with a note: CM_ SG_ <id> "<text>"
// (no signal) and CM_ <id> "<text>".
func (r *reader) comment(kw token) {
	c := &dbc.CommentDef{Pos: r.pos(kw.line)}
	t := r.lex.peek()
	var e *stmtError
	switch {
	case t.kind == tokString:
		c.ObjectType = dbc.ObjectTypeUnspecified
	case t.kind == tokWord && (string(t.text) == "BU_" || string(t.text) == "EV_"):
		r.lex.next()
		var name string
		if name, e = r.ident("a name"); e != nil {
			r.fail(kw, 0, false, e)
			return
		}
		if string(t.text) == "BU_" {
			c.ObjectType, c.NodeName = dbc.ObjectTypeNetworkNode, dbc.Identifier(name)
		} else {
			c.ObjectType, c.EnvironmentVariableName = dbc.ObjectTypeEnvironmentVariable, dbc.Identifier(name)
		}
	case t.kind == tokWord && (string(t.text) == "BO_" || string(t.text) == "SG_"):
		r.lex.next()
		var id uint64
		if id, e = r.uint("a message ID", 32); e != nil {
			r.fail(kw, 0, false, e)
			return
		}
		c.ObjectType, c.MessageID = dbc.ObjectTypeMessage, dbc.MessageID(id)
		if string(t.text) == "SG_" {
			if n := r.lex.peek(); n.kind == tokString {
				r.note(problem{line: kw.line, msg: "CM_ SG_ without a signal name: read as a comment on message " + strconv.FormatUint(id, 10)})
			} else {
				var name string
				if name, e = r.ident("a signal name"); e != nil {
					r.fail(kw, c.MessageID, true, e)
					return
				}
				c.ObjectType, c.SignalName = dbc.ObjectTypeSignal, dbc.Identifier(name)
			}
		}
	case t.kind == tokWord && isIdent(t.text) && t.text[0] >= '0' && t.text[0] <= '9':
		id, err := strconv.ParseUint(string(t.text), 10, 32)
		if err != nil {
			r.fail(kw, 0, false, r.expect("BU_, BO_, SG_, EV_ or a string"))
			return
		}
		r.lex.next()
		c.ObjectType, c.MessageID = dbc.ObjectTypeMessage, dbc.MessageID(id)
		r.note(problem{line: kw.line, msg: "CM_ <id> without BO_: read as a comment on message " + strconv.FormatUint(id, 10)})
	default:
		r.fail(kw, 0, false, r.expect("BU_, BO_, SG_, EV_ or a string"))
		return
	}
	if c.Comment, e = r.str("the comment (a quoted string)"); e != nil {
		r.fail(kw, c.MessageID, c.ObjectType == dbc.ObjectTypeMessage || c.ObjectType == dbc.ObjectTypeSignal, e)
		return
	}
	r.res.defs = append(r.res.defs, c)
	r.skipStatement()
}

// values reads VAL_ <id> <signal> (<value> "<name>")* ; and skips the
// environment variable form VAL_ <name> ... ;.
func (r *reader) values(kw token) {
	t := r.lex.peek()
	if t.kind != tokWord || len(t.text) == 0 || t.text[0] < '0' || t.text[0] > '9' {
		r.skipStatement()
		return
	}
	id, e := r.uint("a message ID", 32)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	d := &dbc.ValueDescriptionsDef{Pos: r.pos(kw.line), ObjectType: dbc.ObjectTypeSignal, MessageID: dbc.MessageID(id)}
	name, e := r.ident("a signal name")
	if e != nil {
		r.fail(kw, d.MessageID, true, e)
		return
	}
	d.SignalName = dbc.Identifier(name)
	vals := r.vals[:0]
	defer func() { clear(vals); r.vals = vals[:0] }()
	for !r.atEnd() {
		vt := r.lex.peek()
		v, e := r.float("a raw value")
		if e != nil {
			r.fail(kw, d.MessageID, true, e)
			return
		}
		desc, e := r.str("the value's name (a quoted string)")
		if e != nil {
			r.fail(kw, d.MessageID, true, e)
			return
		}
		vals = append(vals, dbc.ValueDescriptionDef{Pos: r.pos(vt.line), Value: v, Description: desc})
	}
	if len(vals) > 0 {
		d.ValueDescriptions = append([]dbc.ValueDescriptionDef(nil), vals...)
	}
	r.res.defs = append(r.res.defs, d)
}

// valueType reads SIG_VALTYPE_ <id> <signal> [:] <0|1|2|3> ;.
func (r *reader) valueType(kw token) {
	id, e := r.uint("a message ID", 32)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	d := &dbc.SignalValueTypeDef{Pos: r.pos(kw.line), MessageID: dbc.MessageID(id)}
	name, e := r.ident("a signal name")
	if e != nil {
		r.fail(kw, d.MessageID, true, e)
		return
	}
	d.SignalName = dbc.Identifier(name)
	if t := r.lex.peek(); t.kind == tokPunct && t.text[0] == ':' {
		r.lex.next()
	}
	v, e := r.uint("the value type (0 integer, 1 float32, 2 float64)", 8)
	if e != nil || v > 3 {
		if e == nil {
			e = &stmtError{line: kw.line, msg: fmt.Sprintf("expected the value type (0 integer, 1 float32, 2 float64), found %d", v)}
		}
		r.fail(kw, d.MessageID, true, e)
		return
	}
	d.SignalValueType = dbc.SignalValueType(v)
	r.res.defs = append(r.res.defs, d)
	r.skipStatement()
}

// muxVal reads SG_MUL_VAL_ <id> <signal> <switch> <lo>-<hi>[, <lo>-<hi>]... ;.
func (r *reader) muxVal(kw token) {
	id, e := r.uint("a message ID", 32)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	mid := dbc.MessageID(id)
	sig, e := r.ident("a signal name")
	if e != nil {
		r.fail(kw, mid, true, e)
		return
	}
	sw, e := r.ident("the multiplexer switch's name")
	if e != nil {
		r.fail(kw, mid, true, e)
		return
	}
	mv := muxValue{line: kw.line, sw: sw}
	for !r.atEnd() {
		t := r.lex.peek()
		if t.kind == tokPunct && t.text[0] == ',' {
			r.lex.next()
			continue
		}
		lo, hi, ok := strings.Cut(string(t.text), "-")
		a, err1 := strconv.ParseUint(lo, 10, 64)
		b, err2 := strconv.ParseUint(hi, 10, 64)
		if t.kind != tokWord || !ok || err1 != nil || err2 != nil || a > b {
			r.fail(kw, mid, true, r.expect("a value range <lo>-<hi>"))
			return
		}
		r.lex.next()
		mv.ranges = append(mv.ranges, [2]uint64{a, b})
	}
	if len(mv.ranges) == 0 {
		r.onMessage(mid, problem{line: kw.line, msg: "SG_MUL_VAL_: expected a value range <lo>-<hi>, found none"})
		return
	}
	r.res.muxVals[sigRef{mid, sig}] = mv
}
