package signer_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/csop/tbox/signer"
)

// A device key signs an attestation; anyone with the wire form and the chain
// ID verifies it, and any change to it is detected.
func Example() {
	dir, err := os.MkdirTemp("", "signer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "device.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		log.Fatal(err)
	}
	key, err := signer.LoadKeyFile(path)
	if err != nil {
		log.Fatal(err)
	}

	const chainID = 20220807
	a := &signer.Attestation{
		V: signer.Version, Device: key.Address(), Seq: 1, Batch: 2811234, Batches: 1, Meters: 10412,
		Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 2412}, {Mode: "SPORT", Meters: 8000}},
	}
	if err := signer.Sign(key, chainID, a); err != nil {
		log.Fatal(err)
	}
	wire := a.AppendWire(nil)

	// The verifying side.
	got, err := signer.ParseWire(wire)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verify:", signer.Verify(chainID, got))
	fmt.Println("device matches:", got.Device == key.Address())
	fmt.Println("key prints as:", key)

	got.Meters, got.Modes[1].Meters = 20412, 18000
	fmt.Println("more meters:", errors.Is(signer.Verify(chainID, got), signer.ErrSignerMismatch))
	// Output:
	// verify: <nil>
	// device matches: true
	// key prints as: REDACTED
	// more meters: true
}

func ExampleFlagNames() {
	fmt.Println(signer.FlagNames(signer.FlagCatchup | signer.FlagClock))
	// Output: [CLOCK CATCHUP]
}
