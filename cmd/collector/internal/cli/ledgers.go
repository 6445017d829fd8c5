package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/signer"
)

// readLockTimeout bounds a read command's wait for a bbolt file that a
// running collector holds: it does not wait for it to stop.
const readLockTimeout = time.Second

// openLedger opens the configured ledger: PostgreSQL (database_url) or
// the bbolt file (db). A bbolt file held by a running collector is refused
// with the holder named.
func openLedger(ctx context.Context, cfg *Config, readOnly bool) (ledger.Ledger, error) {
	if cfg.DatabaseURL != "" {
		return pgledger.Open(ctx, cfg.DatabaseURL, &pgledger.Options{ChainID: cfg.ChainID, ReadOnly: readOnly})
	}
	o := &ledger.Options{ChainID: cfg.ChainID, ReadOnly: readOnly}
	if readOnly {
		o.LockTimeout = readLockTimeout
	}
	l, err := ledger.Open(cfg.DB, o)
	if errors.Is(err, ledger.ErrLocked) {
		return nil, fmt.Errorf("%w; held by %s. A bbolt ledger is read by one process at a time while a collector writes it: stop the collector, or use a PostgreSQL ledger (database_url), whose commands run beside the collectors; for a backup, send the collector SIGUSR1 (it writes %s.backup)", err, lockHolder(cfg.DB), cfg.DB)
	}
	return l, err
}

// lockHolder names the process holding a file lock on path, from
// /proc/locks (Linux), or says it cannot tell.
func lockHolder(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "another process"
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "another process"
	}
	// 1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF
	ino := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] == "->" || !strings.HasSuffix(f[5], ino) {
			continue
		}
		pid := f[4]
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		cmd = bytes.TrimRight(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}), " ")
		if len(cmd) > 200 {
			cmd = append(cmd[:200], "..."...)
		}
		if len(cmd) == 0 {
			return "process " + pid
		}
		return fmt.Sprintf("process %s (%s)", pid, cmd)
	}
	return "another process"
}

// registryOnFile reports whether the registry commands act on the
// registry file: a bbolt ledger with a registry file configured, as before
// the registry moved into the ledger.
func registryOnFile(cfg *Config) bool { return cfg.DatabaseURL == "" && cfg.Registry != "" }

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove" && args[0] != "list") {
		return usagef("expected: registry add|remove|list --config FILE [ADDR...]")
	}
	op := args[0]
	fs := newFlags("registry "+op, stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var addrs []signer.Address
	for _, s := range fs.Args() {
		a, err := signer.ParseAddress(s)
		if err != nil {
			return usageError{err}
		}
		addrs = append(addrs, a)
	}
	switch {
	case op == "list" && len(addrs) > 0:
		return usagef("registry list: unexpected argument %q", fs.Arg(0))
	case op != "list" && len(addrs) == 0:
		return usagef("registry %s: no address given", op)
	}
	if registryOnFile(cfg) {
		return registryFile(cfg, op, addrs, stdout)
	}
	l, err := openLedger(ctx, cfg, op == "list")
	if err != nil {
		return err
	}
	defer l.Close()
	var n int
	var list []signer.Address
	err = l.Update(func(tx ledger.Tx) (err error) {
		switch op {
		case "add":
			n, err = tx.RegistryAdd(addrs)
		case "remove":
			n, err = tx.RegistryRemove(addrs)
		}
		return err
	})
	if op == "list" {
		err = l.View(func(tx ledger.Tx) (err error) { list, err = tx.Registry(); return err })
	}
	if err != nil {
		return err
	}
	switch op {
	case "add":
		fmt.Fprintf(stdout, "%d added to the registry in %s (%d already listed); running collectors allow them within registry_refresh (%s)\n", n, l.Where(), len(addrs)-n, cfg.regRefresh)
	case "remove":
		fmt.Fprintf(stdout, "%d removed from the registry in %s (%d not listed); running collectors refuse them within registry_refresh (%s)\n", n, l.Where(), len(addrs)-n, cfg.regRefresh)
	default:
		for _, a := range list {
			fmt.Fprintln(stdout, a)
		}
	}
	return nil
}

func registryFile(cfg *Config, op string, addrs []signer.Address, stdout io.Writer) error {
	switch op {
	case "add":
		n, err := collect.AppendRegistry(cfg.Registry, addrs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d added to %s (%d already listed); send SIGHUP to a running collector to reload\n", n, cfg.Registry, len(addrs)-n)
	case "remove":
		n, err := collect.RemoveRegistry(cfg.Registry, addrs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d removed from %s (%d not listed); send SIGHUP to a running collector to reload\n", n, cfg.Registry, len(addrs)-n)
	default:
		r, err := collect.LoadRegistry(cfg.Registry)
		if err != nil {
			return err
		}
		list := r.List()
		sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i][:], list[j][:]) < 0 })
		for _, a := range list {
			fmt.Fprintln(stdout, a)
		}
	}
	return nil
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("expected: backup --config FILE PATH")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		return &ConfigError{File: cfg.File, Field: "database_url", Msg: "backup copies a bbolt ledger (db); back a PostgreSQL ledger up with pg_dump (README)"}
	}
	dst := fs.Arg(0)
	l, err := openLedger(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := BackupBolt(l.(*ledger.Bolt), dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d bytes, a consistent copy of %s\n", dst, n, cfg.DB)
	return nil
}

// BackupBolt writes a consistent copy of l to dst through a temporary
// file in dst's directory, synced and renamed into place.
func BackupBolt(l *ledger.Bolt, dst string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(f.Name())
	n, err := l.Backup(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", dst, err)
	}
	return n, nil
}
