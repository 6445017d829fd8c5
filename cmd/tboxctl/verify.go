package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/csop/tbox/signer"
)

// defaultChainID is the chain ID of the README's example configuration.
const defaultChainID = 20220807

func runVerify(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("verify", stderr)
	chainID := fl.Uint64("chain-id", defaultChainID, "EIP-712 chain ID of the attestations")
	device := fl.String("device", "", "expected device address (0x...); other devices are problems")
	partial := fl.Bool("partial", false, "a chain may start at any seq (an outbox listing after receipts): the first attestation's prev is taken on trust")
	if err := parseFlags(fl, args, 1); err != nil {
		return err
	}
	var opts []signer.ChainOption
	if *device != "" {
		addr, err := signer.ParseAddress(*device)
		if err != nil {
			return usagef("--device: %w", err)
		}
		opts = append(opts, signer.WithDevice(addr))
	}
	if *partial {
		opts = append(opts, signer.WithPartialChains())
	}
	in, name := stdin, "stdin"
	if fl.NArg() == 1 {
		f, err := os.Open(fl.Arg(0))
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		in, name = f, fl.Arg(0)
	}
	n, problems, err := verifyLines(in, name, *chainID, stdout, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %s, %s\n", name, plural(n, "attestation"), plural(problems, "problem"))
	if problems > 0 {
		return errCheckFailed
	}
	return nil
}

// plural returns "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// verifyLines checks one attestation per line and writes one line per
// problem: "NAME:LINE: seq N: what". n counts the lines that parsed as
// attestations: a line that does not is a problem, not an attestation.
func verifyLines(in io.Reader, name string, chainID uint64, out io.Writer, opts ...signer.ChainOption) (n, problems int, err error) {
	cc := signer.NewChainChecker(chainID, opts...)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), signer.MaxWireSize+1024)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		a, err := signer.ParseWire(b)
		if err != nil {
			problems++
			fmt.Fprintf(out, "%s:%d: not an attestation: %v\n", name, line, err)
			continue
		}
		n++
		for _, p := range cc.Check(a) {
			problems++
			fmt.Fprintf(out, "%s:%d: %v\n", name, line, p)
		}
	}
	if err := sc.Err(); err != nil {
		problems++
		fmt.Fprintf(out, "%s:%d: %v\n", name, line+1, err)
	}
	return n, problems, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
