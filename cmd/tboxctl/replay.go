package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// printedFile, in a replay's --state DIR, holds the last seq printed. A
// restarted replay first prints the durable attestations after it, so a
// kill between an attestation becoming durable and its line being written
// leaves no gap in the output.
const printedFile = "printed"

func runReplay(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("replay", stderr)
	profPath := fl.String("profile", "", "vehicle profile (TOML)")
	keyPath := fl.String("key", "", "device key file")
	logPath := fl.String("log", "", "candump -l log (stdin when absent)")
	chainID := fl.Uint64("chain-id", defaultChainID, "EIP-712 chain ID")
	stateDir := fl.String("state", "", "directory keeping seq, prev and the high-water mark across runs")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *profPath == "" || *keyPath == "" {
		return usagef("--profile and --key are required")
	}
	p, err := profile.Load(*profPath)
	if err != nil {
		return err
	}
	key, err := loadKey(*keyPath)
	if err != nil {
		return err
	}
	in, name, closeIn, err := openLog(*logPath, stdin)
	if err != nil {
		return err
	}
	defer closeIn()

	out := bufio.NewWriter(stdout)
	var ob agent.Outbox
	var printed *printedMarker
	if *stateDir == "" {
		ob = &agent.MemoryOutbox{}
	} else {
		if err := os.MkdirAll(*stateDir, 0o700); err != nil {
			return usageError{err}
		}
		st, err := store.Open(*stateDir, &store.Options{MaxRecords: 0})
		if err != nil {
			return fmt.Errorf("state %s: %w", *stateDir, err)
		}
		defer st.Close()
		if head, _ := st.Last(); head > 0 {
			if err := checkDevice(st, head, key.Address()); err != nil {
				return err
			}
		}
		ob = st
		printed = &printedMarker{path: filepath.Join(*stateDir, printedFile)}
		if err := printed.catchUp(st, out); err != nil {
			return err
		}
	}
	emit := func(rec store.Record, _ *signer.Attestation) {
		out.Write(rec.Wire)
		out.WriteByte('\n')
		out.Flush()
		if printed != nil {
			printed.mark(rec.Seq)
		}
	}
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: *chainID, Profile: p, OnDurable: emit}, key, ob)
	if err != nil {
		return err
	}
	resume := att.ResumeTime()
	r := can.NewReader(in, can.WithFilter(allowlist(p)), can.WithContext(ctx))
	var last = resume
	for r.Receive() {
		f := r.Frame()
		if f.Time.Before(resume) {
			continue // accounted for before the restart
		}
		if err := att.Frame(f); err != nil {
			return err
		}
		if f.Time.After(last) {
			last = f.Time
		}
	}
	if err := r.Err(); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err := logError(name, err, stderr); err != nil {
			return err
		}
	}
	if !last.IsZero() {
		if err := att.Stop(last); err != nil {
			return err
		}
	}
	return out.Flush()
}

// checkDevice refuses a state directory made with another device key.
func checkDevice(st *store.Store, head uint64, addr signer.Address) error {
	rec, err := st.Get(head)
	if err != nil {
		return nil // acked away; nothing to compare
	}
	a, err := signer.ParseWire(rec.Wire)
	if err != nil {
		return fmt.Errorf("state: head seq %d: %w", head, err)
	}
	if a.Device != addr {
		return usagef("state directory belongs to device %s, key is %s", a.Device, addr)
	}
	return nil
}

type printedMarker struct{ path string }

func (m *printedMarker) read() uint64 {
	b, err := os.ReadFile(m.path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// mark records seq as printed. It is not synced: it guards against the
// process being killed, and the page cache outlives the process.
func (m *printedMarker) mark(seq uint64) {
	tmp := m.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err == nil {
		os.Rename(tmp, m.path)
	}
}

// catchUp prints the durable attestations a killed replay had not printed.
func (m *printedMarker) catchUp(st *store.Store, out *bufio.Writer) error {
	head, _ := st.Last()
	for seq := m.read() + 1; seq <= head; seq++ {
		rec, err := st.Get(seq)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return err
		}
		out.Write(rec.Wire)
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return err
		}
		m.mark(seq)
	}
	return nil
}
