package profile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/csop/tbox/can"
)

// loadPair loads a profile and its DBC given as text.
func loadPair(t *testing.T, toml, dbcText string) (*Profile, error) {
	t.Helper()
	fsys := fstest.MapFS{"car.toml": {Data: []byte(toml)}, "car.dbc": {Data: []byte(dbcText)}}
	return LoadFS(fsys, "car.toml")
}

const odoOnly = `dbc = "car.dbc"
[odometer]
message = "ODO"
signal = "Km"
[drive_mode]
message = "VCU"
signal = "Mode"
`

const twoMessages = `BO_ 1345 ODO: 8 CLU
 SG_ Km : 0|24@1+ (0.1,0) [0|0] "km" X
BO_ 1346 VCU: 8 VCU
 SG_ Mode : 0|3@1+ (1,0) [0|7] "" X
`

func TestReadForms(t *testing.T) {
	for _, c := range []struct {
		name, dbc string
		check     func(t *testing.T, p *Profile, db *database)
	}{
		{"CRLF line ends", strings.ReplaceAll("VERSION \"\"\n\nNS_ :\n  CM_\n  SG_MUL_VAL_\n\nBS_:\nBU_: A\n"+twoMessages+"VAL_ 1346 Mode 0 \"ECO\" 1 \"NORMAL\" ;\n", "\n", "\r\n"), func(t *testing.T, p *Profile, db *database) {
			if got := p.ModeNames(); strings.Join(got, ",") != "ECO,NORMAL" {
				t.Errorf("ModeNames = %q, want ECO,NORMAL", got)
			}
		}},
		{"value table with spaces and no ';'", twoMessages + "VAL_ 1346 Mode 0 \"P (Park) | Disengaged\" 1 \"Gear 1 | Engaged\"\nCM_ BO_ 1345 \"odometer\";\n", func(t *testing.T, p *Profile, db *database) {
			if got := p.ModeNames(); strings.Join(got, ",") != "P (Park) | Disengaged,Gear 1 | Engaged" {
				t.Errorf("ModeNames = %q", got)
			}
		}},
		{"29-bit ID with the flag, and one above 0x7FF without it", strings.Replace(strings.Replace(twoMessages, "BO_ 1345", "BO_ 2566834709", 1), "BO_ 1346", "BO_ 13274", 1), func(t *testing.T, p *Profile, db *database) {
			if s, _ := p.Signal(Odometer); s.Key != (can.Key{ID: 0x18FECA15, Extended: true}) {
				t.Errorf("odometer key %v, want 18FECA15 extended", s.Key)
			}
			if s, _ := p.Signal(DriveMode); s.Key != (can.Key{ID: 13274, Extended: true}) {
				t.Errorf("drive mode key %v, want 000033DA extended", s.Key)
			}
			if w := strings.Join(p.Warnings(), "\n"); !strings.Contains(w, "car.dbc:3: message VCU: ID 13274 (0x33DA) is above 0x7FF without the 29-bit flag") {
				t.Errorf("warnings %q do not note the liberal reading of ID 13274", w)
			}
		}},
		{"names that begin with a digit", strings.Replace(twoMessages, " SG_ Km :", " SG_ 0_X : 24|4@1+ (1,0) [0|0] \"\" X\n SG_ Km :", 1) + "BO_ 1275 2017_5: 8 XXX\n SG_ counter : 4|5@0+ (1,0) [0|255] \"\" XXX\n", func(t *testing.T, p *Profile, db *database) {
			if db.byName["2017_5"] == nil || db.signal(db.byName["ODO"], "0_X") == nil {
				t.Errorf("message 2017_5 or signal 0_X not read")
			}
		}},
		{"SIG_VALTYPE_ float32 and float64", strings.Replace(twoMessages, "0|24@1+ (0.1,0)", "0|64@1- (1,0)", 1) + "SIG_VALTYPE_ 1345 Km : 2;\n", func(t *testing.T, p *Profile, db *database) {
			if p.sigs[Odometer].f.enc != encFloat64 {
				t.Errorf("odometer encoding %d, want float64", p.sigs[Odometer].f.enc)
			}
		}},
		{"extended multiplexing (SG_MUL_VAL_)", `BO_ 1345 ODO: 8 CLU
 SG_ Page M : 0|4@1+ (1,0) [0|0] "" X
 SG_ Sub m1M : 4|4@1+ (1,0) [0|0] "" X
 SG_ Km m2 : 8|24@1+ (0.1,0) [0|0] "km" X
BO_ 1346 VCU: 8 VCU
 SG_ Mode : 0|3@1+ (1,0) [0|7] "" X
SG_MUL_VAL_ 1345 Sub Page 1-1;
SG_MUL_VAL_ 1345 Km Page 2-3, 5-5;
`, func(t *testing.T, p *Profile, db *database) {
			d := p.NewDecoder()
			for _, c := range []struct {
				page byte
				want int
			}{{1, 0}, {2, 1}, {3, 1}, {4, 0}, {5, 1}} {
				f := can.Frame{ID: 1345, Len: 8, Data: [64]byte{c.page, 10}}
				if got := len(d.Decode(&f, nil)); got != c.want {
					t.Errorf("page %d: %d readings, want %d", c.page, got, c.want)
				}
			}
		}},
		{"bare m in a message the profile does not use", twoMessages + "BO_ 648 Motor_2: 8 Motor\n SG_ MO2_Mp_Code m : 6|2@1+ (1,0) [0|3] \"\" Gateway\n SG_ MO2_BLS : 16|1@1+ (1,0) [0|1] \"\" Gateway\n", func(t *testing.T, p *Profile, db *database) {
			w := strings.Join(p.Warnings(), "\n")
			if !strings.Contains(w, "car.dbc:6: SG_: expected a multiplexer indicator (M, m<n> or m<n>M) or ':', found \"m\"") {
				t.Errorf("warnings %q do not name car.dbc:6 and what was expected", w)
			}
			if m := db.byName["Motor_2"]; m == nil || len(m.Signals) != 1 || m.Signals[0].Name != "MO2_BLS" {
				t.Errorf("Motor_2 should keep its readable signal MO2_BLS: %+v", m)
			}
		}},
		{"signal comment without a signal, CM_ <id>, CM_ without ';'", twoMessages + "CM_ SG_ 1345 \"odometer\";\nCM_ 1346 \"vcu\";\nCM_ \"general\"\nBO_ 9 X: 8 A\n", func(t *testing.T, p *Profile, db *database) {
			if db.msgComment[1345] != "odometer" || db.msgComment[1346] != "vcu" || db.byName["X"] == nil {
				t.Errorf("comments %v, message X %v", db.msgComment, db.byName["X"])
			}
		}},
		{"Latin-1 unit", strings.Replace(twoMessages, `BO_ 1346 VCU: 8 VCU`, "BO_ 1346 VCU: 8 VCU\n SG_ T : 8|8@1+ (1,0) [0|0] \"\xb0C\" X", 1), func(t *testing.T, p *Profile, db *database) {
			if s := db.signal(db.byName["VCU"], "T"); s == nil || s.Unit != "°C" {
				t.Errorf("unit %+v, want °C", s)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := loadPair(t, odoOnly, c.dbc)
			if err != nil {
				t.Fatal(err)
			}
			db, err := parseDBC("car.dbc", []byte(c.dbc))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, p, db)
		})
	}
}

// TestReadErrorInUsedMessage: a statement that cannot be read inside a
// message the profile uses is an error naming file:line and what was
// expected; a broken value table or value type of it too.
func TestReadErrorInUsedMessage(t *testing.T) {
	for _, c := range []struct{ name, dbc, want string }{
		{"bare m", strings.Replace(twoMessages, " SG_ Km :", " SG_ Mp m : 30|2@1+ (1,0) [0|3] \"\" X\n SG_ Km :", 1), `car.dbc:2: odometer.message: syntax error: DBC: SG_: expected a multiplexer indicator (M, m<n> or m<n>M) or ':', found "m" (message ODO, ID 0x541, is used by the profile)`},
		{"bad factor", strings.Replace(twoMessages, "(1,0)", "(1;0)", 1), `car.dbc:4: drive_mode.message: syntax error: DBC: SG_: expected ",", found ";"`},
		{"bad VAL_", twoMessages + "VAL_ 1346 Mode 0 ECO ;\n", `car.dbc:5: drive_mode.message: syntax error: DBC: VAL_: expected the value's name (a quoted string), found "ECO"`},
		{"bad BO_ header on the ID", twoMessages + "BO_ 1345 : 8 X\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\n", `car.dbc:5: odometer.message: syntax error: DBC: BO_: expected a message name, found ":"`},
		{"bad SIG_VALTYPE_", twoMessages + "SIG_VALTYPE_ 1345 Km : 7;\n", `car.dbc:5: odometer.message: syntax error: DBC: SIG_VALTYPE_: expected the value type (0 integer, 1 float32, 2 float64), found 7`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadPair(t, odoOnly, c.dbc)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Load: %v, want ErrSyntax", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error\n %s\nwant it to begin\n %s", err, c.want)
			}
		})
	}
}

// TestAliasRefused is the walk-around of issue 15: a second message on the
// ID of DMS_Face, with a harmless name, named by the profile.
func TestAliasRefused(t *testing.T) {
	ev, err := os.ReadFile("testdata/ev.dbc")
	if err != nil {
		t.Fatal(err)
	}
	alias := string(ev) + "\nBO_ 1441 Odo_Alias: 8 DMS\n SG_ Km : 7|32@0+ (0.01,0) [0|0] \"km\" TBOX\n"
	for _, c := range []struct{ name, privacy string }{
		{"DMS_Face listed", `biometric_messages = ["DMS_Face"]`},
		{"DMS_Face not listed (its name and comment are on the deny-list)", `biometric_messages = []`},
	} {
		t.Run(c.name, func(t *testing.T) {
			toml := "dbc = \"car.dbc\"\n[odometer]\nmessage = \"Odo_Alias\"\nsignal = \"Km\"\n[drive_mode]\nmessage = \"VCU_Status\"\nsignal = \"DriveMode\"\n[privacy]\n" + c.privacy + "\n"
			_, err := loadPair(t, toml, alias)
			if !errors.Is(err, ErrBiometric) {
				t.Fatalf("Load: %v, want ErrBiometric", err)
			}
			for _, want := range []string{"Odo_Alias", "DMS_Face", "alias", "0x5A1"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
	// The same ID spelled twice: with the 29-bit flag, and above 0x7FF without it.
	dbcText := "BO_ 2147496922 DMS_Face: 8 DMS\n SG_ GazeYaw : 8|12@1- (0.1,0) [0|0] \"deg\" X\n" + twoMessages + "BO_ 13274 Innocent: 8 X\n SG_ Km : 0|24@1+ (0.1,0) [0|0] \"km\" X\n"
	_, err = loadPair(t, strings.Replace(odoOnly, `message = "ODO"`, `message = "Innocent"`, 1), dbcText)
	if !errors.Is(err, ErrBiometric) || !strings.Contains(err.Error(), "DMS_Face") {
		t.Errorf("alias by another spelling of the ID: %v, want ErrBiometric naming DMS_Face", err)
	}
	// A comment on another spelling of the ID, with no BO_ of that spelling.
	dbcText = twoMessages + "BO_ 2147496922 Innocent: 8 X\n SG_ Km : 0|24@1+ (0.1,0) [0|0] \"km\" X\nCM_ BO_ 13274 \"Driver monitoring camera\";\n"
	_, err = loadPair(t, strings.Replace(odoOnly, `message = "ODO"`, `message = "Innocent"`, 1), dbcText)
	if !errors.Is(err, ErrBiometric) || !strings.Contains(err.Error(), "message ID 13274") {
		t.Errorf("comment on another spelling of the ID: %v, want ErrBiometric naming ID 13274", err)
	}
	// Two messages of one name: which one is meant cannot be told.
	_, err = loadPair(t, odoOnly, twoMessages+"BO_ 1441 ODO: 8 DMS\n SG_ Km : 0|24@1+ (0.1,0) [0|0] \"km\" X\n")
	if !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "car.dbc:1 and car.dbc:5") {
		t.Errorf("duplicate message name: %v, want ErrValue naming car.dbc:1 and car.dbc:5", err)
	}
	// The hex listing covers every message on the ID.
	_, err = loadPair(t, odoOnly+"[privacy]\nbiometric_messages = [\"0x541\"]\n", twoMessages)
	if !errors.Is(err, ErrBiometric) || !strings.Contains(err.Error(), `"0x541"`) {
		t.Errorf("hex-listed ID: %v, want ErrBiometric naming \"0x541\"", err)
	}
}

func TestDenyListGaps(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"DriverHR", true}, {"HR_Occupant", true}, {"Occupant_BPM", true}, {"Driver heart rate", true},
		{"HR_Mode", false}, {"LidarHR", false}, {"BPM_Status", false}, // high resolution; body power module
		{"DriverYawning", true}, {"Yawn_Cnt", true}, {"DriverSleepState", true}, {"Drowsy", true},
		{"Microsleep_Warn", true}, {"Sleepiness_Lvl", true},
		{"NM_Sleep_Ind", false}, {"SleepAck", false}, {"BusSleep", false}, // network management
		{"Breath_Rate", true}, {"RespirationRate", true}, {"Alcohol_Level", true}, {"DriverBAC", true},
		{"EEG_Ch1", true}, {"EMG_Raw", true}, {"SkinConductance", true}, {"GSR_Level", true}, {"Electrodermal", true},
		{"FUEL_ALCOHOL_PERCNT", false}, {"LKAS_HEARTBIT", false}, {"ECG_Data2_FD1", false}, {"DTE_HPCMtoECG", false},
		{"AccBrkPulse_B_Rq", false}, {"SteWhlCtl_Voice_PTT", false},
		// Unicode look-alikes: Cyrillic а/с/е, fullwidth, mathematical bold, ligature, zero-width space, accents.
		{"Fасе_ID", true}, {"ＦａｃｅＩＤ", true}, {"𝐅𝐚𝐜𝐞", true}, {"ﬁngerprint", true}, {"Fa\u200bce", true}, {"Fäçé", true},
		{"Ηeart rate", true}, {"Ѕleepy driver", true},
	} {
		if _, got := biometricMatch(c.text); got != c.want {
			t.Errorf("biometricMatch(%q) = %v, want %v (folded %q, words %q)", c.text, got, c.want, foldASCII(c.text), splitWords(foldASCII(c.text)))
		}
	}
}

// TestBoundedReads: a DBC or profile that is not a regular file, or too
// large, is refused before it is read.
func TestBoundedReads(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big.dbc", "")
	if err := os.Truncate(big, MaxDBCSize+1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dbc string
		want      error
	}{
		{"/dev/zero", "/dev/zero", ErrNotRegular},
		{"a directory", dir, ErrNotRegular},
		{"above MaxDBCSize", big, ErrTooLarge},
		{"absent", filepath.Join(dir, "none.dbc"), ErrMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			prof := write("p.toml", "dbc = \""+c.dbc+"\"\n")
			_, err := Load(prof)
			if !errors.Is(err, c.want) {
				t.Fatalf("Load: %v, want %v", err, c.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "dbc" || ce.Line != 1 {
				t.Errorf("error %v should name the profile's dbc key at line 1", err)
			}
		})
	}
	if _, err := Load("/dev/zero"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Load(/dev/zero): %v, want ErrNotRegular", err)
	}
	bigProfile := write("big.toml", "")
	if err := os.Truncate(bigProfile, MaxProfileSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bigProfile); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load(big profile): %v, want ErrTooLarge", err)
	}
	if _, err := LoadFS(fstest.MapFS{"p.toml": {Data: make([]byte, MaxProfileSize+1)}}, "p.toml"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("LoadFS(big profile): %v, want ErrTooLarge", err)
	}
}

// TestCorpusVWPQ: the file of issue 15. Motor_2's bare m (line 394) is a
// warning; the odometer in Kombi_3 loads and decodes.
func TestCorpusVWPQ(t *testing.T) {
	corpusFiles(t)
	abs, err := filepath.Abs(filepath.Join(corpusDir, "dbc", "vw_pq.dbc"))
	if err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(t.TempDir(), "vw.toml")
	toml := "dbc = \"" + abs + "\"\n[odometer]\nmessage = \"Kombi_3\"\nsignal = \"Kilometerstand\"\n[drive_mode]\nmessage = \"Waehlhebel_1\"\nsignal = \"Waehlhebelposition\"\n[speed]\nmessage = \"Kombi_1\"\nsignal = \"Geschwindigkeit__Kombi_1_\"\n"
	if err := os.WriteFile(prof, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(prof)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(p.Warnings(), "\n"); !strings.Contains(w, "vw_pq.dbc:394: SG_: expected a multiplexer indicator") {
		t.Errorf("warnings do not name vw_pq.dbc:394:\n%s", w)
	}
	f := can.Frame{ID: 1312, Len: 8}
	f.Data[5], f.Data[6] = 0x39, 0x30 // bits 40..59 = 0x03039 = 12345 km
	rs := p.NewDecoder().Decode(&f, nil)
	if len(rs) != 1 || rs[0].Value != 12345000 {
		t.Errorf("Kombi_3 decodes to %+v, want 12345000 m", rs)
	}
}

// TestNotReadings: a raw odometer or speed value the value table names, and
// a frame too short to decode, are not readings; they are counted.
func TestNotReadings(t *testing.T) {
	text := twoMessages + "VAL_ 1345 Km 16777215 \"SNA\" 16777214 \"Init\" ;\nVAL_ 1346 Mode 7 \"Invalid\" ;\n"
	p, err := loadPair(t, odoOnly, text)
	if err != nil {
		t.Fatal(err)
	}
	d := p.NewDecoder()
	nr := d.NotReadings()
	for _, c := range []struct {
		name  string
		frame can.Frame
		want  int
	}{
		{"a reading", can.Frame{ID: 1345, Len: 8, Data: [64]byte{0x39, 0x30}}, 1},
		{"SNA", can.Frame{ID: 1345, Len: 8, Data: [64]byte{0xFF, 0xFF, 0xFF}}, 0},
		{"Init", can.Frame{ID: 1345, Len: 8, Data: [64]byte{0xFE, 0xFF, 0xFF}}, 0},
		{"too short", can.Frame{ID: 1345, Len: 2, Data: [64]byte{1, 2}}, 0},
		// A drive mode's value table names modes: "Invalid" is a mode name
		// here, reported as such.
		{"drive mode 7", can.Frame{ID: 1346, Len: 8, Data: [64]byte{7}}, 1},
	} {
		if got := len(d.Decode(&c.frame, nil)); got != c.want {
			t.Errorf("%s: %d readings, want %d", c.name, got, c.want)
		}
	}
	if nr.Named(Odometer) != 2 || nr.Undecodable(Odometer) != 1 || nr.Named(DriveMode) != 0 {
		t.Errorf("odometer named %d undecodable %d, drive mode named %d; want 2, 1, 0",
			nr.Named(Odometer), nr.Undecodable(Odometer), nr.Named(DriveMode))
	}
	if st := d.Stats(); st.Named != 2 || st.ShortFrames != 1 || st.Readings != 2 {
		t.Errorf("Stats %+v, want Named 2, ShortFrames 1, Readings 2", st)
	}

	// The physical value of the all-ones pattern, as Tesla's Model 3 DBC
	// writes it: VAL_ 4294967 "SNA" on a 32-bit, 0.001 km signal.
	text = strings.Replace(twoMessages, "0|24@1+ (0.1,0)", "0|32@1+ (0.001,0)", 1) + "VAL_ 1345 Km 4294967 \"SNA\" ;\n"
	if p, err = loadPair(t, odoOnly, text); err != nil {
		t.Fatal(err)
	}
	d = p.NewDecoder()
	sna := can.Frame{ID: 1345, Len: 8, Data: [64]byte{0xFF, 0xFF, 0xFF, 0xFF}}
	if rs := d.Decode(&sna, nil); len(rs) != 0 || d.NotReadings().Named(Odometer) != 1 {
		t.Errorf("all-ones raw: readings %+v, named %d; want none and 1", rs, d.NotReadings().Named(Odometer))
	}
	lit := can.Frame{ID: 1345, Len: 8, Data: [64]byte{0x37, 0x89, 0x41, 0x00}} // raw 4294967: 4294.967 km
	if rs := d.Decode(&lit, nil); len(rs) != 1 || rs[0].Value != 4294967 {
		t.Errorf("raw 4294967: readings %+v, want 4294967 m", rs)
	}
}

// TestReadBounded: garbage costs the reader linear time and a bounded list
// of warnings. (Before the bounds, 4 MB of unterminated comments on one
// message took 3.5 minutes: each comment was appended to the last.) The
// time bound is loose, for a loaded machine; a quadratic reader misses it
// by far.
func TestReadBounded(t *testing.T) {
	for name, unit := range map[string]string{
		"semicolons":              ";",
		"unterminated strings":    "\"\\\n",
		"comments on one message": "CM_ BO_ 1 \"abc\n",
		"bad signals":             "BO_ 1 A: 8 X\n SG_ S m : 0|8@1+ (1,0) [0|0] \"\" X\n",
		"bad value tables":        "VAL_ 1 S 1 a 2 b\n",
	} {
		t.Run(name, func(t *testing.T) {
			data := bytes.Repeat([]byte(unit), (1<<20)/len(unit))
			start := time.Now()
			db, err := parseDBC("x.dbc", data)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%d bytes read in %v", len(data), d)
			}
			if err != nil {
				return
			}
			if n := len(db.notes); n > 2*maxGeneral+1 {
				t.Errorf("%d notes kept", n)
			}
			for id, ps := range db.problems {
				if len(ps) > maxProblemsPerMessage {
					t.Errorf("message %d keeps %d problems", id, len(ps))
				}
			}
		})
	}
}
