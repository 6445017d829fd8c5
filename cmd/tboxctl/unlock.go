package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// runUnlock answers a diagnostic shell's service-mode challenge: it signs
// keccak256("CSOP-TBOX-SERVICE-UNLOCK-v1" || device || nonce) with the
// maker's service key and prints the response (r||s||v, hex) to type into
// the shell. The challenge token carries the device address; --device,
// when given, must agree with it (or supplies it for a bare 64-digit nonce).
func runUnlock(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("unlock", stderr)
	keyPath := fl.String("service-key", "", "the maker's service key file (signer format, mode 0600)")
	token := fl.String("challenge", "", "the challenge token the shell printed")
	device := fl.String("device", "", "the device address (optional with a full token: checked against it)")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *keyPath == "" {
		return usagef("--service-key is required")
	}
	if *token == "" {
		return usagef("--challenge is required: the token the shell's unlock command printed")
	}
	c, err := challengeOf(*token, *device)
	if err != nil {
		return err
	}
	key, err := loadKey(*keyPath)
	if err != nil {
		return err
	}
	sig, err := shell.SignUnlock(key, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "unlock response for device %s, signed by service key %s\n", c.Device, key.Address())
	fmt.Fprintln(stdout, sig)
	return nil
}

// challengeOf reads --challenge and --device.
func challengeOf(token, device string) (shell.Challenge, error) {
	var want *signer.Address
	if device != "" {
		a, err := signer.ParseAddress(device)
		if err != nil {
			return shell.Challenge{}, usagef("--device: %w", err)
		}
		want = &a
	}
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(token), "0x"), "0X")
	if len(t) == 64 { // a bare nonce: the device must be given
		if want == nil {
			return shell.Challenge{}, usagef("--challenge: a 64-digit nonce needs --device ADDR; or pass the whole %d-digit token", shell.TokenHexLen)
		}
		n, err := shell.ParseNonce(t)
		if err != nil {
			return shell.Challenge{}, usagef("--challenge: %w", err)
		}
		return shell.Challenge{Device: *want, Nonce: n}, nil
	}
	c, err := shell.ParseChallenge(t)
	if err != nil {
		return shell.Challenge{}, usagef("--challenge: %w", err)
	}
	if want != nil && *want != c.Device {
		return shell.Challenge{}, usagef("--device %s, but the challenge is for device %s", *want, c.Device)
	}
	return c, nil
}
