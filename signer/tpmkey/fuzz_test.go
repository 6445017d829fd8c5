package tpmkey

import (
	"errors"
	"testing"
)

// FuzzDecode: a sealed file is bytes from flash: decode never panics, and
// refuses what it cannot read with ErrBadFile.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("-----BEGIN TBOX TPM SEALED KEY-----\nAddress: 0x0000000000000000000000000000000000000000\nPCRs: sha256:7\n\nAAAA\n-----END TBOX TPM SEALED KEY-----\n"))
	f.Add([]byte("-----BEGIN TBOX TPM SEALED KEY-----\nAddress: 0x0000000000000000000000000000000000000000\nPCRs: sha256:7,16\n\nAAIAAQAC\n-----END TBOX TPM SEALED KEY-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("decode error %v does not wrap ErrBadFile", err)
			}
			return
		}
		if len(s.pcrs) == 0 {
			t.Fatal("decoded a file without PCRs")
		}
		// What decodes encodes to a file that decodes the same.
		again, err := decode(encode(*s))
		if err != nil || again.addr != s.addr || len(again.pcrs) != len(s.pcrs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
