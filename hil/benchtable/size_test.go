package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// The content of an ELF file is its allocated sections that have bytes in
// the file: more than nothing, less than the file; a file that is not ELF
// is an error.
func TestELFContent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the test binary is ELF on linux only")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	n, err := elfContent(exe)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= st.Size() {
		t.Errorf("elfContent(test binary) = %d bytes, want within (0, %d)", n, st.Size())
	}
	notELF := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := elfContent(notELF); err == nil {
		t.Errorf("elfContent(a shell script) succeeded, want an error")
	}
}
