package profile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// privacyGolden lists what the privacy gate refuses across the opendbc
// corpus: one entry per biometric message, each followed by an indented
// "why:" line, written by hand, that justifies the refusal (or says why the
// false positive is accepted). GOLDEN=true rewrites the entries and keeps the
// justifications of those that remain; a new entry gets "why: TODO", which
// fails the test until someone writes one.
const privacyGolden = "testdata/opendbc_privacy.golden"

func TestCorpusPrivacyGolden(t *testing.T) {
	var got []string
	for _, c := range corpusDBCs(t) {
		for _, m := range c.db.messages {
			if why, bad := c.db.biometric(m); bad {
				got = append(got, fmt.Sprintf("%s:%d %s: %s", corpusName(c.file), m.Pos.Line, m.Name, why))
			}
		}
	}
	old, whys := readPrivacyGolden(t)
	if os.Getenv("GOLDEN") == "true" {
		var b bytes.Buffer
		b.WriteString("# What the privacy gate refuses across the opendbc corpus (119 files); see corpus_privacy_test.go.\n")
		for _, e := range got {
			why := whys[e]
			if why == "" {
				why = "TODO"
			}
			fmt.Fprintf(&b, "%s\n\twhy: %s\n", e, why)
		}
		if err := os.WriteFile(privacyGolden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		old = got
	}
	if strings.Join(got, "\n") != strings.Join(old, "\n") {
		t.Errorf("the gate's refusals across the corpus changed (GOLDEN=true go test -run TestCorpusPrivacyGolden rewrites %s; justify each new entry):\n got:\n%s\nwant:\n%s", privacyGolden, strings.Join(got, "\n"), strings.Join(old, "\n"))
	}
	for _, e := range old {
		if w := whys[e]; w == "" || w == "TODO" {
			t.Errorf("%s: entry %q has no justification (why: ...)", privacyGolden, e)
		}
	}
}

func readPrivacyGolden(t *testing.T) (entries []string, whys map[string]string) {
	whys = map[string]string{}
	f, err := os.Open(privacyGolden)
	if err != nil {
		if os.Getenv("GOLDEN") == "true" {
			return nil, whys
		}
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "\twhy: "):
			if len(entries) > 0 {
				whys[entries[len(entries)-1]] = strings.TrimPrefix(line, "\twhy: ")
			}
		default:
			entries = append(entries, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return entries, whys
}
