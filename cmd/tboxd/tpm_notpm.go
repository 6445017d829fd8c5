//go:build !tpm

package main

import (
	"errors"

	"github.com/csop/tbox/signer"
)

const tpmDefaultDevice = "/dev/tpmrm0"

func loadTPMKey(_, _ string) (*signer.MemKey, error) { return nil, errNoTPM }

func checkTPMKey(string) error { return errNoTPM }

func isProvisioningError(err error) bool { return errors.Is(err, errNoTPM) }
