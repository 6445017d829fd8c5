package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The frames below are built by hand from ev.dbc:
//   - CLU_Odometer 0x541: Odometer, Motorola start bit 7, 32 bits, 0.01 km:
//     bytes 0..3 big-endian; 0x0012D687 = 1234567 -> 12345.67 km = 12345670 m.
//   - VCU_Status 0x542: DriveMode, Intel bits 0..2, VAL_ 0 ECO 1 NORMAL
//     2 SPORT 3 SNAKE; 4..7 unnamed.
//   - ESP_Speed 0x220: VehicleSpeed, Motorola start bit 7, 16 bits, 0.01 km/h:
//     0x3039 = 12345 -> 123.45 km/h.
//   - DMS_Face 0x5A1 is biometric, 0x123 is not in the profile: neither is
//     decoded.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  string
		want []string
	}{
		{
			name: "odometer in meters",
			log:  "(1700000000.000000) can0 541#0012D68700000000\n",
			want: []string{`{"t":1700000000.000000,"kind":"odometer","value":12345670}`},
		},
		{
			name: "odometer extremes",
			log: "(1700000000.100000) can0 541#0000000100000000\n" +
				"(1700000000.200000) can0 541#FFFFFFFF00000000\n" +
				"(1700000000.300000) can0 541#0000000000000000\n",
			want: []string{
				`{"t":1700000000.100000,"kind":"odometer","value":10}`,
				`{"t":1700000000.200000,"kind":"odometer","value":42949672950}`,
				`{"t":1700000000.300000,"kind":"odometer","value":0}`,
			},
		},
		{
			name: "drive mode names from the value table, MODE_n without one",
			log: "(1700000000.000000) can0 542#0000000000000000\n" +
				"(1700000000.200000) can0 542#0200000000000000\n" +
				// Bits above DriveMode's three (ReadyToDrive, gear) do not leak into it.
				"(1700000000.400000) can0 542#FB00000000000000\n" +
				"(1700000000.600000) can0 542#0500000000000000\n",
			want: []string{
				`{"t":1700000000.000000,"kind":"drive_mode","value":"ECO"}`,
				`{"t":1700000000.200000,"kind":"drive_mode","value":"SPORT"}`,
				`{"t":1700000000.400000,"kind":"drive_mode","value":"SNAKE"}`,
				`{"t":1700000000.600000,"kind":"drive_mode","value":"MODE_5"}`,
			},
		},
		{
			name: "speed in km/h",
			log: "(1700000000.250000) can0 220#3039000000000000\n" +
				"(1700000000.500000) can0 220#FFFF000000000000\n" +
				"(1700000000.750000) can0 220#0000000000000000\n",
			want: []string{
				`{"t":1700000000.250000,"kind":"speed","value":123.45}`,
				`{"t":1700000000.500000,"kind":"speed","value":655.35}`,
				`{"t":1700000000.750000,"kind":"speed","value":0}`,
			},
		},
		{
			name: "biometric and unrelated frames give nothing",
			log: "(1700000000.000000) can0 5A1#42494F4D45545243\n" +
				"(1700000000.010000) can0 5B2#42494F4D45545243\n" +
				"(1700000000.020000) can0 123#DEADBEEF\n" +
				"(1700000000.030000) can0 00000541#0012D68700000000\n" +
				"(1700000000.040000) can0 541#R\n",
			want: nil,
		},
		{
			name: "a mixed log in time order, blank lines skipped",
			log: "(1700000000.000000) can0 541#0012D68700000000\n" +
				"\n" +
				"(1700000000.100000) can0 542#0100000000000000\n" +
				"(1700000000.150000) can0 123#DEADBEEF\n" +
				"(1700000000.200000) can0 220#1388000000000000\n" +
				"(1700000000.300000) can0 541#0012D68800000000\n",
			want: []string{
				`{"t":1700000000.000000,"kind":"odometer","value":12345670}`,
				`{"t":1700000000.100000,"kind":"drive_mode","value":"NORMAL"}`,
				`{"t":1700000000.200000,"kind":"speed","value":50}`,
				`{"t":1700000000.300000,"kind":"odometer","value":12345680}`,
			},
		},
		{name: "empty log", log: "", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tboxctl(t, strings.NewReader(tc.log), "decode", "--profile", evProfile)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if r.stdout == "" {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("decode printed\n%s\nwant\n%s", r.stdout, strings.Join(tc.want, "\n"))
			}
			// Every line is a JSON object with exactly t, kind and value.
			for _, l := range got {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Errorf("line %q is not JSON: %v", l, err)
				}
				if len(m) != 3 || m["t"] == nil || m["kind"] == nil || m["value"] == nil {
					t.Errorf("line %q: want the keys t, kind, value", l)
				}
			}
		})
	}
}

// TestDecodeLogFile reads the log from --log and from stdin alike.
func TestDecodeLogFile(t *testing.T) {
	log := "(1700000000.000000) can0 541#0012D68700000000\n(1700000000.500000) can0 542#0300000000000000\n"
	path := filepath.Join(t.TempDir(), "drive.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := tboxctl(t, nil, "decode", "--profile", evProfile, "--log", path)
	fromStdin := tboxctl(t, strings.NewReader(log), "decode", "--profile", evProfile)
	if fromFile.code != 0 || fromStdin.code != 0 {
		t.Fatalf("exit %d and %d: %s %s", fromFile.code, fromStdin.code, fromFile.stderr, fromStdin.stderr)
	}
	want := `{"t":1700000000.000000,"kind":"odometer","value":12345670}` + "\n" +
		`{"t":1700000000.500000,"kind":"drive_mode","value":"SNAKE"}` + "\n"
	if fromFile.stdout != want || fromStdin.stdout != want {
		t.Errorf("--log printed %q, stdin %q, want %q", fromFile.stdout, fromStdin.stdout, want)
	}
}

// TestBadLog checks that a log line that does not parse stops decode and
// replay with exit 2 and a message naming the log and the line.
func TestBadLog(t *testing.T) {
	key, _ := newKey(t)
	dir := t.TempDir()
	good := "(1700000000.000000) can0 541#0012D68700000000\n"
	for _, tc := range []struct {
		name string
		line string
	}{
		{"not candump", "hello world"},
		{"bad hex", "(1700000000.100000) can0 541#0012ZZ"},
		{"no timestamp", "can0 541#0012D68700000000"},
		{"odd hex digits", "(1700000000.100000) can0 541#0012D"},
		{"ID too long", "(1700000000.100000) can0 5410#00"},
		{"too many bytes", "(1700000000.100000) can0 541#001122334455667788"},
	} {
		log := good + good + tc.line + "\n" + good
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".log")
		if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"decode", "--profile", evProfile},
			{"replay", "--profile", evProfile, "--key", key},
		} {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				r := tboxctl(t, strings.NewReader(log), args...)
				if r.code != 2 {
					t.Errorf("stdin: exit %d, want 2; stderr %q", r.code, r.stderr)
				}
				if !strings.Contains(r.stderr, "stdin") || !strings.Contains(r.stderr, "line 3") {
					t.Errorf("stdin: stderr %q does not name stdin and line 3", r.stderr)
				}
				if args[0] == "decode" && strings.Count(r.stdout, `"kind":"odometer"`) != 2 {
					t.Errorf("stdin: decode printed %q before the bad line 3, want its 2 readings", r.stdout)
				}
				r = tboxctl(t, nil, append(args, "--log", path)...)
				if r.code != 2 {
					t.Errorf("--log: exit %d, want 2; stderr %q", r.code, r.stderr)
				}
				if !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "line 3") {
					t.Errorf("--log: stderr %q does not name %s and line 3", r.stderr, path)
				}
			})
		}
	}
	r := tboxctl(t, nil, "decode", "--profile", evProfile, "--log", filepath.Join(dir, "no-such.log"))
	if r.code != 2 || !strings.Contains(r.stderr, "no-such.log") {
		t.Errorf("missing log: exit %d, stderr %q; want 2 naming the file", r.code, r.stderr)
	}
}

// TestBadProfile checks every bad profile of agent/profile/testdata/bad
// through decode and replay: exit 2, and the message names the file (the
// profile, or the DBC where the DBC is wrong), the line and the field.
func TestBadProfile(t *testing.T) {
	key, _ := newKey(t)
	bad := filepath.Join(profileDir, "bad")
	for _, tc := range []struct {
		file string
		says []string // file:line and the field or thing named
	}{
		{"bad_max_speed.toml", []string{"bad_max_speed.toml:12", "plausibility.max_speed_kmh", "-5"}},
		{"bad_override.toml", []string{"bad_override.toml:6", "odometer.unit", "furlongs"}},
		{"bad_unit.toml", []string{"bad_unit.toml:5", "odometer.signal", "ticks"}},
		{"biometric_comment.toml", []string{"biometric_comment.toml:8", "drive_mode.message", "STW_Sensor", "biometric"}},
		{"biometric_hexid.toml", []string{"biometric_hexid.toml:12", "speed.message", "0x3E8", "biometric"}},
		{"biometric_listed.toml", []string{"biometric_listed.toml:8", "drive_mode.message", "FPR_Auth", "biometric"}},
		{"biometric_name.toml", []string{"biometric_name.toml:8", "drive_mode.message", "DMS_Face", "biometric"}},
		{"biometric_signal.toml", []string{"biometric_signal.toml:12", "speed.message", "OccupantHeartRate", "biometric"}},
		{"broken_dbc.toml", []string{"broken.dbc:9"}},
		{"missing_dbc.toml", []string{"missing_dbc.toml:1", "dbc", "no-such-file.dbc"}},
		{"missing_odometer.toml", []string{"missing_odometer.toml", "odometer"}},
		{"no_unit.toml", []string{"no_unit.toml:5", "odometer.signal", "unit"}},
		{"overlong.toml", []string{"overlong.dbc:6", "odometer.signal"}},
		{"syntax.toml", []string{"syntax.toml:4"}},
		{"unknown_key.toml", []string{"unknown_key.toml:5", "odometer.sigal"}},
		{"unknown_message.toml", []string{"unknown_message.toml:4", "odometer.message", "CLU_odometer", "CLU_Odometer"}},
		{"unknown_signal.toml", []string{"unknown_signal.toml:9", "drive_mode.signal", "Mode"}},
		{"no-such-profile.toml", []string{"no-such-profile.toml"}},
	} {
		for _, args := range [][]string{
			{"decode"},
			{"replay", "--key", key},
		} {
			t.Run(tc.file+"/"+args[0], func(t *testing.T) {
				args := append(args, "--profile", filepath.Join(bad, tc.file))
				r := tboxctl(t, strings.NewReader("(1700000000.000000) can0 541#0012D68700000000\n"), args...)
				if r.code != 2 {
					t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
				}
				for _, s := range tc.says {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("stderr %q does not say %q", r.stderr, s)
					}
				}
				if r.stdout != "" {
					t.Errorf("stdout %q, want nothing", r.stdout)
				}
			})
		}
	}
}

// TestDecodeCommonForms: a log cut mid-line (candump killed) decodes
// everything before the cut with a warning and exit 0; candump -ta screen
// output decodes as its -l log does; plain candump output is refused with
// the flag to record with.
func TestDecodeCommonForms(t *testing.T) {
	logL := "(1700000000.000000) can0 541#0012D68700000000\n(1700000000.100000) can0 542#0200000000000000\n"
	want := tboxctl(t, strings.NewReader(logL), "decode", "--profile", evProfile)
	if want.code != 0 || strings.Count(want.stdout, "\n") != 2 {
		t.Fatalf("decode of the -l log: exit %d, %q", want.code, want.stdout)
	}

	cut := tboxctl(t, strings.NewReader(logL+"(1700000000.2000"), "decode", "--profile", evProfile)
	if cut.code != 0 || cut.stdout != want.stdout || !strings.Contains(cut.stderr, "warning") || !strings.Contains(cut.stderr, "line 3") {
		t.Errorf("cut log: exit %d, stdout %q, stderr %q; want exit 0, the same readings and a warning naming line 3", cut.code, cut.stdout, cut.stderr)
	}
	key, _ := newKey(t)
	if r := tboxctl(t, strings.NewReader(logL+"(1700000000.2000"), "replay", "--profile", evProfile, "--key", key); r.code != 0 || !strings.Contains(r.stderr, "warning") {
		t.Errorf("replay of a cut log: exit %d, stderr %q; want 0 and a warning", r.code, r.stderr)
	}

	ta := "(1700000000.000000)  can0  541   [8]  00 12 D6 87 00 00 00 00\n(1700000000.100000)  can0  RX - -  542   [8]  02 00 00 00 00 00 00 00\n"
	if r := tboxctl(t, strings.NewReader(ta), "decode", "--profile", evProfile); r.code != 0 || r.stdout != want.stdout {
		t.Errorf("candump -ta output: exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want.stdout)
	}

	plain := "  can0  541   [8]  00 12 D6 87 00 00 00 00\n"
	if r := tboxctl(t, strings.NewReader(plain), "decode", "--profile", evProfile); r.code != 2 || !strings.Contains(r.stderr, "candump -l") {
		t.Errorf("plain candump output: exit %d, stderr %q; want 2 and how to record", r.code, r.stderr)
	}
}
