package rig

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Form is one encoding of a marker to look for.
type Form struct {
	Name  string
	Bytes []byte
}

// MarkerForms returns the encodings in which a payload could leak: the raw
// bytes, hex in upper and lower case (also byte-spaced, as candump -a and
// debug dumps print them), and base64, standard and URL, at each of the
// three alignments the payload can have inside a longer base64 stream
// (only the characters that depend on the marker alone).
func MarkerForms(marker []byte) []Form {
	forms := []Form{{"raw", marker}}
	hx := hex.EncodeToString(marker)
	forms = append(forms,
		Form{"hex lower", []byte(hx)},
		Form{"hex upper", []byte(strings.ToUpper(hx))},
	)
	var spaced []string
	for _, b := range marker {
		spaced = append(spaced, fmt.Sprintf("%02X", b))
	}
	forms = append(forms,
		Form{"hex upper spaced", []byte(strings.Join(spaced, " "))},
		Form{"hex lower spaced", []byte(strings.ToLower(strings.Join(spaced, " ")))},
	)
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		for shift := range 3 {
			// With shift bytes before it, the marker's first byte starts a
			// new 3-byte group after skipping (3-shift)%3 bytes; only the
			// groups made of marker bytes alone are fixed.
			skip := (3 - shift) % 3
			if len(marker) < skip+3 {
				continue
			}
			core := marker[skip:]
			core = core[:len(core)/3*3]
			forms = append(forms, Form{fmt.Sprintf("%s (offset %d)", enc.name, shift), []byte(enc.e.EncodeToString(core))})
		}
	}
	return forms
}

// Finding is a marker form found in a source.
type Finding struct {
	Source string
	Form   string
	Offset int
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s at byte %d", f.Source, f.Form, f.Offset)
}

// Scan looks for every form in b; source names b in the findings.
func Scan(source string, b []byte, forms []Form) []Finding {
	var out []Finding
	for _, f := range forms {
		if len(f.Bytes) == 0 {
			continue
		}
		if i := bytes.Index(b, f.Bytes); i >= 0 {
			out = append(out, Finding{Source: source, Form: f.Name, Offset: i})
		}
	}
	return out
}
