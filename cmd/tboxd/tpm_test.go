//go:build tpm

package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/tpmkey"
	"github.com/csop/tbox/signer/tpmkey/swtpmtest"
	"github.com/csop/tbox/store"
)

func init() { buildTags = "tpm" }

// TestTPMKeyDrive: tboxd with key = "tpm:FILE" unseals the key from a real
// swtpm and signs a drive's attestations with it; once a policy PCR is
// extended (another boot chain), it refuses to start, exit 2, saying why.
func TestTPMKeyDrive(t *testing.T) {
	sw := swtpmtest.Start(t)
	r := newRig(t)
	sealedPath := r.dir + "/device.sealed"
	tp, err := tpmkey.Open(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	addr, err := tpmkey.Generate(tp, sealedPath, []int{16})
	if err != nil {
		t.Fatal(err)
	}
	sc := vehicle.Scenario{Seed: 3, Start: pastStart(time.Hour), Duration: time.Hour, OdometerHz: 10, SpeedHz: 5, ModeHz: 2}
	log, _ := writeDrive(t, r.dir, sc)
	r.key = "tpm:" + sealedPath
	cfg := r.writeConfig(agentConf{Replay: log, NoBroker: true, Grace: time.Second})
	appendTo(t, cfg, "\n[tpm]\ndevice = \""+sw.Socket+"\"\n")

	a := r.startAgent(cfg)
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd on a TPM-sealed key: exit %d", code)
	}
	if !strings.Contains(a.stderr(), "device key unsealed by the TPM") || !strings.Contains(a.stderr(), "device="+addr.String()) {
		t.Errorf("tboxd's log does not show the unsealed key %s", addr)
	}
	st, err := store.Open(r.stateDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.Pending(0, 1000)
	st.Close()
	if err != nil || len(recs) < 5 {
		t.Fatalf("%d attestations in the outbox (%v), want an hour's", len(recs), err)
	}
	for _, rec := range recs {
		att, err := signer.ParseWire(rec.Wire)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := signer.Recover(20220807, att); err != nil || got != addr {
			t.Fatalf("seq %d signed by %s (%v), want the sealed key %s", rec.Seq, got, err, addr)
		}
	}

	// Another boot chain: PCR 16 extended.
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(16), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: bytes.Repeat([]byte{1}, 32)}}},
	}).Execute(tp); err != nil {
		t.Fatal(err)
	}
	b := r.startAgent(cfg)
	if code := b.wait(30 * time.Second); code != 2 {
		t.Fatalf("tboxd after a PCR extend: exit %d, want 2", code)
	}
	re := regexp.MustCompile(`TPM-sealed key .*device.sealed.*PCRs differ.*another chain`)
	if !re.MatchString(b.stderr()) {
		t.Errorf("tboxd's error does not say the PCRs changed:\n%s", tail(b.stderr(), 5))
	}
}

// TestTPMKeyElsewhere: the sealed file copied to another device (another
// swtpm, with its own seeds) does not start tboxd there: exit 2, saying
// the file belongs to another device. --check-config passes a tpm: key
// whose file and TPM are there, and lists a missing sealed file and a
// missing TPM device, exit 2.
func TestTPMKeyElsewhere(t *testing.T) {
	sw, other := swtpmtest.Start(t), swtpmtest.Start(t)
	r := newRig(t)
	sealedPath := r.dir + "/device.sealed"
	tp, err := tpmkey.Open(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if _, err := tpmkey.Generate(tp, sealedPath, []int{7}); err != nil {
		t.Fatal(err)
	}
	sc := vehicle.Scenario{Seed: 5, Start: pastStart(time.Hour), Duration: time.Hour, OdometerHz: 10, SpeedHz: 5, ModeHz: 2}
	log, _ := writeDrive(t, r.dir, sc)
	r.key = "tpm:" + sealedPath
	cfg := r.writeConfig(agentConf{Replay: log, NoBroker: true, Grace: time.Second})
	appendTo(t, cfg, "\n[tpm]\ndevice = \""+other.Socket+"\"\n")

	check := func(cfg string) (int, string) {
		cmd := exec.Command(bins.tboxd, "--config", cfg, "--check-config")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := check(cfg); code != 0 {
		t.Fatalf("--check-config of a tpm: key with its file and TPM: exit %d\n%s", code, out)
	}
	a := r.startAgent(cfg)
	if code := a.wait(30 * time.Second); code != 2 {
		t.Fatalf("tboxd on another TPM: exit %d, want 2\n%s", code, tail(a.stderr(), 5))
	}
	if !regexp.MustCompile(`TPM-sealed key .*device.sealed.*not made by this TPM.*belongs to another device`).MatchString(a.stderr()) {
		t.Errorf("tboxd's error does not say the file is another device's:\n%s", tail(a.stderr(), 5))
	}

	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := r.dir + "/bad.toml"
	body := strings.NewReplacer(sealedPath, r.dir+"/nowhere.sealed", other.Socket, r.dir+"/no-tpm").Replace(string(orig))
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := check(bad)
	if code != 2 {
		t.Fatalf("--check-config with neither the sealed file nor the TPM: exit %d, want 2\n%s", code, out)
	}
	for _, want := range []string{bad + ": key", "nowhere.sealed", bad + ": tpm.device", "no-tpm"} {
		if !strings.Contains(out, want) {
			t.Errorf("--check-config output lacks %q:\n%s", want, out)
		}
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
