package profile

import (
	"fmt"
	"sort"
	"strconv"

	"go.einride.tech/can/pkg/dbc"

	"github.com/csop/tbox/can"
)

// DBCFile is a DBC as the agent reads it, for tboxctl dbc.
type DBCFile struct {
	File     string
	Messages []DBCMessage // in file order; without messages whose ID no bus can carry
	// Warnings are what the reader skipped or read liberally, as
	// "file:line: what". Inside a message a profile uses, the same
	// problem is an error of Load.
	Warnings []string
}

// DBCMessage is one message of a DBC.
type DBCMessage struct {
	ID       uint32      `json:"id"` // the bus identifier: 11 or 29 bits
	Extended bool        `json:"extended"`
	Name     string      `json:"name"`
	Length   uint64      `json:"length"` // bytes
	Signals  []DBCSignal `json:"signals"`
	Line     int         `json:"-"`
}

// DBCSignal is one signal of a message, with start and length as the DBC
// writes them.
type DBCSignal struct {
	Name      string  `json:"name"`
	Start     uint64  `json:"start"`
	Length    uint64  `json:"length"`
	BigEndian bool    `json:"big_endian"`
	Signed    bool    `json:"signed"`
	Factor    float64 `json:"factor"`
	Offset    float64 `json:"offset"`
	Unit      string  `json:"unit"`
	// Mux is the DBC's multiplexer indicator: "M" (the switch), "m<n>"
	// (present when the switch is n), "m<n>M" (both), or "" (none).
	Mux string `json:"mux"`
	// Values is the VAL_ table, raw value (in decimal) to name.
	Values map[string]string `json:"values"`
}

// ReadDBC reads a DBC file as Load does (bounded by MaxDBCSize, regular
// files only). It fails only when the file cannot be read or holds no DBC
// at all; what it skips is in Warnings.
func ReadDBC(path string) (*DBCFile, error) {
	data, err := ReadFileLimit(path, MaxDBCSize)
	if err != nil {
		return nil, &ConfigError{File: path, Err: errorf("DBC: %w", err)}
	}
	db, err := parseDBC(path, data)
	if err != nil {
		return nil, err
	}
	out := &DBCFile{File: path, Warnings: append(db.notes, db.problemWarnings(nil, "")...)}
	for _, m := range db.messages {
		k, ok := db.keys[m]
		if !ok {
			continue
		}
		dm := DBCMessage{ID: k.ID, Extended: k.Extended, Name: string(m.Name), Length: m.Size, Line: m.Pos.Line, Signals: make([]DBCSignal, 0, len(m.Signals))}
		for i := range m.Signals {
			s := &m.Signals[i]
			ds := DBCSignal{
				Name: string(s.Name), Start: s.StartBit, Length: s.Size, BigEndian: s.IsBigEndian, Signed: s.IsSigned,
				Factor: s.Factor, Offset: s.Offset, Unit: s.Unit, Mux: muxIndicator(s), Values: map[string]string{},
			}
			for _, v := range db.valueTables[sigRef{m.MessageID, string(s.Name)}] {
				ds.Values[strconv.FormatFloat(v.Value, 'f', -1, 64)] = v.Description
			}
			dm.Signals = append(dm.Signals, ds)
		}
		out.Messages = append(out.Messages, dm)
	}
	return out, nil
}

func muxIndicator(s *dbc.SignalDef) string {
	switch {
	case s.IsMultiplexed && s.IsMultiplexerSwitch:
		return "m" + strconv.FormatUint(s.MultiplexerSwitch, 10) + "M"
	case s.IsMultiplexed:
		return "m" + strconv.FormatUint(s.MultiplexerSwitch, 10)
	case s.IsMultiplexerSwitch:
		return "M"
	}
	return ""
}

// problemWarnings returns, as warnings in line order, the statements that
// could not be read inside messages on IDs not in used (nil: none is used).
func (db *database) problemWarnings(used map[can.Key]bool, why string) []string {
	var ws []problem // line, and the warning's text
	for id, ps := range db.problems {
		if k, _, err := messageKey(id); err == nil && used[k] {
			continue
		}
		for _, p := range ps {
			ws = append(ws, problem{line: p.line, msg: fmt.Sprintf("%s:%d: %s (in message ID %d%s: skipped)", db.file, p.line, p.msg, uint32(id), why)})
		}
	}
	sort.Sort(byLine(ws))
	out := make([]string, len(ws))
	for i, x := range ws {
		out[i] = x.msg
	}
	return out
}
