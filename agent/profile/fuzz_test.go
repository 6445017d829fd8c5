package profile

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/csop/tbox/can"
)

// FuzzLoadProfile feeds random profile and DBC bytes to the loader: it must
// return a profile or a *ConfigError, never panic.
func FuzzLoadProfile(f *testing.F) {
	evTOML, _ := os.ReadFile("testdata/ev.toml")
	evDBC, _ := os.ReadFile("testdata/ev.dbc")
	muxTOML, _ := os.ReadFile("testdata/ev_mux.toml")
	honda, _ := os.ReadFile("testdata/public/honda_civic_touring_2016_can_generated.dbc")
	hondaTOML, _ := os.ReadFile("testdata/public/honda_civic_touring_2016.toml")
	broken, _ := os.ReadFile("testdata/bad/broken.dbc")
	f.Add(evTOML, evDBC)
	f.Add(muxTOML, evDBC)
	f.Add([]byte("dbc = \"ev.dbc\"\n"+string(hondaTOML[len("dbc = \"honda_civic_touring_2016_can_generated.dbc\"\n"):])), honda)
	f.Add(evTOML, broken)
	f.Add([]byte("dbc = \"ev.dbc\"\n[odometer]\nmessage=\"A\"\nsignal=\"B\"\n"), []byte("BO_ 1 A: 8 X\n SG_ B : 63|64@0- (1,0) [0|0] \"m\" X\nCM_ SG_ 1 \"x"))
	f.Fuzz(func(t *testing.T, profileData, dbcData []byte) {
		fsys := fstest.MapFS{"car.toml": {Data: profileData}, "ev.dbc": {Data: dbcData}}
		p, err := LoadFS(fsys, "car.toml")
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			return
		}
		// A valid profile decodes its own frames.
		d := p.NewDecoder()
		for k := Kind(0); k < numKinds; k++ {
			if !p.Has(k) {
				continue
			}
			fr, err := p.Encode(k, 0)
			if err != nil {
				continue // 0 may be out of an offset signal's range
			}
			d.Decode(&fr, nil)
		}
	})
}

// FuzzDecode runs random frames through compiled decoders: no panic, and
// every value is finite.
func FuzzDecode(f *testing.F) {
	var decoders []*Decoder
	for _, path := range []string{"testdata/ev.toml", "testdata/ev_alt.toml", "testdata/ev_mux.toml", "testdata/ev_float.toml", "testdata/public/honda_civic_touring_2016.toml", "testdata/public/hyundai_i30_2014.toml", "testdata/ev_obd.toml", "testdata/ev_uds.toml"} {
		p, err := Load(path)
		if err != nil {
			f.Fatal(err)
		}
		decoders = append(decoders, p.NewDecoder())
	}
	f.Add(uint32(0x541), uint8(0), uint8(8), "can0", []byte{0, 0x12, 0xD6, 0x87})
	f.Add(uint32(0x5C0), uint8(0), uint8(8), "", []byte{3, 1, 2, 3})
	f.Add(uint32(0x18FEC1EE), uint8(can.Extended), uint8(8), "can0", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint32(0x3A1), uint8(0), uint8(8), "can0", []byte{0, 0, 0, 0, 0, 0, 0xF8, 0x7F})
	f.Add(uint32(0x3A0), uint8(can.FD), uint8(64), "can1", make([]byte, 64))
	f.Add(uint32(0x7E8), uint8(0), uint8(8), "can0", []byte{0x06, 0x41, 0xA6, 0, 0, 0x30, 0x39, 0xCC})
	f.Add(uint32(0x7E8), uint8(0), uint8(8), "can0", []byte{0x10, 0x0B, 0x62, 0xF1, 0xA0, 0, 0, 0})
	f.Add(uint32(0x7E8), uint8(0), uint8(8), "can0", []byte{0x21, 0, 0x12, 0xD6, 0x87, 0, 0xCC, 0xCC})
	f.Fuzz(func(t *testing.T, id uint32, flags uint8, n uint8, bus string, data []byte) {
		fr := can.Frame{ID: id, Flags: can.Flags(flags), Len: n, Bus: bus}
		copy(fr.Data[:], data)
		for _, d := range decoders {
			for _, r := range d.Decode(&fr, nil) {
				if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
					t.Fatalf("reading %+v is not finite", r)
				}
				if r.Kind == DriveMode && r.Mode == "" {
					t.Fatalf("drive mode reading without a name: %+v", r)
				}
			}
		}
	})
}

// FuzzReadDBC feeds random bytes to the DBC reader: it never panics, every
// problem and definition it reports lies on a line of the input, and a
// second read gives the same. (The differential test against einride runs on
// the real files of the corpus: on random bytes the two disagree about
// malformed input, such as "0A" as one token or two.)
func FuzzReadDBC(f *testing.F) {
	for _, p := range []string{"testdata/ev.dbc", "testdata/bad/broken.dbc", "testdata/public/honda_civic_touring_2016_can_generated.dbc", "testdata/ev_fd.dbc"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("BO_ 648 Motor_2: 8 Motor\r\n SG_ MO2_Mp_Code m : 6|2@1+ (1,0) [0|3] \"\" Gateway\r\nVAL_ 648 MO2_Mp_Code 0 \"a b\" 1 \"c\"\nCM_ \"x\nBO_ 13274 A: 8 X\n"))
	f.Add([]byte("BO_ 1 A: 8 X\n SG_ S m1M : 0|4@1+ (1,0) [0|0] \"\" X\nSG_MUL_VAL_ 1 S T 1-2, 3-3;\nSIG_VALTYPE_ 1 S : 1;\nCM_ SG_ 1 \"\\\"q\";"))
	f.Add([]byte("BO_ 1 A: 8 X\nBA_DEF_ BO_ \"VFrameFormat\" ENUM \"a_FD\",;\nBA_DEF_DEF_ \"VFrameFormat\" 0;\nBA_ \"VFrameFormat\" BO_ 1 \"b\";\nBA_ \"VFrameFormat\" BO_ 2 7\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte{'\n'}) + 1
		db, err := parseDBC("f.dbc", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line < 0 || ce.Line > lines {
				t.Fatalf("error %v: want a *ConfigError on a line of the input (1..%d)", err, lines)
			}
			return
		}
		for _, m := range db.messages {
			if m.Pos.Line < 1 || m.Pos.Line > lines {
				t.Fatalf("message %s at line %d of %d", m.Name, m.Pos.Line, lines)
			}
		}
		for _, ps := range db.problems {
			for _, p := range ps {
				if p.line < 1 || p.line > lines {
					t.Fatalf("problem %q at line %d of %d", p.msg, p.line, lines)
				}
			}
		}
		again, err := parseDBC("f.dbc", data)
		if err != nil || strings.Join(ourView(again).messages, "\n") != strings.Join(ourView(db).messages, "\n") {
			t.Fatalf("a second read differs: %v", err)
		}
	})
}
