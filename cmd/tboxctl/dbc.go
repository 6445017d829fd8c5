package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/csop/tbox/agent/profile"
)

// runDbc prints a DBC as the agent reads it, one JSON line per message
// (README §C4); what the reader skipped goes to stderr as warnings, file:line.
func runDbc(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("dbc", stderr)
	if err := parseFlags(fl, args, 1); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return usagef("want one DBC file: tboxctl dbc FILE")
	}
	f, err := profile.ReadDBC(fl.Arg(0))
	if err != nil {
		return err
	}
	for _, w := range f.Warnings {
		fmt.Fprintf(stderr, "tboxctl dbc: warning: %s\n", w)
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for i := range f.Messages {
		if err := enc.Encode(&f.Messages[i]); err != nil {
			return err
		}
	}
	return out.Flush()
}
