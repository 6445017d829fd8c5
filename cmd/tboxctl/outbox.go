package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/csop/tbox/store"
)

// runOutbox prints the attestations held in a state directory (an agent's
// outbox or a replay's --state), oldest first, in wire form.
func runOutbox(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("outbox", stderr)
	dir := fl.String("state", "", "state directory (the agent's state_dir or a replay's --state)")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--state is required")
	}
	// A look never writes: a missing directory is not created, a damaged
	// outbox is not repaired (tboxd does that at its start).
	st, err := store.OpenReadOnly(*dir)
	switch {
	case errors.Is(err, store.ErrNoStore):
		return usageError{fmt.Errorf("--state: %w", err)}
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("--state %s: %w; while tboxd runs, ask it through its diagnostic shell: status, att last, att show SEQ", *dir, err)
	case err != nil:
		return fmt.Errorf("--state %s: %w", *dir, err)
	}
	defer st.Close()
	recs, err := st.Pending(0, 0)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	for _, r := range recs {
		out.Write(r.Wire)
		out.WriteByte('\n')
	}
	s := st.Stats()
	fmt.Fprintf(stderr, "outbox %s: head %d, acked through %d, %d pending, %d bytes\n",
		*dir, s.Head, s.AckedThrough, s.Depth, s.Bytes)
	// Whether a seq is receipted: every seq up to the collector's last
	// signed receipt is stored for good; the pending ones above are not.
	rc, err := st.LastReceipt()
	switch {
	case err != nil:
		return err
	case rc != nil:
		fmt.Fprintf(stderr, "receipted: seqs 1..%d (the collector's last receipt, the car's proof: %s); seqs above are not receipted yet\n",
			s.AckedThrough, strconv.QuoteToASCII(string(rc)))
	case s.AckedThrough > 0:
		fmt.Fprintf(stderr, "receipted: seqs 1..%d (no signed receipt kept: acked before receipts were signed); seqs above are not receipted yet\n", s.AckedThrough)
	default:
		fmt.Fprintln(stderr, "receipted: none yet")
	}
	return out.Flush()
}
