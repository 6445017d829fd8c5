package profile

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/csop/tbox/can"
)

// The FD sample car: each signal is read where a classic frame has no
// bytes (the odometer in bytes 8 to 11, the speed in bytes 50 and 51), and
// the bus is FD because its messages are.
func TestFDProfile(t *testing.T) {
	p := mustLoad(t, "testdata/ev_fd.toml")
	if !p.FD("") {
		t.Error("FD(\"\") = false for the FD sample car")
	}
	if p.FD("can1") {
		t.Error("FD(\"can1\") = true: the profile reads nothing on can1")
	}
	if mustLoad(t, "testdata/ev.toml").FD("") {
		t.Error("the classic sample car wants CAN FD")
	}
	for _, k := range []Kind{Odometer, DriveMode, Speed} {
		if si, _ := p.Signal(k); !si.FD {
			t.Errorf("%s: SignalInfo.FD = false", k)
		}
	}

	// A frame as the cluster sends it: 16 bytes, 1234.56 km in bytes 8..11.
	odo := can.Frame{ID: 0x4A0, Flags: can.FD, Len: 16}
	copy(odo.Data[8:], []byte{0x40, 0xE2, 0x01, 0x00}) // 123456 * 0.01 km
	spd := can.Frame{ID: 0x4A2, Flags: can.FD | can.BRS, Len: 64}
	spd.Data[50], spd.Data[51] = 0x1E, 0x61 // 7777 * 0.01 km/h, big-endian
	mode := can.Frame{ID: 0x4A1, Flags: can.FD, Len: 8}
	mode.Data[0] = 2
	d := p.NewDecoder()
	var got []Reading
	for _, f := range []*can.Frame{&odo, &spd, &mode} {
		got = d.Decode(f, got)
	}
	if len(got) != 3 || got[0].Value != 1234560 || got[1].Value != 77.77 || got[2].Mode != "SPORT" {
		t.Fatalf("decoded %+v, want 1234560 m, 77.77 km/h, SPORT", got)
	}
	// Cut at 8 bytes (what a classic frame could carry), the odometer and
	// speed are undecodable, not zero.
	short := odo
	short.Flags, short.Len = 0, 8
	if r := d.Decode(&short, nil); len(r) != 0 || d.NotReadings().Undecodable(Odometer) != 1 {
		t.Errorf("an 8-byte odometer frame decoded to %+v (undecodable %d), want nothing and one undecodable", r, d.NotReadings().Undecodable(Odometer))
	}

	// Encode gives what the car sends: FD frames of the message's length.
	for _, c := range []struct {
		k     Kind
		v     float64
		id    uint32
		len   uint8
		value float64
	}{{Odometer, 1234560, 0x4A0, 16, 1234560}, {Speed, 77.77, 0x4A2, 64, 77.77}, {DriveMode, 3, 0x4A1, 8, 3}} {
		f, err := p.Encode(c.k, c.v)
		if err != nil {
			t.Fatalf("Encode %s: %v", c.k, err)
		}
		if f.ID != c.id || !f.IsFD() || f.Len != c.len {
			t.Errorf("Encode %s = %s, want an FD frame of %03X with %d bytes", c.k, &f, c.id, c.len)
		}
		if err := f.Validate(); err != nil {
			t.Errorf("Encode %s: %v", c.k, err)
		}
		if r := p.NewDecoder().Decode(&f, nil); len(r) != 1 || r[0].Value != c.value {
			t.Errorf("Decode(Encode(%s, %v)) = %+v", c.k, c.v, r)
		}
	}
	// The gate is the same for FD: the biometric FD message is refused and
	// is not in the filter.
	if f := p.Filter(""); f.Match(&can.Frame{ID: 0x4A3, Flags: can.FD, Len: 64}) {
		t.Error("the filter admits DMS_FaceFD")
	}
	if keys := p.BiometricKeys(); len(keys) != 1 || keys[0] != (can.Key{ID: 0x4A3}) {
		t.Errorf("biometric keys %v, want [4A3]", keys)
	}
}

// VFrameFormat, the fd key, and a message's length decide whether a
// profile message travels as CAN FD.
func TestFrameFormat(t *testing.T) {
	const enum = `BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN","reserved","J1939PG","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","StandardCAN_FD","ExtendedCAN_FD";` + "\n"
	long := strings.Replace(twoMessages, "BO_ 1345 ODO: 8 CLU", "BO_ 1345 ODO: 12 CLU", 1)
	for _, c := range []struct {
		name, toml, dbc string
		odoFD, modeFD   bool
		err             error
		errHas          string
	}{
		{name: "classic", toml: odoOnly, dbc: twoMessages},
		{name: "longer than 8 bytes", toml: odoOnly, dbc: long, odoFD: true},
		{name: "attribute by index", toml: odoOnly, dbc: twoMessages + enum + `BA_ "VFrameFormat" BO_ 1346 14;`, modeFD: true},
		{name: "attribute by label", toml: odoOnly, dbc: twoMessages + enum + `BA_ "VFrameFormat" BO_ 1345 "StandardCAN_FD";`, odoFD: true},
		{name: "attribute classic", toml: odoOnly, dbc: twoMessages + enum + `BA_ "VFrameFormat" BO_ 1345 0;`},
		{name: "Vector's enumeration when undefined", toml: odoOnly, dbc: twoMessages + `BA_ "VFrameFormat" BO_ 1345 14;`, odoFD: true},
		{name: "default FD", toml: odoOnly, dbc: twoMessages + enum + `BA_DEF_DEF_ "VFrameFormat" "StandardCAN_FD";` + "\n" + `BA_ "VFrameFormat" BO_ 1346 0;`, odoFD: true},
		{name: "default by index", toml: odoOnly, dbc: twoMessages + enum + `BA_DEF_DEF_ "VFrameFormat" 15;`, odoFD: true, modeFD: true},
		{name: "other attributes ignored", toml: odoOnly, dbc: twoMessages + `BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;` + "\n" + `BA_ "GenMsgCycleTime" BO_ 1345 14;` + "\n" + `BA_ "VFrameFormat" SG_ 1345 Km 14;`},
		{name: "fd = true", toml: strings.Replace(odoOnly, `signal = "Km"`, "signal = \"Km\"\nfd = true", 1), dbc: twoMessages, odoFD: true},
		{name: "fd = false beats the attribute", toml: strings.Replace(odoOnly, `signal = "Mode"`, "signal = \"Mode\"\nfd = false", 1), dbc: twoMessages + `BA_ "VFrameFormat" BO_ 1346 14;`},
		{name: "fd = false on 12 bytes", toml: strings.Replace(odoOnly, `signal = "Km"`, "signal = \"Km\"\nfd = false", 1), dbc: long, err: ErrValue, errHas: "odometer.fd"},
		{name: "index past the enumeration", toml: odoOnly, dbc: twoMessages + enum + `BA_ "VFrameFormat" BO_ 1345 16;`, err: ErrSyntax, errHas: "VFrameFormat value 16"},
		{name: "unknown label", toml: odoOnly, dbc: twoMessages + enum + `BA_ "VFrameFormat" BO_ 1345 "CAN_XL";`, err: ErrSyntax, errHas: `"CAN_XL"`},
		{name: "not a value", toml: odoOnly, dbc: twoMessages + `BA_ "VFrameFormat" BO_ 1345 -1;`, err: ErrSyntax, errHas: "VFrameFormat value"},
		{name: "unused message's bad value is a warning", toml: odoOnly, dbc: twoMessages + "BO_ 1 X: 8 X\n" + `BA_ "VFrameFormat" BO_ 1 99;`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := loadPair(t, c.toml, c.dbc)
			if c.err != nil {
				if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err %v, want %v saying %q", err, c.err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			odo, _ := p.Signal(Odometer)
			mode, _ := p.Signal(DriveMode)
			if odo.FD != c.odoFD || mode.FD != c.modeFD || p.FD("") != (c.odoFD || c.modeFD) {
				t.Errorf("FD: odometer %v, drive mode %v, bus %v; want %v, %v", odo.FD, mode.FD, p.FD(""), c.odoFD, c.modeFD)
			}
		})
	}
}

// A polled odometer asks over classic ISO-TP: fd = true there is refused.
func TestFDPolledRefused(t *testing.T) {
	prof := strings.Replace(string(mustRead(t, "testdata/ev_obd.toml")), "period", "fd = true\nperiod", 1)
	_, err := loadPair(t, strings.Replace(prof, `"ev.dbc"`, `"car.dbc"`, 1), string(evDBC(t)))
	if !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "odometer.fd") {
		t.Fatalf("err %v, want ErrValue at odometer.fd", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The corpus's one DBC with VFrameFormat (Ford's base powertrain) defaults
// every message to ExtendedCAN_FD and assigns StandardCAN_FD to some: all
// its messages are FD, and no other file marks any message FD but by its
// length.
func TestCorpusFrameFormat(t *testing.T) {
	marked := 0
	for _, path := range corpusFiles(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		db, err := parseDBC(path, data)
		if err != nil {
			continue // TestCorpusReads judges these
		}
		for _, m := range db.messages {
			ford := strings.HasSuffix(path, "ford_lincoln_base_pt.dbc")
			if db.fd[m.MessageID] != ford {
				t.Errorf("%s: message %s: VFrameFormat FD %v", path, m.Name, db.fd[m.MessageID])
			}
			if ford {
				marked++
			}
		}
	}
	if marked == 0 {
		t.Error("no message of ford_lincoln_base_pt.dbc is marked FD")
	}
}
