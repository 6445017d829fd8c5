package main

import (
	"log/slog"
	"strings"

	"github.com/csop/tbox/signer"
)

// TPMConfig is the [tpm] table: the TPM of a `key = "tpm:FILE"` device key.
type TPMConfig struct {
	// Device is the TPM: a character device (default /dev/tpmrm0, the
	// kernel's resource manager) or a unix socket (swtpm).
	Device string `toml:"device"`
}

// tpmKeyPrefix marks a key sealed by the TPM: key = "tpm:/etc/tbox/device.sealed".
const tpmKeyPrefix = "tpm:"

// deviceKey is the device key, from a PEM file or unsealed by the TPM.
// Close zeroes what can be zeroed.
type deviceKey interface {
	signer.Signer
	Close() error
}

// keyPath returns the key's file and whether the TPM seals it.
func (c *Config) keyPath() (path string, tpm bool) {
	if rest, ok := strings.CutPrefix(c.Key, tpmKeyPrefix); ok {
		return c.path(rest), true
	}
	return c.path(c.Key), false
}

// fileKey is a PEM key file's key; it has nothing to close.
type fileKey struct{ *signer.FileKey }

func (fileKey) Close() error { return nil }

// loadDeviceKey loads the device key the configuration names.
func loadDeviceKey(cfg *Config, log *slog.Logger) (deviceKey, error) {
	path, tpm := cfg.keyPath()
	if !tpm {
		k, err := signer.LoadKeyFile(path)
		if err != nil {
			return nil, err
		}
		return fileKey{k}, nil
	}
	k, err := loadTPMKey(cfg.TPM.Device, path)
	if err != nil {
		return nil, err
	}
	if !k.Locked() {
		log.Warn("device key not locked in memory (mlock refused: raise LimitMEMLOCK / RLIMIT_MEMLOCK)")
	}
	log.Info("device key unsealed by the TPM", "file", path, "tpm", cfg.TPM.Device)
	return k, nil
}

// errNoTPM is returned for a tpm: key by a tboxd built without TPM support.
var errNoTPM = errorf("this tboxd was built without TPM support (build it with -tags tpm: make arm GOTAGS=tpm)")
