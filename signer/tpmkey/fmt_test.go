package tpmkey_test

import "fmt"

func fmtV(v any) string { return fmt.Sprintf("%v %+v %#v %x", v, v, v, v) }
