package profile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.einride.tech/can/pkg/dbc"
)

// maxCommentRepairs bounds how many refused CM_ statements Load blanks before
// it gives up on a DBC.
const maxCommentRepairs = 32

type sigRef struct {
	id   dbc.MessageID
	name string
}

// database is the part of a parsed DBC the profile needs.
type database struct {
	file        string
	messages    []*dbc.MessageDef
	byName      map[string]*dbc.MessageDef
	byID        map[dbc.MessageID]*dbc.MessageDef
	msgComment  map[dbc.MessageID]string
	sigComment  map[sigRef]string
	valueTables map[sigRef][]dbc.ValueDescriptionDef
	valueTypes  map[sigRef]dbc.SignalValueType
	// dropped holds the text of CM_ statements blanked to get past the
	// parser, for the privacy gate.
	dropped  []droppedComment
	warnings []string
}

type droppedComment struct {
	id    dbc.MessageID
	hasID bool
	text  string
}

// parseDBC parses a DBC with the einride parser, blanking CM_ statements the
// parser refuses (see the package documentation).
func parseDBC(file string, data []byte) (*database, error) {
	db := &database{file: file}
	buf := data
	for repairs := 0; ; repairs++ {
		defs, perr := safeParse(file, buf)
		if perr == nil {
			db.index(defs)
			return db, nil
		}
		line := perr.line
		if repairs >= maxCommentRepairs || line <= 0 {
			return nil, &ConfigError{File: file, Line: line, Err: fmt.Errorf("%w: DBC: %s", ErrSyntax, perr.reason)}
		}
		repaired, dropped, ok := blankComment(buf, line)
		if !ok {
			return nil, &ConfigError{File: file, Line: line, Err: fmt.Errorf("%w: DBC: %s", ErrSyntax, perr.reason)}
		}
		if len(db.dropped) == 0 {
			buf = append([]byte(nil), repaired...)
		} else {
			buf = repaired
		}
		db.dropped = append(db.dropped, dropped)
		db.warnings = append(db.warnings, fmt.Sprintf("%s:%d: comment statement skipped, the DBC parser refused it: %s", file, line, perr.reason))
	}
}

type parseError struct {
	line   int
	reason string
}

// safeParse runs the einride parser and turns any panic into an error: bad
// input must never crash the agent.
func safeParse(file string, data []byte) (defs []dbc.Def, perr *parseError) {
	defer func() {
		if r := recover(); r != nil {
			defs, perr = nil, &parseError{reason: fmt.Sprintf("parser failure: %v", r)}
		}
	}()
	p := dbc.NewParser(file, data)
	if err := p.Parse(); err != nil {
		var de dbc.Error
		if errors.As(err, &de) {
			return nil, &parseError{line: de.Position().Line, reason: de.Reason()}
		}
		return nil, &parseError{reason: err.Error()}
	}
	return p.Defs(), nil
}

var commentID = regexp.MustCompile(`^CM_\s+(?:SG_|BO_)\s+(\d+)`)

// blankComment replaces the CM_ statement that begins on line (1-based) with
// spaces, keeping newlines so that later line numbers stay right. It reports
// false when the line does not begin a CM_ statement.
func blankComment(data []byte, line int) ([]byte, droppedComment, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return nil, droppedComment{}, false
		}
		off += i + 1
	}
	for off < len(data) && (data[off] == ' ' || data[off] == '\t') {
		off++
	}
	if !bytes.HasPrefix(data[off:], []byte("CM_")) {
		return nil, droppedComment{}, false
	}
	end, inQuote := off, false
	for ; end < len(data); end++ {
		c := data[end]
		if inQuote && c == '\\' && end+1 < len(data) {
			end++
			continue
		}
		if c == '"' {
			inQuote = !inQuote
		}
		if c == ';' && !inQuote {
			end++
			break
		}
	}
	stmt := string(data[off:end])
	d := droppedComment{text: stmt}
	if m := commentID.FindStringSubmatch(stmt); m != nil {
		if v, err := strconv.ParseUint(m[1], 10, 32); err == nil {
			d.id, d.hasID = dbc.MessageID(v), true
		}
	}
	out := append([]byte(nil), data...)
	for i := off; i < end; i++ {
		if out[i] != '\n' && out[i] != '\r' {
			out[i] = ' '
		}
	}
	return out, d, true
}

func (db *database) index(defs []dbc.Def) {
	db.byName = make(map[string]*dbc.MessageDef)
	db.byID = make(map[dbc.MessageID]*dbc.MessageDef)
	db.msgComment = make(map[dbc.MessageID]string)
	db.sigComment = make(map[sigRef]string)
	db.valueTables = make(map[sigRef][]dbc.ValueDescriptionDef)
	db.valueTypes = make(map[sigRef]dbc.SignalValueType)
	for _, def := range defs {
		switch d := def.(type) {
		case *dbc.MessageDef:
			if d.MessageID == dbc.IndependentSignalsMessageID {
				continue
			}
			db.messages = append(db.messages, d)
			if _, dup := db.byName[string(d.Name)]; !dup {
				db.byName[string(d.Name)] = d
			}
			if _, dup := db.byID[d.MessageID]; !dup {
				db.byID[d.MessageID] = d
			}
		case *dbc.CommentDef:
			switch d.ObjectType {
			case dbc.ObjectTypeMessage:
				db.msgComment[d.MessageID] += d.Comment
			case dbc.ObjectTypeSignal:
				db.sigComment[sigRef{d.MessageID, string(d.SignalName)}] += d.Comment
			}
		case *dbc.ValueDescriptionsDef:
			if d.ObjectType == dbc.ObjectTypeSignal {
				db.valueTables[sigRef{d.MessageID, string(d.SignalName)}] = d.ValueDescriptions
			}
		case *dbc.SignalValueTypeDef:
			db.valueTypes[sigRef{d.MessageID, string(d.SignalName)}] = d.SignalValueType
		}
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
// its name or comment, or any of its signals' names or comments, or a
// comment the parser refused that names its ID.
func (db *database) biometric(m *dbc.MessageDef) (string, bool) {
	if w, ok := biometricMatch(string(m.Name)); ok {
		return fmt.Sprintf("its name matches %q", w), true
	}
	if w, ok := biometricMatch(db.msgComment[m.MessageID]); ok {
		return fmt.Sprintf("its comment %q matches %q", db.msgComment[m.MessageID], w), true
	}
	for _, s := range m.Signals {
		if w, ok := biometricMatch(string(s.Name)); ok {
			return fmt.Sprintf("it carries signal %s, whose name matches %q", s.Name, w), true
		}
		c := db.sigComment[sigRef{m.MessageID, string(s.Name)}]
		if w, ok := biometricMatch(c); ok {
			return fmt.Sprintf("it carries signal %s, whose comment %q matches %q", s.Name, c, w), true
		}
	}
	for _, d := range db.dropped {
		if d.hasID && d.id == m.MessageID {
			if w, ok := biometricMatch(d.text); ok {
				return fmt.Sprintf("a comment on it matches %q", w), true
			}
		}
	}
	return "", false
}
