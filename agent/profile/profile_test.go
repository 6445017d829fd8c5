package profile

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/csop/tbox/can"
)

func mustLoad(t testing.TB, path string) *Profile {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return p
}

func TestLoadEV(t *testing.T) {
	p := mustLoad(t, "testdata/ev.toml")
	if got, want := p.DBCFile(), filepath.Join("testdata", "ev.dbc"); got != want {
		t.Errorf("DBCFile = %q, want %q", got, want)
	}
	if got := p.MaxSpeedKmh(); got != 250 {
		t.Errorf("MaxSpeedKmh = %v, want 250 (integer in TOML)", got)
	}
	for _, c := range []struct {
		kind    Kind
		message string
		signal  string
		key     can.Key
		unit    string
	}{
		{Odometer, "CLU_Odometer", "Odometer", can.Key{ID: 0x541}, "KM"},
		{DriveMode, "VCU_Status", "DriveMode", can.Key{ID: 0x542}, ""},
		{Speed, "ESP_Speed", "VehicleSpeed", can.Key{ID: 0x220}, "km/h"},
	} {
		si, ok := p.Signal(c.kind)
		if !ok {
			t.Fatalf("Signal(%v) missing", c.kind)
		}
		want := SignalInfo{Kind: c.kind, Message: c.message, Signal: c.signal, Key: c.key, Unit: c.unit}
		if si != want {
			t.Errorf("Signal(%v) = %+v, want %+v", c.kind, si, want)
		}
	}
	if got := p.Buses(); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("Buses = %q, want [\"\"]", got)
	}
	wantKeys := []can.Key{{ID: 0x220}, {ID: 0x541}, {ID: 0x542}}
	if got := p.Filter("").Keys(); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Filter(\"\") = %v, want %v", got, wantKeys)
	}
	if got := p.Filter("can1").Keys(); len(got) != 0 {
		t.Errorf("Filter(can1) = %v, want empty", got)
	}
	if got := p.Resolution(Odometer); got != 10 {
		t.Errorf("Resolution(Odometer) = %v m, want 10 (0.01 km)", got)
	}
	if got := p.ModeNames(); !reflect.DeepEqual(got, []string{"ECO", "NORMAL", "SPORT", "SNAKE"}) {
		t.Errorf("ModeNames = %q", got)
	}
}

func TestBiometricKeys(t *testing.T) {
	p := mustLoad(t, "testdata/ev.toml")
	got := map[can.Key]bool{}
	for _, k := range p.BiometricKeys() {
		got[k] = true
	}
	// DMS_Face, VA_VoiceCmd, FPR_Auth (listed and by comment), SEAT_Status
	// (a heart-rate signal), STW_Sensor (an ECG comment).
	for _, id := range []uint32{0x5A1, 0x5B2, 0x5B3, 0x3C0, 0x3C2} {
		if !got[can.Key{ID: id}] {
			t.Errorf("BiometricKeys lacks 0x%X", id)
		}
	}
	// Wheel pulse counters, climate, the profile's own messages are not.
	for _, id := range []uint32{0x221, 0x3E8, 0x541, 0x542, 0x220} {
		if got[can.Key{ID: id}] {
			t.Errorf("BiometricKeys has 0x%X, which is not biometric", id)
		}
	}
	f := p.Filter("")
	for _, k := range p.BiometricKeys() {
		fr := can.Frame{ID: k.ID, Len: 8}
		if k.Extended {
			fr.Flags = can.Extended
		}
		if f.Match(&fr) {
			t.Errorf("filter passes biometric message %v", k)
		}
	}
}

func TestModeValue(t *testing.T) {
	p := mustLoad(t, "testdata/ev.toml")
	for _, c := range []struct {
		name string
		want uint64
		ok   bool
	}{
		{"ECO", 0, true},
		{"SPORT", 2, true},
		{"SNAKE", 3, true},
		{"MODE_5", 5, true},
		{"MODE_2", 0, false}, // 2 has a name: SPORT
		{"MODE_8", 0, false}, // does not fit 3 bits
		{"MODE_x", 0, false},
		{"sport", 0, false},
		{"UNKNOWN", 0, false},
	} {
		v, ok := p.ModeValue(c.name)
		if ok != c.ok || v != c.want {
			t.Errorf("ModeValue(%q) = %d, %v; want %d, %v", c.name, v, ok, c.want, c.ok)
		}
	}
	if got := p.ModeName(4); got != "MODE_4" {
		t.Errorf("ModeName(4) = %q, want MODE_4", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		file  string
		want  error
		inDBC bool // the error names the DBC file rather than the profile
		line  int
		field string
		text  string // a fragment the operator must see
	}{
		{"unknown_key.toml", ErrUnknownKey, false, 5, "odometer.sigal", `"odometer.sigal"`},
		{"unknown_message.toml", ErrUnknownMessage, false, 4, "odometer.message", `did you mean "CLU_Odometer"`},
		{"unknown_signal.toml", ErrUnknownSignal, false, 9, "drive_mode.signal", "DriveMode, ReadyToDrive"},
		{"biometric_listed.toml", ErrBiometric, false, 8, "drive_mode.message", "FPR_Auth"},
		{"biometric_hexid.toml", ErrBiometric, false, 12, "speed.message", `"0x3E8"`},
		{"biometric_name.toml", ErrBiometric, false, 8, "drive_mode.message", "DMS_Face"},
		{"biometric_signal.toml", ErrBiometric, false, 12, "speed.message", "OccupantHeartRate"},
		{"biometric_comment.toml", ErrBiometric, false, 8, "drive_mode.message", "ECG electrodes"},
		{"bad_unit.toml", ErrUnit, false, 5, "odometer.signal", `unit "ticks"`},
		{"no_unit.toml", ErrUnit, false, 5, "odometer.signal", `TripRaw of message CLU_Trip`},
		{"bad_override.toml", ErrUnit, false, 6, "odometer.unit", `"furlongs"`},
		{"syntax.toml", ErrSyntax, false, 4, "", "TOML"},
		{"broken_dbc.toml", ErrSyntax, true, 9, "drive_mode.message", `SG_: expected ")", found "["`},
		{"overlong.toml", ErrSignal, true, 6, "odometer.signal", "ends past the 4-byte message"},
		{"missing_dbc.toml", ErrMissing, false, 1, "dbc", "no-such-file.dbc"},
		{"missing_odometer.toml", ErrMissing, false, 0, "odometer", "[odometer]"},
		{"bad_max_speed.toml", ErrValue, false, 12, "plausibility.max_speed_kmh", "-5"},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", c.file)
			_, err := Load(path)
			if !errors.Is(err, c.want) {
				t.Fatalf("Load: %v, want %v", err, c.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load: %T, want *ConfigError", err)
			}
			file := path
			if c.inDBC {
				file = strings.TrimSuffix(path, ".toml") + ".dbc"
				if c.file == "broken_dbc.toml" {
					file = filepath.Join("testdata", "bad", "broken.dbc")
				}
			}
			if ce.File != file || ce.Line != c.line || ce.Field != c.field {
				t.Errorf("ConfigError at %s:%d field %q, want %s:%d field %q (%v)", ce.File, ce.Line, ce.Field, file, c.line, c.field, err)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %q does not mention %q", err, c.text)
			}
		})
	}
}

func TestLoadUnitOverride(t *testing.T) {
	dbcData := []byte(`VERSION ""
BU_: A
BO_ 256 ODO: 8 A
 SG_ Total : 0|32@1+ (1,0) [0|0] "counts" A
 SG_ Mode : 32|2@1+ (1,0) [0|3] "" A
 SG_ Spd : 40|16@1+ (0.1,0) [0|0] "km/h or MPH" A
`)
	base := "dbc = \"car.dbc\"\n[drive_mode]\nmessage = \"ODO\"\nsignal = \"Mode\"\n"
	for _, c := range []struct {
		name    string
		profile string
		want    error
		scale   float64 // meters per raw odometer step
	}{
		{"no override", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\n", ErrUnit, 0},
		{"meters", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"m\"\n", nil, 1},
		{"capital KM", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"KM\"\n", nil, 1000},
		{"miles", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"Miles\"\n", nil, 1609.344},
		{"ambiguous speed", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"km\"\n[speed]\nmessage = \"ODO\"\nsignal = \"Spd\"\n", ErrUnit, 1000},
		{"speed override", base + "[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"km\"\n[speed]\nmessage = \"ODO\"\nsignal = \"Spd\"\nunit = \"kph\"\n", nil, 1000},
		{"mode has no unit", base[:len(base)-1] + "\nunit = \"km\"\n[odometer]\nmessage = \"ODO\"\nsignal = \"Total\"\nunit = \"km\"\n", ErrUnit, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"car.toml": {Data: []byte(c.profile)}, "car.dbc": {Data: dbcData}}
			p, err := LoadFS(fsys, "car.toml")
			if !errors.Is(err, c.want) {
				t.Fatalf("LoadFS: %v, want %v", err, c.want)
			}
			if err != nil {
				return
			}
			if got := p.Resolution(Odometer); got != c.scale {
				t.Errorf("odometer step = %v m, want %v", got, c.scale)
			}
		})
	}
}

func TestMultiBus(t *testing.T) {
	p := mustLoad(t, "testdata/ev_alt.toml")
	if got := p.Buses(); !reflect.DeepEqual(got, []string{"", "can1"}) {
		t.Errorf("Buses = %q", got)
	}
	if got, want := p.Filter("").Keys(), []can.Key{{ID: 0x542}, {ID: 0x18FEC1EE, Extended: true}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Filter(\"\") = %v, want %v", got, want)
	}
	if got, want := p.Filter("can1").Keys(), []can.Key{{ID: 0x3A0}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Filter(can1) = %v, want %v", got, want)
	}
}

func TestPublicDBCWarnings(t *testing.T) {
	p := mustLoad(t, "testdata/public/honda_civic_touring_2016.toml")
	w := p.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], ":171:") || !strings.Contains(w[1], ":172:") {
		t.Errorf("Warnings = %q, want the two signal comments without a signal name (lines 171, 172)", w)
	}
	if w := mustLoad(t, "testdata/public/hyundai_i30_2014.toml").Warnings(); len(w) != 0 {
		t.Errorf("i30 Warnings = %q, want none", w)
	}
}

// A comment the parser refuses is skipped, but still judged by the privacy
// gate.
func TestRefusedCommentStillGuards(t *testing.T) {
	dbcData := []byte(`VERSION ""
BU_: A
BO_ 256 CLU: 8 A
 SG_ Odo : 0|32@1+ (1,0) [0|0] "m" A
 SG_ Mode : 32|2@1+ (1,0) [0|3] "" A
CM_ SG_ 256 "driver heart rate from the steering wheel";
`)
	prof := "dbc = \"car.dbc\"\n[odometer]\nmessage = \"CLU\"\nsignal = \"Odo\"\n[drive_mode]\nmessage = \"CLU\"\nsignal = \"Mode\"\n"
	_, err := LoadFS(fstest.MapFS{"car.toml": {Data: []byte(prof)}, "car.dbc": {Data: dbcData}}, "car.toml")
	if !errors.Is(err, ErrBiometric) {
		t.Fatalf("LoadFS: %v, want ErrBiometric", err)
	}
}

func TestBiometricMatch(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"DMS_Face", true},
		{"FaceDetected", true},
		{"OccupantHeartRate", true},
		{"DriverPulse", true},
		{"GazeYaw", true},
		{"EyeOpenness", true},
		{"SpO2Level", true},
		{"DriverMonitoringStatus", true},
		{"Driver monitoring system camera", true},
		{"FingerprintMatch", true},
		{"VoiceCommandId", true},
		{"IrisScan", true},
		{"DROWSINESS_LVL", true},
		{"ECG_Raw", true},
		{"breathalyzer interlock", true},
		{"TBOX_Heartbeat", false},
		{"WheelPulseCountFL", false},
		{"ESP_wheelPulseCountFrL", false},
		{"WHL_PUL_FL", false},
		{"Pulse width of the PWM fan", false},
		{"InterfaceStatus", false},
		{"SurfaceTemp", false},
		{"BH_Blinker_li", false},
		{"KeyFobPresent", false},
		{"CF_Clu_Odometer", false},
		{"VehicleSpeed", false},
		{"", false},
	} {
		_, got := biometricMatch(c.text)
		if got != c.want {
			t.Errorf("biometricMatch(%q) = %v, want %v (words %q)", c.text, got, c.want, splitWords(c.text))
		}
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		unit string
		want float64
		ok   bool
	}{
		{Odometer, "km", 1000, true},
		{Odometer, "KM", 1000, true},
		{Odometer, "Km", 1000, true},
		{Odometer, "Unit_KiloMeter", 1000, true},
		{Odometer, "kilometres", 1000, true},
		{Odometer, "m", 1, true},
		{Odometer, "miles", 1609.344, true},
		{Odometer, "MI", 1609.344, true},
		{Odometer, "km/h", 0, false},
		{Odometer, "", 0, false},
		{Speed, "km/h", 1, true},
		{Speed, "KPH", 1, true},
		{Speed, "Unit_KiloMeterPerHour", 1, true},
		{Speed, "m/s", 3.6, true},
		{Speed, "Unit_MeterPerSecon", 3.6, true},
		{Speed, "mph", 1.609344, true},
		{Speed, "km/h or MPH", 0, false},
		{Speed, "km", 0, false},
	} {
		got, ok := unitScale(c.kind, c.unit)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("unitScale(%v, %q) = %v, %v; want %v, %v", c.kind, c.unit, got, ok, c.want, c.ok)
		}
	}
}
