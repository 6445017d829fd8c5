package store

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPruneCorrupt: of the damaged databases moved aside, the newest
// keepCorrupt stay; other files, and a directory whose name holds glob
// characters, are left alone.
func TestPruneCorrupt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state[1]*")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"outbox.db", "outbox.db.corrupt-1700000001", "outbox.db.corrupt-1700000002", "outbox.db.corrupt-1700000003",
		"outbox.db.corrupt-1700000004", "outbox.db.corrupt-1700000005", "outbox.db.corrupt", "outbox.dbx.corrupt-1", "sidecar.corrupt-1",
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &Store{dir: dir, path: filepath.Join(dir, "outbox.db"), log: slog.New(slog.DiscardHandler)}
	s.pruneCorrupt()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{
		"outbox.db", "outbox.db.corrupt", "outbox.db.corrupt-1700000003", "outbox.db.corrupt-1700000004",
		"outbox.db.corrupt-1700000005", "outbox.dbx.corrupt-1", "sidecar.corrupt-1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("after pruning: %q, want %q", got, want)
	}
}
