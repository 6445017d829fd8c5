//go:build notpm

package main

import "github.com/csop/tbox/signer"

func keygenTPM(_, _, _ string) (signer.Address, error) {
	return signer.Address{}, usagef("--tpm: this tboxctl was built without TPM support (build tag notpm)")
}
