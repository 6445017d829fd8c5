package profile

import (
	"fmt"
	"strings"

	"go.einride.tech/can/pkg/dbc"

	"github.com/csop/tbox/can"
)

// Size limits of the files Load reads. A real DBC is at most a few MB (the
// largest of opendbc's 119 is 0.8 MB); a profile is a few hundred bytes.
const (
	MaxDBCSize     = 16 << 20
	MaxProfileSize = 1 << 20
)

type sigRef struct {
	id   dbc.MessageID
	name string
}

// database is the part of a read DBC the profile needs.
type database struct {
	file        string
	messages    []*dbc.MessageDef // in file order, without Vector's pseudo-message
	byName      map[string]*dbc.MessageDef
	keys        map[*dbc.MessageDef]can.Key
	badID       map[*dbc.MessageDef]string // why a message's ID cannot be on a bus
	msgComment  map[dbc.MessageID]string
	sigComment  map[sigRef]string
	valueTables map[sigRef][]dbc.ValueDescriptionDef
	valueTypes  map[sigRef]dbc.SignalValueType
	muxVals     map[sigRef]muxValue
	fd          map[dbc.MessageID]bool // VFrameFormat's verdict, where it has one
	problems    map[dbc.MessageID][]problem
	// notes are what was read liberally or not at all outside any message,
	// as "file:line: text".
	notes []string
}

// parseDBC reads a DBC (see dbcread.go). It fails only on a file that has
// no message and something it cannot read (not a DBC at all); what it cannot
// read in a DBC is in problems and notes. A DBC with no message is fine:
// opendbc's generator files hold only CM_ "IMPORT ..." lines.
func parseDBC(file string, data []byte) (*database, error) {
	res := readDBC(file, data)
	db := &database{file: file, problems: res.problems, muxVals: res.muxVals}
	for _, p := range res.general {
		db.notes = append(db.notes, fmt.Sprintf("%s:%d: %s (skipped)", file, p.line, p.msg))
	}
	for _, p := range res.notes {
		db.notes = append(db.notes, fmt.Sprintf("%s:%d: %s", file, p.line, p.msg))
	}
	if res.more > 0 {
		db.notes = append(db.notes, fmt.Sprintf("%s: %d more statements skipped or read liberally, not listed", file, res.more))
	}
	db.index(res.defs)
	db.fd = res.frames.fdMessages(db.problems, db.messages)
	if len(db.messages) == 0 && len(res.general) > 0 {
		p := res.general[0]
		return nil, dbErrorf(file, p.line, "", "%w: DBC: no message could be read, and %s", ErrSyntax, p.msg)
	}
	return db, nil
}

// messageKey returns the bus identifier of a DBC message ID. Bit 31 marks a
// 29-bit ID. An ID above 0x7FF without it (written by hand in many opendbc
// files, e.g. honda's 13274 and 318291879) is read as a 29-bit ID, the only
// frame that can carry it, with a note. An ID that fits neither is refused
// with why.
func messageKey(id dbc.MessageID) (key can.Key, note string, err error) {
	switch {
	case id&0x80000000 != 0:
		if v := uint32(id) &^ 0x80000000; v <= can.MaxExtendedID {
			return can.Key{ID: v, Extended: true}, "", nil
		}
		return can.Key{}, "", errorf("ID %d has the 29-bit flag but 0x%X is above 0x1FFFFFFF", uint32(id), uint32(id)&^0x80000000)
	case uint32(id) <= can.MaxID:
		return can.Key{ID: uint32(id)}, "", nil
	case uint32(id) <= can.MaxExtendedID:
		return can.Key{ID: uint32(id), Extended: true}, fmt.Sprintf("ID %d (0x%X) is above 0x7FF without the 29-bit flag: read as a 29-bit ID", uint32(id), uint32(id)), nil
	}
	return can.Key{}, "", errorf("ID %d (0x%X) is neither an 11-bit ID nor a 29-bit one (bit 31 and an ID up to 0x1FFFFFFF)", uint32(id), uint32(id))
}

// isPseudoMessage reports Vector's holder of signals that belong to no
// message, written with or without the 29-bit flag.
func isPseudoMessage(m *dbc.MessageDef) bool {
	return m.MessageID&^0x80000000 == 0x40000000 && m.Name == "VECTOR__INDEPENDENT_SIG_MSG"
}

func (db *database) index(defs []dbc.Def) {
	db.byName = make(map[string]*dbc.MessageDef)
	db.keys = make(map[*dbc.MessageDef]can.Key)
	db.badID = make(map[*dbc.MessageDef]string)
	db.msgComment = make(map[dbc.MessageID]string)
	db.sigComment = make(map[sigRef]string)
	db.valueTables = make(map[sigRef][]dbc.ValueDescriptionDef)
	db.valueTypes = make(map[sigRef]dbc.SignalValueType)
	// Several comments on one object are joined once, at the end: adding
	// them one by one would cost the square of their number.
	msgParts := make(map[dbc.MessageID][]string)
	sigParts := make(map[sigRef][]string)
	for _, def := range defs {
		switch d := def.(type) {
		case *dbc.MessageDef:
			if isPseudoMessage(d) {
				continue
			}
			db.messages = append(db.messages, d)
			if _, dup := db.byName[string(d.Name)]; !dup {
				db.byName[string(d.Name)] = d
			}
			k, note, err := messageKey(d.MessageID)
			if err != nil {
				db.badID[d] = err.Error()
				db.notes = append(db.notes, fmt.Sprintf("%s:%d: message %s: %s", db.file, d.Pos.Line, d.Name, err))
				continue
			}
			if note != "" {
				db.notes = append(db.notes, fmt.Sprintf("%s:%d: message %s: %s", db.file, d.Pos.Line, d.Name, note))
			}
			db.keys[d] = k
		case *dbc.CommentDef:
			switch d.ObjectType {
			case dbc.ObjectTypeMessage:
				msgParts[d.MessageID] = append(msgParts[d.MessageID], d.Comment)
			case dbc.ObjectTypeSignal:
				r := sigRef{d.MessageID, string(d.SignalName)}
				sigParts[r] = append(sigParts[r], d.Comment)
			}
		case *dbc.ValueDescriptionsDef:
			if d.ObjectType == dbc.ObjectTypeSignal {
				db.valueTables[sigRef{d.MessageID, string(d.SignalName)}] = d.ValueDescriptions
			}
		case *dbc.SignalValueTypeDef:
			db.valueTypes[sigRef{d.MessageID, string(d.SignalName)}] = d.SignalValueType
		}
	}
	for id, ps := range msgParts {
		db.msgComment[id] = strings.Join(ps, " ")
	}
	for r, ps := range sigParts {
		db.sigComment[r] = strings.Join(ps, " ")
	}
}

func (db *database) signal(m *dbc.MessageDef, name string) *dbc.SignalDef {
	for i := range m.Signals {
		if string(m.Signals[i].Name) == name {
			return &m.Signals[i]
		}
	}
	return nil
}

// suggestMessage returns a message name equal to name but for case, if any.
func (db *database) suggestMessage(name string) string {
	for _, m := range db.messages {
		if strings.EqualFold(string(m.Name), name) {
			return string(m.Name)
		}
	}
	return ""
}

// biometric reports why message m counts as biometric under the deny-list:
// its name or comment, or any of its signals' names or comments.
func (db *database) biometric(m *dbc.MessageDef) (string, bool) {
	if w, ok := biometricMatch(string(m.Name)); ok {
		return fmt.Sprintf("its name matches %q", w), true
	}
	if w, ok := biometricMatch(db.msgComment[m.MessageID]); ok {
		return fmt.Sprintf("its comment %q matches %q", db.msgComment[m.MessageID], w), true
	}
	for _, s := range m.Signals {
		if w, ok := biometricMatchIn(string(s.Name), string(m.Name)); ok {
			return fmt.Sprintf("it carries signal %s, whose name matches %q", s.Name, w), true
		}
		c := db.sigComment[sigRef{m.MessageID, string(s.Name)}]
		if w, ok := biometricMatchIn(c, string(s.Name)+" "+string(m.Name)); ok {
			return fmt.Sprintf("it carries signal %s, whose comment %q matches %q", s.Name, c, w), true
		}
	}
	return "", false
}
