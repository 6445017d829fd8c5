package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// asMainEnv, set to 1 in a child's environment, makes the test binary run
// tboxctl's main instead of the tests: the process-kill test runs the real
// command this way, without a separate go build.
const asMainEnv = "TBOXCTL_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// Paths of the sample car's profile and its test data (agent/profile/testdata).
var (
	profileDir = filepath.Join("..", "..", "agent", "profile", "testdata")
	evProfile  = filepath.Join(profileDir, "ev.toml")
)

// result is what one run of the command left.
type result struct {
	code   int
	stdout string
	stderr string
}

// tboxctl runs the command in process with stdin and returns what it wrote.
func tboxctl(t testing.TB, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdin, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// newKey makes a device key file in a fresh directory and returns its path
// and address.
func newKey(t testing.TB) (string, signer.Address) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.key")
	addr, err := signer.GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, addr
}

func loadEV(t testing.TB) *profile.Profile {
	t.Helper()
	p, err := profile.Load(evProfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// driveLog plays s with p into an in-memory candump log.
func driveLog(t testing.TB, p *profile.Profile, s vehicle.Scenario) ([]byte, vehicle.Truth) {
	t.Helper()
	var buf bytes.Buffer
	sink := vehicle.NewLogSink(&buf)
	tr, err := s.Frames(p, sink.WriteFrame)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tr
}

// streamDrive plays s with p as a candump log into the returned reader,
// without holding the log in memory, and shows each frame to observe (when
// not nil) on the way. truth returns the ground truth once the reader
// reached EOF; stop must be called when the reader is abandoned.
func streamDrive(p *profile.Profile, s vehicle.Scenario, observe func(*can.Frame)) (r io.Reader, truth func() (vehicle.Truth, error), stop func()) {
	pr, pw := io.Pipe()
	type done struct {
		tr  vehicle.Truth
		err error
	}
	ch := make(chan done, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		sink := vehicle.NewLogSink(bw)
		tr, err := s.Frames(p, func(f *can.Frame) error {
			if observe != nil {
				observe(f)
			}
			return sink.WriteFrame(f)
		})
		if err == nil {
			err = sink.Flush()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		ch <- done{tr, err}
	}()
	var got *done
	wait := func() done {
		if got == nil {
			d := <-ch
			got = &d
		}
		return *got
	}
	truth = func() (vehicle.Truth, error) { d := wait(); return d.tr, d.err }
	stop = func() { pr.CloseWithError(io.ErrClosedPipe); wait() }
	return pr, truth, stop
}

// parseLines parses wire-form attestation lines; a line that does not parse
// fails the test.
func parseLines(t testing.TB, out string) []*signer.Attestation {
	t.Helper()
	var atts []*signer.Attestation
	for i, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		a, err := signer.ParseWire([]byte(l))
		if err != nil {
			t.Fatalf("output line %d: %v: %s", i+1, err, l)
		}
		atts = append(atts, a)
	}
	return atts
}

// start is a fixed start time for the simulated drives: 2023-11-14 22:13:20 UTC.
var start = time.Unix(1700000000, 0)
