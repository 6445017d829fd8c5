package signer

import "fmt"

// errorf is fmt.Errorf, called rather than inlined: since Go 1.26
// fmt.Errorf is inlined at each of its calls (the errorf call, the nil
// test and an errors.New), which in tboxd's many error paths costs code
// and function metadata for no speed that matters there.
//
//go:noinline
func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
