//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// TestReplayKill replays a long drive through the real tboxctl binary (this
// test binary re-executed as tboxctl, see TestMain) into a --state DIR, and
// kills it with SIGKILL at seeded random moments, at least 200 times. Each
// time it restarts the replay on the same DIR with the rest of the log, from
// where the test had written to (what the killed process had not read yet is
// lost, as on a real bus). After every kill the lines printed so far must
// form one chain: seq contiguous from 1, prev equal to the digest of seq-1,
// every signature good, and no seq printed twice with different content (a
// fork). At the end the meters add up to the ground truth exactly, verify
// accepts the chain and the state's outbox holds the same attestations.
//
// Duplicate policy: a line is printed (and flushed) once its attestation is
// durable, then the DIR's "printed" marker is updated. A restarted replay
// first prints the durable attestations after the marker, so a kill between
// durability and printing leaves no gap. A kill between the write and the
// marker update makes the restarted replay print that line once more,
// identical: such a duplicate must be the first line of the restarted run
// and repeat the last line printed before it. The test counts them.
func TestReplayKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the replay 200 times; skipped with -short")
	}
	const wantKills = 200
	began := time.Now()
	p := loadEV(t)
	// Two days of driving without parking: about 290 batches, so that
	// attestations are made, and kills land, all along the log. Low frame
	// rates keep the log small (the 5 s GAP limit is far above 0.5 s).
	log, truth := driveLog(t, p, vehicle.Scenario{
		Seed: 31337, Start: start, Duration: 48 * time.Hour,
		ModeChanges: true, StopAndGo: true, Noise: 1,
		OdometerHz: 2, SpeedHz: 2, ModeHz: 1,
	})
	lines := bytes.SplitAfter(log, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	key, addr := newKey(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	rng := rand.New(rand.NewSource(1))
	avg := len(lines) / (wantKills + 20)

	u := newUnion(t, defaultChainID, addr)
	pos, kills := 0, 0
	for cycle := 0; ; cycle++ {
		outPath := filepath.Join(dir, fmt.Sprintf("out%03d.jsonl", cycle))
		errPath := filepath.Join(dir, fmt.Sprintf("err%03d.txt", cycle))
		c, stdin := startReplay(t, state, key, outPath, errPath)

		if kills >= wantKills || pos >= len(lines) {
			// The last run reads the rest of the log and ends cleanly.
			if err := writeLines(stdin, lines[pos:]); err != nil {
				t.Fatalf("run %d: writing the log: %v", cycle, err)
			}
			stdin.Close()
			err := c.Wait()
			errText, _ := os.ReadFile(errPath)
			if err != nil || len(errText) > 0 {
				t.Fatalf("last run: %v, stderr %q", err, errText)
			}
			u.addRun(cycle, outPath)
			break
		}

		// What this run gets before the kill: a seeded number of lines
		// (none at all now and then: a kill while it opens the store and
		// catches up), then a seeded pause.
		budget := 0
		if rng.Intn(10) > 0 {
			budget = rng.Intn(2*avg) + 1
		}
		end := min(pos+budget, len(lines)-1) // the very last line stays for the last run
		if err := writeLines(stdin, lines[pos:end]); err != nil {
			t.Fatalf("run %d: writing the log: %v (stderr %s)", cycle, err, readFile(errPath))
		}
		pos = end
		// Until the device's first attestation is out, the first odometer
		// reading it took is what the telescoping sum starts from; a test
		// that threw it away would change the ground truth. Feed on until
		// a line is printed.
		for len(u.lines) == 0 && fileSize(outPath) == 0 && pos < len(lines)-1 {
			end := min(pos+500, len(lines)-1)
			if err := writeLines(stdin, lines[pos:end]); err != nil {
				t.Fatalf("run %d: writing the log: %v (stderr %s)", cycle, err, readFile(errPath))
			}
			pos = end
			time.Sleep(time.Millisecond)
		}
		if d := rng.Intn(4); d > 0 {
			time.Sleep(time.Duration(rng.Intn(d*1000)) * time.Microsecond)
		}
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("run %d: kill: %v", cycle, err)
		}
		err := c.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d ended before the kill: %v, stderr %s", cycle, err, readFile(errPath))
		}
		kills++
		u.addRun(cycle, outPath)
		if t.Failed() {
			t.FailNow()
		}
	}

	// The whole chain.
	all := u.dedup()
	if got := sumMeters(parseLines(t, all)); got != truth.Meters {
		t.Errorf("meters over the union %d, ground truth %d", got, truth.Meters)
	}
	if v := tboxctl(t, strings.NewReader(all), "verify", "--device", addr.String()); v.code != 0 {
		t.Errorf("verify on the de-duplicated union: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	if o := tboxctl(t, nil, "outbox", "--state", state); o.code != 0 || o.stdout != all {
		t.Errorf("outbox (exit %d) holds other attestations than were printed", o.code)
	}
	elapsed := time.Since(began)
	t.Logf("%d kills, %d attestations, %d identical duplicates (%d lines printed), %d m = ground truth %d m, %v",
		kills, len(u.lines), u.dups, u.printed, sumMeters(parseLines(t, all)), truth.Meters, elapsed.Round(time.Millisecond))
	if kills < wantKills {
		t.Errorf("only %d kills", kills)
	}
}

func startReplay(t *testing.T, state, key, outPath, errPath string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	c := exec.Command(os.Args[0], "replay", "--profile", evProfile, "--key", key, "--state", state)
	c.Env = append(os.Environ(), asMainEnv+"=1")
	c.Stdout, c.Stderr = out, errf
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c, stdin
}

func writeLines(w io.Writer, lines [][]byte) error {
	for len(lines) > 0 {
		n := min(len(lines), 500)
		if _, err := w.Write(bytes.Join(lines[:n], nil)); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// union is the chain printed by all runs so far.
type union struct {
	t       *testing.T
	chainID uint64
	device  signer.Address
	lines   []string   // by seq-1
	digests [][32]byte // by seq-1
	dups    int
	printed int
}

func newUnion(t *testing.T, chainID uint64, device signer.Address) *union {
	return &union{t: t, chainID: chainID, device: device}
}

// addRun checks the output of one run against the chain printed before it.
func (u *union) addRun(run int, path string) {
	t := u.t
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("run %d: a partial line: %q", run, b[bytes.LastIndexByte(b, '\n')+1:])
	}
	for i, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(l, "\n") {
			continue
		}
		u.printed++
		a, err := signer.ParseWire([]byte(l))
		if err != nil {
			t.Errorf("run %d line %d: %v", run, i+1, err)
			continue
		}
		switch {
		case a.Device != u.device:
			t.Errorf("run %d line %d: device %s, want %s", run, i+1, a.Device, u.device)
		case a.Seq == 0 || a.Seq > uint64(len(u.lines))+1:
			t.Errorf("run %d line %d: seq %d after seq %d: a gap", run, i+1, a.Seq, len(u.lines))
		case a.Seq <= uint64(len(u.lines)):
			if u.lines[a.Seq-1] != l {
				t.Errorf("run %d line %d: seq %d printed before with other content: a fork\nbefore: %snow:    %s",
					run, i+1, a.Seq, u.lines[a.Seq-1], l)
			} else if i != 0 || a.Seq != uint64(len(u.lines)) {
				t.Errorf("run %d line %d: seq %d repeated, but not as the run's first line repeating the last line printed (seq %d)",
					run, i+1, a.Seq, len(u.lines))
			}
			u.dups++
		default:
			if err := signer.Verify(u.chainID, a); err != nil {
				t.Errorf("run %d line %d: %v", run, i+1, err)
			}
			var want [32]byte
			if a.Seq > 1 {
				want = u.digests[a.Seq-2]
			}
			if a.Prev != want {
				t.Errorf("run %d line %d: seq %d prev 0x%x, digest of seq %d is 0x%x", run, i+1, a.Seq, a.Prev, a.Seq-1, want)
			}
			u.lines = append(u.lines, l)
			u.digests = append(u.digests, signer.Digest(u.chainID, a))
		}
	}
}

// dedup returns the chain, one line per seq, in seq order.
func (u *union) dedup() string { return strings.Join(u.lines, "") }
