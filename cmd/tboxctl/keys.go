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
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *key == "" {
		return usagef("--key is required")
	}
	addr, err := signer.GenerateKeyFile(*key)
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
