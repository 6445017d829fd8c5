package main

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
)

// driveOffline replays a half-hour drive through tboxd with no broker, so
// that every attestation stays in the outbox, and returns the head.
func driveOffline(t *testing.T, r *rig) uint64 {
	t.Helper()
	sc := vehicle.Scenario{Seed: 14, Start: pastStart(30 * time.Minute), Duration: 30 * time.Minute,
		OdometerHz: 10, SpeedHz: 5, ModeHz: 2}
	log, _ := writeDrive(t, r.dir, sc)
	a := r.startAgent(r.writeConfig(agentConf{Replay: log, NoBroker: true}))
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d, want 0", code)
	}
	ob := outboxStats(t, r.stateDir())
	if ob.Head < 3 || ob.AckedThrough != 0 {
		t.Fatalf("outbox head %d, acked through %d: want a few attestations, none acked", ob.Head, ob.AckedThrough)
	}
	return ob.Head
}

// dirFiles returns every file of dir by name with its bytes.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// damageAt overwrites n bytes at off in the file at path.
func damageAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", n)), off); err != nil {
		t.Fatal(err)
	}
}

// tearNewestMeta tears the newest of outbox.db's two bbolt meta pages in
// the state directory dir, as a cut mid-write leaves it: its second half
// overwritten. The meta pages are pages 0 and 1; the meta follows the
// 16-byte page header: magic, version, page size, flags, root (16),
// freelist, pgid, txid (at 48), checksum.
func tearNewestMeta(t *testing.T, dir string) {
	t.Helper()
	db := filepath.Join(dir, "outbox.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(binary.NativeEndian.Uint32(b[16+8:]))
	tx0, tx1 := binary.NativeEndian.Uint64(b[16+48:]), binary.NativeEndian.Uint64(b[ps+16+48:])
	newest := int64(0)
	if tx1 > tx0 {
		newest = 1
	}
	damageAt(t, db, newest*ps+16+32, 32)
}

// TestTornMetaAndDamagedSidecarExit1 is issue 14 (d) through the binary:
// the newest bbolt meta page of outbox.db torn and the sidecar damaged.
// tboxd must exit 1 with a clear error and write nothing; starting from the
// older transaction would sign the published head seq again (a fork).
func TestTornMetaAndDamagedSidecarExit1(t *testing.T) {
	r := newRig(t)
	head := driveOffline(t, r)

	tearNewestMeta(t, r.stateDir())
	damageAt(t, filepath.Join(r.stateDir(), "head"), 20, 8)
	before := dirFiles(t, r.stateDir())

	a := r.startAgent(r.writeConfig(agentConf{Replay: os.DevNull, NoBroker: true}))
	if code := a.wait(30 * time.Second); code != 1 {
		t.Fatalf("tboxd exit status %d, want 1", code)
	}
	if !strings.Contains(a.stderr(), "chain head lost") || !strings.Contains(a.stderr(), "meta page") {
		t.Errorf("stderr does not say why:\n%s", tail(a.stderr(), 5))
	}
	if after := dirFiles(t, r.stateDir()); !maps.Equal(before, after) {
		t.Errorf("tboxd changed the state directory (head was %d): nothing may be rewritten", head)
	}
}

// TestReseedReportsLostSeqs is issue 14 (c) at the agent: outbox.db
// damaged, the outbox re-seeded from its sidecar. tboxd logs the seqs that
// may be lost at this start and every later one, and its retained health
// report carries them for the collector.
func TestReseedReportsLostSeqs(t *testing.T) {
	r := newRig(t)
	head := driveOffline(t, r)
	if err := os.Truncate(filepath.Join(r.stateDir(), "outbox.db"), 0); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("seqs_maybe_lost=1..%d", head-1)
	hw := watchHealth(t, r.broker.URL(), r.device)
	for run := range 2 {
		start := time.Now()
		a := r.startAgent(r.writeConfig(agentConf{Replay: os.DevNull, Pace: 1, Grace: time.Second}))
		if _, ok := a.waitLine(regexp.MustCompile(regexp.QuoteMeta(want)), start, 10*time.Second); !ok {
			t.Errorf("run %d: no log line with %s", run, want)
		}
		if run == 0 { // the watcher keeps every report: the first run's proves it
			h, ok := hw.waitFor(func(h healthReport) bool { return h.Agent.MaybeLost != nil }, 10*time.Second)
			if !ok || h.Agent.MaybeLost.From != 1 || h.Agent.MaybeLost.To != head-1 {
				t.Errorf("health reports %+v, want maybe_lost 1..%d", hw.all(), head-1)
			}
		}
		a.signal(syscall.SIGTERM)
		if code := a.wait(20 * time.Second); code != 0 {
			t.Fatalf("run %d: tboxd exit status %d", run, code)
		}
	}
	if ob := outboxStats(t, r.stateDir()); ob.Head != head || ob.Lost.From != 1 || ob.Lost.To != head-1 {
		t.Errorf("outbox head %d, lost %v: want head %d, 1..%d", ob.Head, ob.Lost, head, head-1)
	}
}
