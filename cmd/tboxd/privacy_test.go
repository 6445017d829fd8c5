package main

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
)

// secret is a byte string that must never appear in the agent's output,
// with why.
type secret struct {
	what string
	b    []byte
}

// spellings returns s as raw bytes and in the hex and base64 spellings a log
// or a database could hold it in.
func spellings(what string, b []byte) []secret {
	h := hex.EncodeToString(b)
	return []secret{
		{what + " (raw bytes)", b},
		{what + " (lowercase hex)", []byte(h)},
		{what + " (uppercase hex)", []byte(strings.ToUpper(h))},
		{what + " (base64)", []byte(strings.TrimRight(base64.StdEncoding.EncodeToString(b), "="))},
	}
}

// keySecrets reads the device key file and returns its private scalar and
// its PEM body.
func keySecrets(t *testing.T, path string) []secret {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	var k struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
		PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
	}
	if _, err := asn1.Unmarshal(blk.Bytes, &k); err != nil || len(k.PrivateKey) != 32 {
		t.Fatalf("%s: SEC1 key: %v (%d-byte scalar)", path, err, len(k.PrivateKey))
	}
	out := spellings("private key scalar", k.PrivateKey)
	out = append(out, spellings("private key DER", blk.Bytes)...)
	body := strings.SplitN(string(data), "\n", 2)[1] // after the BEGIN line
	for _, l := range strings.Split(body, "\n") {
		if len(l) >= 32 && !strings.HasPrefix(l, "-----") {
			out = append(out, secret{"private key PEM body line", []byte(l)})
		}
	}
	return out
}

// framePayloads returns the hex of every distinct profile-frame payload in
// the log: the raw frames the agent reads. Payloads with fewer than four
// distinct hex digits (mostly zeros) are left out: they would match
// innocent runs of zeros.
func framePayloads(t *testing.T, log string) map[string]bool {
	t.Helper()
	p, err := profile.Load(evProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	var keys []can.Key
	for _, bus := range p.Buses() {
		keys = append(keys, p.Filter(bus).Keys()...)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	r := can.NewReader(f, can.WithFilter(can.NewFilter(keys...)))
	for r.Receive() {
		fr := r.Frame()
		h := hex.EncodeToString(fr.Data[:fr.Len])
		if len(h) >= 8 && distinct(h) >= 4 {
			out[h] = true
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, c := range s {
		seen[c] = true
	}
	return len(seen)
}

var reHexRun = regexp.MustCompile(`[0-9a-fA-F]{8,}`)

// TestLogsHoldNoSecrets: a drive with biometric frames on the bus, the agent
// at log level debug. Neither its stderr nor its stdout nor any file in its
// state directory holds a biometric byte, the device key, or a raw frame.
func TestLogsHoldNoSecrets(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{
		Seed: 61, Start: pastStart(40 * time.Minute), Duration: 40 * time.Minute,
		Biometric: true, ModeChanges: true, Noise: 2, OdometerHz: 10, SpeedHz: 5, ModeHz: 2,
	}
	log, truth := writeDrive(t, r.dir, sc)
	if truth.Frames.Biometric == 0 {
		t.Fatal("the drive has no biometric frames")
	}
	logBytes, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte(vehicle.BiometricMarker)
	if !bytes.Contains(logBytes, []byte(hex.EncodeToString(marker))) && !bytes.Contains(logBytes, []byte(strings.ToUpper(hex.EncodeToString(marker)))) {
		t.Fatal("the drive log does not carry the biometric marker: the test would prove nothing")
	}
	r.col.start()
	a := r.startAgent(r.writeConfig(agentConf{Replay: log, LogLevel: "debug"}))
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d, want 0", code)
	}
	stderr := a.stderr()
	if !strings.Contains(stderr, "level=DEBUG") {
		t.Fatal("no debug line in the agent's log: the test would prove nothing")
	}

	secrets := append(spellings("biometric marker", marker), keySecrets(t, r.key)...)
	places := map[string][]byte{"stderr": []byte(stderr), "stdout": a.stdout.Bytes()}
	err = filepath.WalkDir(r.stateDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		places[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(places) < 3 {
		t.Fatalf("no file in the state directory %s", r.stateDir())
	}
	for where, b := range places {
		for _, s := range secrets {
			if i := bytes.Index(b, s.b); i >= 0 {
				t.Errorf("%s holds the %s at byte %d", where, s.what, i)
			}
		}
	}

	payloads := framePayloads(t, log)
	if len(payloads) == 0 {
		t.Fatal("no profile frame in the drive log")
	}
	for _, run := range reHexRun.FindAllString(stderr, -1) {
		run = strings.ToLower(run)
		for i := 0; i+16 <= len(run); i++ {
			if payloads[run[i:i+16]] {
				t.Errorf("stderr holds the raw payload %s of a profile frame", run[i:i+16])
			}
		}
	}
}
