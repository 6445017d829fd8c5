//go:build !tpm

package main

import "github.com/csop/tbox/signer"

func keygenTPM(_, _, _ string) (signer.Address, error) {
	return signer.Address{}, usagef("--tpm: this tboxctl was built without TPM support (build it with -tags tpm: make build GOTAGS=tpm)")
}
