package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/ledgertest"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
)

// TestRegistryInLedger: without a registry file, add, remove and list act
// on the ledger's registry.
func TestRegistryInLedger(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", strings.Replace(baseConfig(""), "registry = \"devices.txt\"\n", "", 1))
	k1, k2 := newKey(t).Address(), newKey(t).Address()
	ctx := context.Background()
	if code, out, errOut := run(t, ctx, "registry", "add", "--config", cfg, k1.String(), k2.String()); code != 0 || !strings.HasPrefix(out, "2 added to the registry in") {
		t.Fatalf("add: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "registry", "remove", "--config", cfg, k2.String()); code != 0 || !strings.HasPrefix(out, "1 removed") {
		t.Fatalf("remove: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "registry", "list", "--config", cfg); code != 0 || out != k1.String()+"\n" {
		t.Fatalf("list: exit %d: %q%s, want %s", code, out, errOut, k1)
	}
	if code, _, _ := run(t, ctx, "registry", "remove", "--config", cfg); code != 2 {
		t.Errorf("remove without addresses: exit %d, want 2", code)
	}
}

// TestRegistryFileRemove: with a registry file, remove rewrites it.
func TestRegistryFileRemove(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", baseConfig(""))
	k1, k2 := newKey(t).Address(), newKey(t).Address()
	writeFile(t, dir, "devices.txt", "# fleet\n"+k1.String()+"\n"+k2.String()+" # the second\n")
	if code, out, errOut := run(t, context.Background(), "registry", "remove", "--config", cfg, k2.String()); code != 0 || !strings.HasPrefix(out, "1 removed") {
		t.Fatalf("remove: exit %d: %s%s", code, out, errOut)
	}
	if code, out, _ := run(t, context.Background(), "registry", "list", "--config", cfg); code != 0 || out != k1.String()+"\n" {
		t.Errorf("list after remove: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "devices.txt")); string(b) != "# fleet\n"+k1.String()+"\n" {
		t.Errorf("file after remove: %q", b)
	}
}

// TestReadWhileHeld: a read command on a bbolt ledger a collector holds
// fails at once, naming the holder; backup works once it is released and
// gives a ledger that audits.
func TestReadWhileHeld(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", baseConfig(""))
	l, err := ledger.Open(filepath.Join(dir, "c.db"), &ledger.Options{ChainID: 20220807})
	if err != nil {
		t.Fatal(err)
	}
	c := ledgertest.NewChain(t)
	for i := 0; i < 3; i++ {
		x := c.Next(t, 2_900_000+uint64(i), 1, 100)
		if err := l.Update(func(tx ledger.Tx) error {
			return tx.Append(x.A, x.Digest, x.Wire, ledger.Verdict{Eligible: true, Code: "eligible"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, cmd := range [][]string{{"stats"}, {"audit"}, {"backup", filepath.Join(dir, "b.db")}} {
		code, out, errOut := run(t, ctx, append([]string{cmd[0], "--config", cfg}, cmd[1:]...)...)
		if code != 1 || !strings.Contains(errOut, ledger.ErrLocked.Error()) || !strings.Contains(errOut, fmt.Sprintf("process %d", os.Getpid())) {
			t.Errorf("%s while held: exit %d: %s%s; want exit 1 naming process %d", cmd[0], code, out, errOut, os.Getpid())
		}
	}
	l.Close()
	backup := filepath.Join(dir, "b.db")
	if code, out, errOut := run(t, ctx, "backup", "--config", cfg, backup); code != 0 {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}
	b, err := ledger.Open(backup, &ledger.Options{ChainID: 20220807, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Audit(); err != nil {
		t.Error(err)
	}
	if s, err := b.Stats(); err != nil || len(s.Devices) != 1 || s.Devices[0].Head != 3 {
		t.Errorf("backup stats %+v %v", s, err)
	}
}

// TestPostgresCommands: with database_url, the read commands and the
// registry run while a collector's connection writes.
func TestPostgresCommands(t *testing.T) {
	url := pgtest.DB(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", strings.Replace(baseConfig(fmt.Sprintf("database_url = %q\n", url)), "db = \"c.db\"\n", "", 1))
	ctx := context.Background()
	l, err := pgledger.Open(ctx, url, &pgledger.Options{ChainID: 20220807})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := ledgertest.NewChain(t)
	x := c.Next(t, 2_900_000, 1, 100)
	// A write transaction holding the device's row stays open while the
	// commands run.
	hold := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Update(func(tx ledger.Tx) error {
			if err := tx.Append(x.A, x.Digest, x.Wire, ledger.Verdict{Eligible: true, Code: "eligible"}); err != nil {
				return err
			}
			<-hold
			return nil
		})
	}()
	k := newKey(t).Address()
	if code, out, errOut := run(t, ctx, "registry", "add", "--config", cfg, k.String()); code != 0 {
		t.Fatalf("registry add: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "stats", "--config", cfg); code != 0 || !strings.Contains(out, "devices 0") {
		t.Errorf("stats during a write: exit %d: %s%s", code, out, errOut)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, ctx, "stats", "--config", cfg); code != 0 || !strings.Contains(out, "devices 1") {
		t.Errorf("stats: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, ctx, "audit", "--config", cfg); code != 0 || out != "ok\n" {
		t.Errorf("audit: exit %d: %s%s", code, out, errOut)
	}
	if code, out, _ := run(t, ctx, "registry", "list", "--config", cfg); out != k.String()+"\n" {
		t.Errorf("registry list: exit %d: %q", code, out)
	}
	if code, _, errOut := run(t, ctx, "backup", "--config", cfg, filepath.Join(dir, "b")); code != 2 || !strings.Contains(errOut, "pg_dump") {
		t.Errorf("backup of PostgreSQL: exit %d %s, want 2 pointing at pg_dump", code, errOut)
	}
}
