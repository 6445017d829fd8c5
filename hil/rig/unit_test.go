package rig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

func TestLogFields(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{`time=2026-11-23T05:43:26.123Z level=INFO msg="tboxd started" sources=1`,
			map[string]string{"time": "2026-11-23T05:43:26.123Z", "level": "INFO", "msg": "tboxd started", "sources": "1"}},
		{`msg=attested seq=3 flags="[JUMP GAP]"`, map[string]string{"msg": "attested", "seq": "3", "flags": "[JUMP GAP]"}},
		{`msg="a \"quoted\" word" x=`, map[string]string{"msg": `a "quoted" word`, "x": ""}},
		{`no pairs here`, map[string]string{}},
		{`k="unterminated`, map[string]string{"k": `"unterminated`}},
	}
	for _, tt := range tests {
		got := LogFields(tt.line)
		if len(got) != len(tt.want) {
			t.Errorf("LogFields(%q) = %v, want %v", tt.line, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("LogFields(%q)[%q] = %q, want %q", tt.line, k, got[k], v)
			}
		}
	}
}

func TestMarkerFormsFindEveryEncoding(t *testing.T) {
	marker := []byte(vehicle.BiometricMarker)
	forms := MarkerForms(marker)
	b64 := func(prefix string) string {
		return base64.StdEncoding.EncodeToString([]byte(prefix + vehicle.BiometricMarker + "tail"))
	}
	// A biometric frame as candump and can.Writer print it.
	var log bytes.Buffer
	w := can.NewWriter(&log)
	f := can.Frame{Time: time.Unix(1700000000, 0), Bus: "can0", ID: 0x5A1, Len: 8}
	copy(f.Data[:], marker)
	if err := w.Write(&f); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	tests := []struct {
		name, text string
		found      bool
	}{
		{"raw in a log line", "level=INFO payload=" + vehicle.BiometricMarker, true},
		{"candump line", log.String(), true},
		{"hex lower in JSON", `{"data":"0x42494f4d45545243"}`, true},
		{"spaced hex dump", "0000: 42 49 4F 4D 45 54 52 43", true},
		{"base64 aligned", b64(""), true},
		{"base64 offset 1", b64("x"), true},
		{"base64 offset 2", b64("xy"), true},
		{"base64url in a token", base64.URLEncoding.EncodeToString([]byte("??" + vehicle.BiometricMarker)), true},
		{"an attestation", `{"v":1,"device":"0x3b0c","seq":7,"modes":[{"mode":"ECO","meters":2412}]}`, false},
		{"the profile's biometric message names", `biometric_messages = ["DMS_Face", "0x5A1"] BIOMETRIC`, false},
	}
	for _, tt := range tests {
		got := Scan(tt.name, []byte(tt.text), forms)
		if (len(got) > 0) != tt.found {
			t.Errorf("%s: %q: findings %v, want found=%v", tt.name, tt.text, got, tt.found)
		}
	}
}

func TestTboxdTOMLParses(t *testing.T) {
	tests := []Tboxd{
		{},
		{StateDir: "/data/tbox", TimeScale: 480, Upload: true, Shell: true, ServiceKey: "0x00000000000000000000000000000000000000aa", Checkpoint: 10 * time.Second},
		{Replay: "/drive/week.log", ShutdownGrace: 2 * time.Minute, Upload: true},
	}
	for i, tt := range tests {
		var got struct {
			StateDir      string `toml:"state_dir"`
			ChainID       uint64 `toml:"chain_id"`
			ShutdownGrace string `toml:"shutdown_grace"`
			CAN           struct {
				TimeScale float64 `toml:"time_scale"`
				Replay    string  `toml:"replay"`
			} `toml:"can"`
			MQTT struct {
				Broker        string `toml:"broker"`
				CAFile        string `toml:"ca_file"`
				CertFile      string `toml:"cert_file"`
				KeyFile       string `toml:"key_file"`
				AllowInsecure *bool  `toml:"allow_insecure"`
				Resume        *bool  `toml:"resume_from_receipt"`
			} `toml:"mqtt"`
			Shell struct {
				Device     string `toml:"device"`
				ServiceKey string `toml:"service_pubkey"`
			} `toml:"shell"`
		}
		if _, err := toml.Decode(tt.TOML(), &got); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, tt.TOML())
		}
		if got.ChainID != ChainID || got.StateDir == "" || got.ShutdownGrace == "" {
			t.Errorf("case %d: %+v", i, got)
		}
		wantScale := 0.0
		if tt.TimeScale > 1 {
			wantScale = tt.TimeScale
		}
		if got.CAN.TimeScale != wantScale || got.CAN.Replay != tt.Replay {
			t.Errorf("case %d: can %+v, want time_scale %v replay %q", i, got.CAN, tt.TimeScale, tt.Replay)
		}
		if (got.MQTT.Broker != "") != tt.Upload || (got.Shell.Device != "") != tt.Shell || got.Shell.ServiceKey != tt.ServiceKey {
			t.Errorf("case %d: mqtt %+v shell %+v", i, got.MQTT, got.Shell)
		}
		if tt.Upload {
			// mTLS to the shipped broker, with the files Files puts into
			// the guest; nothing plaintext, the reflash look left on.
			m := got.MQTT
			if m.Broker != "ssl://"+hil.BrokerAddr || m.AllowInsecure != nil || m.Resume != nil ||
				GuestEtc+"/"+m.CAFile != GuestCA || GuestEtc+"/"+m.CertFile != GuestCert || GuestEtc+"/"+m.KeyFile != GuestCertKey {
				t.Errorf("case %d: mqtt %+v, want ssl://%s with %s, %s, %s and no exceptions", i, m, hil.BrokerAddr, GuestCA, GuestCert, GuestCertKey)
			}
		}
	}
}

// attestation makes a signed attestation chained on prev.
func attestation(t *testing.T, key signer.Signer, seq uint64, prev *signer.Attestation, meters uint64) (*signer.Attestation, []byte) {
	t.Helper()
	a := &signer.Attestation{V: 1, Device: key.Address(), Seq: seq, Batch: 2992340 + seq, Batches: 1, Meters: meters,
		Modes: []signer.ModeMeters{{Mode: "ECO", Meters: meters}}}
	if prev != nil {
		a.Prev = signer.Digest(ChainID, prev)
	}
	if err := signer.Sign(key, ChainID, a); err != nil {
		t.Fatal(err)
	}
	return a, a.AppendWire(nil)
}

func TestAnalyze(t *testing.T) {
	dir := t.TempDir()
	if _, err := signer.GenerateKeyFile(filepath.Join(dir, "k")); err != nil {
		t.Fatal(err)
	}
	key, err := signer.LoadKeyFile(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	a1, w1 := attestation(t, key, 1, nil, 100)
	a2, w2 := attestation(t, key, 2, a1, 200)
	_, w3 := attestation(t, key, 3, a2, 300)
	_, w3b := attestation(t, key, 3, a2, 301) // a fork of seq 3
	topic := "csop/v1/" + key.Address().String() + "/"
	msg := func(kind string, p []byte) Message { return Message{Topic: topic + kind, Payload: string(p)} }
	tests := []struct {
		name     string
		msgs     []Message
		order    []uint64
		inOrder  bool
		acked    uint64
		problems int
		nacks    int
		meters   int64
	}{
		{"in order, republished, acked", []Message{msg("att", w1), msg("att", w2), msg("att", w1), msg("ack", []byte(`{"seq":2}`)), msg("att", w3), msg("ack", []byte(`{"seq":3}`))},
			[]uint64{1, 2, 3}, true, 3, 0, 0, 600},
		{"out of order", []Message{msg("att", w2), msg("att", w1)}, []uint64{2, 1}, false, 0, 0, 0, 300},
		{"fork", []Message{msg("att", w1), msg("att", w2), msg("att", w3), msg("att", w3b)}, []uint64{1, 2, 3}, true, 0, 1, 0, 600},
		{"refused and garbage", []Message{msg("att", []byte("{")), msg("nack", []byte(`{"seq":1,"reason":"bad signature"}`)), msg("ack", []byte(`{}`)),
			{Topic: "csop/v1/0xother/att", Payload: "x"}, {Topic: "elsewhere", Payload: "x"}, msg("health", []byte(`{"outbox_depth":0}`))},
			nil, true, 0, 3, 1, 0},
	}
	for _, tt := range tests {
		tr := Analyze(tt.msgs, key.Address())
		if !equalSeqs(tr.Order, tt.order) || tr.InOrder() != tt.inOrder || tr.AckedThrough != tt.acked ||
			len(tr.Problems) != tt.problems || len(tr.Nacks) != tt.nacks {
			t.Errorf("%s: order %v in order %v acked %d problems %q nacks %v", tt.name, tr.Order, tr.InOrder(), tr.AckedThrough, tr.Problems, tr.Nacks)
		}
		if m, _ := tr.Meters(); m != tt.meters {
			t.Errorf("%s: %d m, want %d", tt.name, m, tt.meters)
		}
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadCapture(t *testing.T) {
	msgs := []Message{
		{Time: time.Unix(1700000000, 5).UTC(), Topic: "csop/v1/0xab/att", QoS: 1, Payload: `{"v":1}`},
		{Time: time.Unix(1700000001, 0).UTC(), Topic: "csop/v1/0xab/health", Retained: true, PayloadB64: []byte{0xff, 0x00, 'B'}},
	}
	var b bytes.Buffer
	for _, m := range msgs {
		j, _ := json.Marshal(m)
		b.Write(append(j, '\n'))
	}
	got, err := ReadCapture(&b)
	if err != nil || len(got) != 2 {
		t.Fatalf("ReadCapture: %v, %d messages", err, len(got))
	}
	for i := range msgs {
		if !bytes.Equal(got[i].Bytes(), msgs[i].Bytes()) || got[i].Topic != msgs[i].Topic || !got[i].Time.Equal(msgs[i].Time) {
			t.Errorf("message %d: %+v, want %+v", i, got[i], msgs[i])
		}
	}
	for _, bad := range []string{"{\n", `{"payload":"x"}` + "\n", `{"topic":"a","t":"yesterday"}` + "\n"} {
		if _, err := ReadCapture(strings.NewReader(bad)); !errors.Is(err, ErrCaptureLine) {
			t.Errorf("ReadCapture(%q) = %v, want ErrCaptureLine", bad, err)
		}
	}
}

func FuzzReadCapture(f *testing.F) {
	f.Add([]byte(`{"t":"2026-01-01T00:00:00Z","topic":"csop/v1/0xab/att","qos":1,"payload":"{\"v\":1}"}` + "\n"))
	f.Add([]byte(`{"topic":"x","payload_b64":"/wA="}` + "\n\n"))
	f.Add([]byte("{\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := ReadCapture(bytes.NewReader(b))
		if err == nil {
			for _, m := range msgs {
				if m.Topic == "" {
					t.Fatal("a message without topic accepted")
				}
			}
		}
		Analyze(msgs, signer.Address{})
	})
}

func TestWriteLogCompressesTime(t *testing.T) {
	p, err := profile.Load("../../agent/profile/testdata/ev.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := Drive{Seed: 3, Start: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC), Duration: 20 * time.Minute, NoParking: true, OdometerHz: 2, SpeedHz: 2, ModeHz: 1}
	var frames []can.Frame
	led := NewLedger(p)
	truth, err := d.Scenario().Frames(p, func(f *can.Frame) error {
		frames = append(frames, *f)
		led.Frame(f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := led.Meters(); m != truth.Meters || m == 0 {
		t.Errorf("the ledger credits %d m, the simulator's truth %d m", m, truth.Meters)
	}
	path := filepath.Join(t.TempDir(), "part.log")
	if err := WriteLog(path, frames, 240); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rd := can.NewReader(bytes.NewReader(b))
	var got []can.Frame
	for rd.Receive() {
		got = append(got, *rd.Frame())
	}
	if rd.Err() != nil || len(got) != len(frames) {
		t.Fatalf("read back %d of %d frames: %v", len(got), len(frames), rd.Err())
	}
	span := got[len(got)-1].Time.Sub(got[0].Time)
	want := frames[len(frames)-1].Time.Sub(frames[0].Time) / 240
	if d := span - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("the log spans %v, want %v (the drive's span / 240)", span, want)
	}
	for i := range got {
		if got[i].ID != frames[i].ID || got[i].Data != frames[i].Data {
			t.Fatalf("frame %d differs", i)
		}
	}
}

func TestVsimArgs(t *testing.T) {
	d := Drive{Seed: 9, Start: time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC), Duration: 8 * time.Hour, Pace: 480, OdometerHz: 2, SpeedHz: 2, NoParking: true, Biometric: true}
	got := d.VsimArgs("/tmp/t.json")
	for _, want := range []string{"--seed 9", "--duration 8h0m0s", "--start 2026-03-01T07:00:00Z", "--pace 480", "--odometer-hz 2", "--speed-hz 2", "--parking=false", "--biometric", "--noise 0", "--truth /tmp/t.json"} {
		if !strings.Contains(got, want) {
			t.Errorf("VsimArgs = %q, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "--mode-hz") {
		t.Errorf("VsimArgs = %q: --mode-hz set though ModeHz is 0 (vsim's default)", got)
	}
	if d.Wall() != time.Minute {
		t.Errorf("Wall = %v, want 1m (8 h at 480x)", d.Wall())
	}
}
