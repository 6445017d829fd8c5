//go:build unix

package store

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKill kills a writer with SIGKILL at random moments, 50+ times, and
// checks after each restart that the chain has no gap, duplicate or fork.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process 60 times")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	known := map[uint64][32]byte{}
	var lastHead uint64
	completed := 0 // restarts that found the sidecar one record ahead
	const kills = 60
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; i < kills; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills before the deadline", i)
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			// Sometimes kill during the child's Open and repair.
			time.Sleep(time.Duration(rng.IntN(15_000)) * time.Microsecond)
		} else {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("kill %d: helper did not start: %q %s", i, line, stderr.String())
			}
			time.Sleep(time.Duration(1_000+rng.IntN(40_000)) * time.Microsecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: helper ended by itself: %v: %s", i, err, stderr.String())
		}

		s, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("kill %d: Open: %v", i, err)
		}
		rec := s.Stats().Recovery
		if rec.MovedAside != "" || rec.MaybeLost != 0 || rec.SidecarRewritten {
			t.Errorf("kill %d: a killed process must not need more than completing an append: %q", i, rec.Notes)
		}
		if rec.Requeued != 0 {
			completed++
		}
		head, digest := s.Last()
		if head < lastHead {
			t.Fatalf("kill %d: head went back from %d to %d", i, lastHead, head)
		}
		if d, ok := known[head]; ok && d != digest {
			t.Fatalf("kill %d: head %d has a new digest: fork", i, head)
		}
		p, err := s.Pending(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, p, known)
		st := s.Stats()
		if len(p) > 0 && (p[len(p)-1].Seq != head || p[0].Seq != st.AckedThrough+1) {
			t.Fatalf("kill %d: pending %d..%d, want %d..%d", i, p[0].Seq, p[len(p)-1].Seq, st.AckedThrough+1, head)
		}
		if len(p) == 0 && st.AckedThrough != head {
			t.Fatalf("kill %d: nothing pending but acked %d < head %d", i, st.AckedThrough, head)
		}
		state, _ := s.State()
		if got, _, _ := strings.Cut(strings.TrimPrefix(string(state), "seq="), ";"); head > 0 && got != strconv.FormatUint(head, 10) {
			t.Fatalf("kill %d: state %q does not belong to head %d", i, state, head)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		lastHead = head
		known[head] = digest
	}
	t.Logf("%d kills, head reached %d, %d restarts completed an interrupted append", kills, lastHead, completed)
	if lastHead < kills {
		t.Errorf("head %d after %d runs: the helper barely appended", lastHead, kills)
	}
}
