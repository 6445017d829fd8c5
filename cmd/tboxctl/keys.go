package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/csop/tbox/signer"
)

func runKeygen(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("keygen", stderr)
	key := fl.String("key", "", "path of the new device key file (created with mode 0600)")
	tpm := fl.Bool("tpm", false, "seal the new key by the TPM (key = \"tpm:FILE\" in tboxd's configuration)")
	tpmDevice := fl.String("tpm-device", "/dev/tpmrm0", "with --tpm: the TPM, a device or swtpm's unix socket")
	pcrs := fl.String("pcrs", "7", "with --tpm: the sha256 PCRs the key is sealed to, comma-separated")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *key == "" {
		return usagef("--key is required")
	}
	var addr signer.Address
	var err error
	if *tpm {
		addr, err = keygenTPM(*tpmDevice, *key, *pcrs)
	} else {
		addr, err = signer.GenerateKeyFile(*key)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return usageError{err}
		}
		return err
	}
	fmt.Fprintln(stdout, addr)
	return nil
}

func runAddress(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("address", stderr)
	key := fl.String("key", "", "device key file")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *key == "" {
		return usagef("--key is required")
	}
	k, err := loadKey(*key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.Address())
	return nil
}

// loadKey loads a device key file. A key file that is missing or cannot be
// read is bad configuration (exit 2), like one that is malformed.
func loadKey(path string) (*signer.FileKey, error) {
	k, err := signer.LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, usageError{err}
	}
	return k, err
}
