package profile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.einride.tech/can/pkg/dbc"
)

// corpusDir is the opendbc corpus (119 public DBC files, MIT, byte for
// byte): the repository's ../shared/opendbc, where CI clones it, or
// $OPENDBC_DIR (for a checkout elsewhere, such as a git worktree).
var corpusDir = func() string {
	if d := os.Getenv("OPENDBC_DIR"); d != "" {
		return d
	}
	return "../../../shared/opendbc"
}()

// corpusFiles returns the corpus's DBC files, or skips the test when the
// corpus is absent. In CI (CI set) the corpus is there by contract, so its
// absence fails: make test runs this package without -v, where a skip
// would pass unseen.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	if _, err := os.Stat(corpusDir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("opendbc corpus not found at %s, and CI=%s: CI lays ../shared/opendbc beside the repository: %v", corpusDir, os.Getenv("CI"), err)
		}
		t.Skipf("opendbc corpus not found at %s (the repository's ../shared/opendbc, where CI clones it; or set OPENDBC_DIR): %v", corpusDir, err)
	}
	var files []string
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".dbc") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func corpusName(p string) string {
	r, err := filepath.Rel(corpusDir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// TestCorpusReads reads every opendbc file: each yields messages, and every
// message of the file is there (counted by "BO_ " at the start of a line,
// after any indent, less Vector's pseudo-message).
func TestCorpusReads(t *testing.T) {
	files := corpusFiles(t)
	if len(files) != 119 {
		t.Errorf("corpus has %d DBC files, want 119", len(files))
	}
	for _, f := range files {
		data, err := ReadFileLimit(f, MaxDBCSize)
		if err != nil {
			t.Fatal(err)
		}
		db, err := parseDBC(f, data)
		if err != nil {
			t.Errorf("%s: %v", corpusName(f), err)
			continue
		}
		want, wantSigs, pseudo := 0, 0, false
		for _, line := range strings.Split(string(data), "\n") {
			t := strings.TrimLeft(line, " \t")
			switch {
			case strings.HasPrefix(t, "BO_ "):
				pseudo = strings.Contains(line, "VECTOR__INDEPENDENT_SIG_MSG")
				if !pseudo {
					want++
				}
			case strings.HasPrefix(t, "SG_ ") && !pseudo:
				wantSigs++
			}
		}
		if len(db.messages) != want {
			t.Errorf("%s: %d messages read, the file has %d BO_ lines", corpusName(f), len(db.messages), want)
		}
		// Every SG_ line is a signal read or a problem on its message.
		sigs, sgProblems := 0, 0
		for _, m := range db.messages {
			sigs += len(m.Signals)
		}
		for _, ps := range db.problems {
			for _, p := range ps {
				if strings.HasPrefix(p.msg, "SG_:") {
					sgProblems++
				}
			}
		}
		if sigs+sgProblems != wantSigs {
			t.Errorf("%s: %d signals read and %d refused, the file has %d SG_ lines", corpusName(f), sigs, sgProblems, wantSigs)
		}
	}
}

// TestCorpusDifferential compares our reader with einride's strict parser
// on every corpus file that parser reads: the same messages (ID, name,
// size), signals (name, start, length, byte order, sign, factor, offset,
// range, unit, multiplexing), value tables and value types.
func TestCorpusDifferential(t *testing.T) {
	both := 0
	for _, f := range corpusFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := dbc.NewParser(f, data)
		if err := p.Parse(); err != nil {
			continue
		}
		both++
		db, err := parseDBC(f, data)
		if err != nil {
			t.Errorf("%s: einride reads it, we do not: %v", corpusName(f), err)
			continue
		}
		if d := diffDefs(einrideView(p.Defs()), ourView(db)); d != "" {
			t.Errorf("%s: %s", corpusName(f), d)
		}
	}
	t.Logf("%d files read by both parsers compared", both)
	if both < 99 {
		t.Errorf("einride read %d corpus files, want at least 99 (the measured count)", both)
	}
}

// view is the decoding-relevant content of a DBC, as comparable text lines.
type view struct {
	messages []string
	values   map[string]string
	valTypes map[string]dbc.SignalValueType
}

func sigLine(id dbc.MessageID, s *dbc.SignalDef) string {
	return fmt.Sprintf("  %d.%s start=%d len=%d be=%v signed=%v factor=%v offset=%v min=%v max=%v unit=%q M=%v m=%v/%d",
		id, s.Name, s.StartBit, s.Size, s.IsBigEndian, s.IsSigned, s.Factor, s.Offset, s.Minimum, s.Maximum, s.Unit,
		s.IsMultiplexerSwitch, s.IsMultiplexed, s.MultiplexerSwitch)
}

func msgLines(m *dbc.MessageDef) []string {
	out := []string{fmt.Sprintf("BO_ %d %s size=%d line=%d", m.MessageID, m.Name, m.Size, m.Pos.Line)}
	for i := range m.Signals {
		out = append(out, sigLine(m.MessageID, &m.Signals[i]))
	}
	return out
}

func valueLine(vs []dbc.ValueDescriptionDef) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "%v=%q ", v.Value, v.Description)
	}
	return b.String()
}

func einrideView(defs []dbc.Def) view {
	v := view{values: map[string]string{}, valTypes: map[string]dbc.SignalValueType{}}
	for _, d := range defs {
		switch d := d.(type) {
		case *dbc.MessageDef:
			if d.MessageID == dbc.IndependentSignalsMessageID {
				continue
			}
			v.messages = append(v.messages, msgLines(d)...)
		case *dbc.ValueDescriptionsDef:
			if d.ObjectType == dbc.ObjectTypeSignal {
				v.values[fmt.Sprintf("%d.%s", d.MessageID, d.SignalName)] = valueLine(d.ValueDescriptions)
			}
		case *dbc.SignalValueTypeDef:
			v.valTypes[fmt.Sprintf("%d.%s", d.MessageID, d.SignalName)] = d.SignalValueType
		}
	}
	return v
}

func ourView(db *database) view {
	v := view{values: map[string]string{}, valTypes: map[string]dbc.SignalValueType{}}
	for _, m := range db.messages {
		v.messages = append(v.messages, msgLines(m)...)
	}
	for r, vs := range db.valueTables {
		v.values[fmt.Sprintf("%d.%s", r.id, r.name)] = valueLine(vs)
	}
	for r, t := range db.valueTypes {
		v.valTypes[fmt.Sprintf("%d.%s", r.id, r.name)] = t
	}
	return v
}

func diffDefs(want, got view) string {
	var d []string
	for i := 0; i < len(want.messages) || i < len(got.messages); i++ {
		var w, g string
		if i < len(want.messages) {
			w = want.messages[i]
		}
		if i < len(got.messages) {
			g = got.messages[i]
		}
		if w != g {
			d = append(d, fmt.Sprintf("einride %q, ours %q", w, g))
			break
		}
	}
	for k, w := range want.values {
		if g, ok := got.values[k]; !ok || g != w {
			d = append(d, fmt.Sprintf("VAL_ %s: einride %q, ours %q", k, w, g))
		}
	}
	if len(got.values) != len(want.values) {
		d = append(d, fmt.Sprintf("%d value tables, einride %d", len(got.values), len(want.values)))
	}
	for k, w := range want.valTypes {
		if g := got.valTypes[k]; g != w {
			d = append(d, fmt.Sprintf("SIG_VALTYPE_ %s: einride %v, ours %v", k, w, g))
		}
	}
	if len(got.valTypes) != len(want.valTypes) {
		d = append(d, fmt.Sprintf("%d value types, einride %d", len(got.valTypes), len(want.valTypes)))
	}
	if len(d) > 3 {
		d = d[:3]
	}
	return strings.Join(d, "; ")
}

// corpusDBC is one parsed file of the opendbc corpus.
type corpusDBC struct {
	file string
	db   *database
}

// corpusDBCs reads and parses every file of the corpus (skipping the test
// when the corpus is absent, as corpusFiles does).
func corpusDBCs(t testing.TB) []corpusDBC {
	t.Helper()
	var out []corpusDBC
	for _, f := range corpusFiles(t) {
		data, err := ReadFileLimit(f, MaxDBCSize)
		if err != nil {
			t.Fatal(err)
		}
		db, err := parseDBC(f, data)
		if err != nil {
			t.Fatalf("%s: %v", corpusName(f), err)
		}
		out = append(out, corpusDBC{f, db})
	}
	return out
}
