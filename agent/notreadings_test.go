package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
)

// TestNotReadingsCounted: an odometer frame whose raw value the DBC's value
// table names (SNA), and one too short to decode, credit nothing and are
// counted for the shell.
func TestNotReadingsCounted(t *testing.T) {
	dir := filepath.Join("profile", "testdata")
	evTOML, err := os.ReadFile(filepath.Join(dir, "ev.toml"))
	if err != nil {
		t.Fatal(err)
	}
	evDBC, err := os.ReadFile(filepath.Join(dir, "ev.dbc"))
	if err != nil {
		t.Fatal(err)
	}
	evDBC = append(evDBC, "\nVAL_ 1345 Odometer 4294967295 \"SNA\" ;\n"...)
	p, err := profile.LoadFS(fstest.MapFS{"ev.toml": {Data: evTOML}, "ev.dbc": {Data: evDBC}}, "ev.toml")
	if err != nil {
		t.Fatal(err)
	}
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: 1, Profile: p}, newKey(t), &agent.MemoryOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	frames := []can.Frame{
		{ID: 0x541, Len: 8, Time: now, Data: [64]byte{0xFF, 0xFF, 0xFF, 0xFF}},
		{ID: 0x541, Len: 8, Time: now.Add(time.Second), Data: [64]byte{0xFF, 0xFF, 0xFF, 0xFF}},
		{ID: 0x541, Len: 2, Time: now.Add(2 * time.Second), Data: [64]byte{1, 2}},
	}
	for i := range frames {
		if err := att.Frame(&frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	nr := att.NotReadings()
	if nr.Named(profile.Odometer) != 2 || nr.Undecodable(profile.Odometer) != 1 {
		t.Errorf("odometer: %d named, %d undecodable; want 2 and 1", nr.Named(profile.Odometer), nr.Undecodable(profile.Odometer))
	}
	if st := att.DecoderStats(); st.Readings != 0 {
		t.Errorf("%d readings from SNA and short frames, want none", st.Readings)
	}
}
