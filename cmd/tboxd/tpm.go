//go:build tpm

package main

import (
	"errors"
	"io/fs"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/tpmkey"
)

// tpmDefaultDevice is the TPM used when [tpm] device is not set.
const tpmDefaultDevice = tpmkey.DefaultDevice

// loadTPMKey unseals the device key of the sealed file at path.
func loadTPMKey(device, path string) (*signer.MemKey, error) {
	t, err := tpmkey.Open(device)
	if err != nil {
		return nil, &tpmkey.Error{Path: path, Device: device, Op: "open", Err: err}
	}
	defer t.Close()
	return tpmkey.Load(t, path)
}

// checkTPMKey checks a sealed file's form, without the TPM.
func checkTPMKey(path string) error {
	_, _, err := tpmkey.ReadFile(path)
	return err
}

// isProvisioningError reports a sealed key that no restart can open: a
// malformed or missing file, changed PCRs, another device's file (exit 2,
// which the systemd unit does not restart).
func isProvisioningError(err error) bool {
	var te *tpmkey.Error
	if !errors.As(err, &te) {
		return false
	}
	return errors.Is(err, tpmkey.ErrBadFile) || errors.Is(err, tpmkey.ErrPCRMismatch) ||
		errors.Is(err, tpmkey.ErrForeignTPM) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, signer.ErrBadKey)
}
