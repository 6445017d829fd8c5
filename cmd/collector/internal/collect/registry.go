package collect

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// Allowlist says which devices may attest.
type Allowlist interface {
	Allowed(signer.Address) bool
}

// Registry is the allowlist of device addresses read from a text file: one
// address (0x and 40 hex digits) per line; blank lines and everything after
// a '#' are ignored. It is safe for concurrent use; Reload swaps the set
// atomically.
type Registry struct {
	path string
	set  atomic.Pointer[map[signer.Address]struct{}]
}

var _ Allowlist = (*Registry)(nil)

// LoadRegistry reads the registry file at path.
func LoadRegistry(path string) (*Registry, error) {
	r := &Registry{path: path}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the file. On error the previous set stays in force.
func (r *Registry) Reload() error {
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	set := make(map[signer.Address]struct{})
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := signer.ParseAddress(s)
		if err != nil {
			return fmt.Errorf("registry %s:%d: %w: %w", r.path, line, ErrRegistry, err)
		}
		set[a] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("registry %s: %w", r.path, err)
	}
	r.set.Store(&set)
	return nil
}

// Allowed reports whether a is listed.
func (r *Registry) Allowed(a signer.Address) bool {
	_, ok := (*r.set.Load())[a]
	return ok
}

// Len returns the number of devices listed.
func (r *Registry) Len() int { return len(*r.set.Load()) }

// Path returns the registry file.
func (r *Registry) Path() string { return r.path }

// AppendRegistry adds addresses to the registry file at path (created with
// mode 0644 if missing), skipping those already listed, and returns how
// many it added.
func AppendRegistry(path string, addrs []signer.Address) (int, error) {
	have := map[signer.Address]struct{}{}
	if _, err := os.Stat(path); err == nil {
		r, err := LoadRegistry(path)
		if err != nil {
			return 0, err
		}
		have = *r.set.Load()
	}
	var b strings.Builder
	n := 0
	for _, a := range addrs {
		if _, ok := have[a]; ok {
			continue
		}
		have[a] = struct{}{}
		b.WriteString(a.String() + "\n")
		n++
	}
	if n == 0 {
		return 0, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("registry: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return 0, fmt.Errorf("registry %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("registry %s: %w", path, err)
	}
	return n, f.Close()
}

// LedgerRegistry is the allowlist kept in the ledger (collector registry
// add|remove), shared by every collector of the ledger. Reload re-reads
// it; the run command does so every registry_refresh and on SIGHUP.
type LedgerRegistry struct {
	l   ledger.Ledger
	set atomic.Pointer[map[signer.Address]struct{}]
}

var _ Allowlist = (*LedgerRegistry)(nil)

// LoadLedgerRegistry reads the registry of l.
func LoadLedgerRegistry(l ledger.Ledger) (*LedgerRegistry, error) {
	r := &LedgerRegistry{l: l}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the registry. On error the previous set stays in force.
func (r *LedgerRegistry) Reload() error {
	var devs []signer.Address
	if err := r.l.View(func(tx ledger.Tx) (err error) { devs, err = tx.Registry(); return err }); err != nil {
		return fmt.Errorf("registry in ledger %s: %w", r.l.Where(), err)
	}
	set := make(map[signer.Address]struct{}, len(devs))
	for _, d := range devs {
		set[d] = struct{}{}
	}
	r.set.Store(&set)
	return nil
}

// Allowed reports whether a is registered.
func (r *LedgerRegistry) Allowed(a signer.Address) bool {
	_, ok := (*r.set.Load())[a]
	return ok
}

// Len returns the number of devices registered.
func (r *LedgerRegistry) Len() int { return len(*r.set.Load()) }

// AnyOf allows a device allowed by any of its allowlists.
type AnyOf []Allowlist

// Allowed reports whether any allowlist allows a.
func (as AnyOf) Allowed(a signer.Address) bool {
	for _, x := range as {
		if x.Allowed(a) {
			return true
		}
	}
	return false
}

// RemoveRegistry removes addresses from the registry file at path
// (rewritten through a temporary file, comments and other lines kept) and
// returns how many it removed.
func RemoveRegistry(path string, addrs []signer.Address) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("registry: %w", err)
	}
	drop := map[signer.Address]bool{}
	for _, a := range addrs {
		drop[a] = true
	}
	var b strings.Builder
	n := 0
	for _, line := range strings.SplitAfter(string(data), "\n") {
		s := line
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		if a, err := signer.ParseAddress(strings.TrimSpace(s)); err == nil && drop[a] {
			n++
			continue
		}
		b.WriteString(line)
	}
	if n == 0 {
		return 0, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return 0, fmt.Errorf("registry: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("registry: %w", err)
	}
	return n, nil
}

// List returns the listed addresses.
func (r *Registry) List() []signer.Address {
	set := *r.set.Load()
	out := make([]signer.Address, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	return out
}
