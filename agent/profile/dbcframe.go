package profile

import (
	"fmt"
	"strconv"
	"strings"

	"go.einride.tech/can/pkg/dbc"

	"github.com/csop/tbox/can"
)

// CAN FD in a DBC. A message longer than 8 bytes can only travel as a CAN
// FD frame. A message of up to 8 bytes may too: Vector's tools mark it with
// the message attribute VFrameFormat, an enumeration whose labels ending in
// "_FD" (StandardCAN_FD, ExtendedCAN_FD) are the FD formats:
//
//	BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN",...,"StandardCAN_FD","ExtendedCAN_FD";
//	BA_DEF_DEF_ "VFrameFormat" "StandardCAN";
//	BA_ "VFrameFormat" BO_ 1952 14;
//
// The reader keeps these three statements for VFrameFormat and skips every
// other attribute, as before.

// frameFormatAttr is the attribute's name.
const frameFormatAttr = "VFrameFormat"

// vectorFrameFormats is Vector's enumeration, used when the DBC assigns
// VFrameFormat values without defining it.
var vectorFrameFormats = []string{
	"StandardCAN", "ExtendedCAN", "reserved", "J1939PG", "reserved", "reserved", "reserved", "reserved",
	"reserved", "reserved", "reserved", "reserved", "reserved", "reserved", "StandardCAN_FD", "ExtendedCAN_FD",
}

// frameFormats is what the reader found of VFrameFormat.
type frameFormats struct {
	enum    []string // BA_DEF_'s labels; nil when not defined
	enumSet bool
	def     string // BA_DEF_DEF_'s label; "" when none
	msgs    map[dbc.MessageID]attrValue
}

// attrValue is a VFrameFormat value as written: an enum index, or a label.
type attrValue struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	line  int
	index int // -1 when label is set
	label string
}

func isFDFormat(label string) bool { return strings.HasSuffix(strings.ToUpper(label), "_FD") }

// attrDef reads BA_DEF_ <object> "<name>" <type> ... ; keeping the labels of
// BO_ "VFrameFormat" ENUM.
func (r *reader) attrDef(kw token) {
	t := r.lex.peek()
	if t.kind != tokWord || string(t.text) != "BO_" {
		r.skipStatement()
		return
	}
	r.lex.next()
	name, e := r.str("the attribute's name")
	if e != nil || name != frameFormatAttr {
		r.skipStatement()
		return
	}
	typ, e := r.word("the attribute's type")
	if e != nil || string(typ.text) != "ENUM" {
		if e == nil {
			e = &stmtError{line: typ.line, msg: fmt.Sprintf("expected ENUM for %s, found %s", frameFormatAttr, typ)}
		}
		r.fail(kw, 0, false, e)
		return
	}
	var labels []string
	for !r.atEnd() {
		t := r.lex.peek()
		if t.kind == tokPunct && t.text[0] == ',' {
			r.lex.next()
			continue
		}
		s, e := r.str("an enumeration label")
		if e != nil {
			r.fail(kw, 0, false, e)
			return
		}
		labels = append(labels, s)
	}
	r.res.frames.enum, r.res.frames.enumSet = labels, true
}

// attrDefault reads BA_DEF_DEF_ "<name>" <value> ; keeping VFrameFormat's.
func (r *reader) attrDefault(kw token) {
	name, e := r.str("the attribute's name")
	if e != nil || name != frameFormatAttr {
		r.skipStatement()
		return
	}
	v, e := r.attrValue(kw.line)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	if v.index >= 0 {
		// A default given as an index is resolved with the enumeration
		// when the file has been read.
		v.label = "#" + strconv.Itoa(v.index)
	}
	r.res.frames.def = v.label
	r.skipStatement()
}

// attr reads BA_ "<name>" [BO_ <id>|...] <value> ; keeping VFrameFormat of
// a message.
func (r *reader) attr(kw token) {
	name, e := r.str("the attribute's name")
	if e != nil || name != frameFormatAttr {
		r.skipStatement()
		return
	}
	t := r.lex.peek()
	if t.kind != tokWord || string(t.text) != "BO_" {
		r.skipStatement()
		return
	}
	r.lex.next()
	id, e := r.uint("a message ID", 32)
	if e != nil {
		r.fail(kw, 0, false, e)
		return
	}
	mid := dbc.MessageID(id)
	v, e := r.attrValue(kw.line)
	if e != nil {
		r.fail(kw, mid, true, e)
		return
	}
	if r.res.frames.msgs == nil {
		r.res.frames.msgs = make(map[dbc.MessageID]attrValue)
	}
	r.res.frames.msgs[mid] = v
	r.skipStatement()
}

// attrValue reads an enumeration value: an index or a quoted label.
func (r *reader) attrValue(line int) (attrValue, *stmtError) {
	if t := r.lex.peek(); t.kind == tokString {
		s, _ := r.str("")
		return attrValue{line: line, index: -1, label: s}, nil
	}
	v, e := r.uint("the VFrameFormat value (an enumeration index or label)", 16)
	if e != nil {
		return attrValue{}, e
	}
	return attrValue{line: line, index: int(v)}, nil
}

// fdMessages resolves VFrameFormat: the messages it marks as CAN FD, and
// problems for values that name no label (recorded against their message,
// so that a profile using one is refused, as for any statement of a used
// message that cannot be read).
func (ff *frameFormats) fdMessages(problems map[dbc.MessageID][]problem, messages []*dbc.MessageDef) map[dbc.MessageID]bool {
	enum := ff.enum
	if !ff.enumSet {
		enum = vectorFrameFormats
	}
	resolve := func(v attrValue) (string, bool) {
		if v.index < 0 {
			for _, l := range enum {
				if l == v.label {
					return l, true
				}
			}
			return "", false
		}
		if v.index < len(enum) {
			return enum[v.index], true
		}
		return "", false
	}
	def := ff.def
	if n, ok := strings.CutPrefix(def, "#"); ok {
		i, _ := strconv.Atoi(n)
		def, _ = resolve(attrValue{index: i})
	}
	out := make(map[dbc.MessageID]bool)
	if isFDFormat(def) {
		for _, m := range messages {
			out[m.MessageID] = true
		}
	}
	for id, v := range ff.msgs {
		l, ok := resolve(v)
		if !ok {
			what := strconv.Quote(v.label)
			if v.index >= 0 {
				what = strconv.Itoa(v.index)
			}
			if ps := problems[id]; len(ps) < maxProblemsPerMessage {
				problems[id] = append(ps, problem{line: v.line, msg: fmt.Sprintf("BA_: %s value %s names none of the %d labels of its enumeration", frameFormatAttr, what, len(enum))})
			}
			continue
		}
		out[id] = isFDFormat(l)
	}
	return out
}

// frameFormat decides whether a profile message travels as CAN FD frames:
// the section's fd key when set, else the DBC (a size above 8 bytes, or
// VFrameFormat). fd = false cannot make a message of more than 8 bytes
// classic.
func frameFormat(loc locator, db *database, m *dbc.MessageDef, sc *sectionConfig, sec string) (bool, error) {
	long := m.Size > can.MaxDataLen
	if sc.FD == nil {
		return long || db.fd[m.MessageID], nil
	}
	if !*sc.FD && long {
		return false, loc.errorf(sec+".fd", "%w: fd = false, but message %s (%s:%d) has %d bytes: only a CAN FD frame carries more than 8", ErrValue, m.Name, db.file, m.Pos.Line, m.Size)
	}
	return *sc.FD, nil
}
