//go:build tpm

package main

import (
	"strconv"
	"strings"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/tpmkey"
)

// keygenTPM makes a new device key sealed by the TPM at device, under a
// policy of the PCRs listed in pcrs ("0,7"), and writes the sealed file.
func keygenTPM(device, path, pcrs string) (signer.Address, error) {
	var list []int
	for _, f := range strings.Split(pcrs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 23 {
			return signer.Address{}, usagef("--pcrs %q: want PCR numbers 0..23, comma-separated", pcrs)
		}
		list = append(list, n)
	}
	t, err := tpmkey.Open(device)
	if err != nil {
		return signer.Address{}, usageError{err}
	}
	defer t.Close()
	return tpmkey.Generate(t, path, list)
}
