package signer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"testing"
)

// decoderObject is parseObject as it was written with a json.Decoder, the
// reference the hand-cut members are held to.
func decoderObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if _, dup := members[name]; dup {
			return nil, errors.New("repeated")
		}
		members[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after")
	}
	return members, nil
}

var parseObjectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"b":"x"}`, "{\n\t\"a\" :\r 1 ,\"b\":[1, {\"c\":\"}\"}],\"d\":null}",
	`{"a":"\"}\\"}`, `{"\u0061":true,"b":false}`, `{"a":-1.5e+3}`, `{"a":{}}`, `{"a":[]}`, `{"a":[[],{}]}`,
	`{"a":1,"a":2}`, `{"a":1}{"b":2}`, `{"a":1}x`, `{"a":1`, `{"a":`, `{"a"`, `{`, ``, ` `, `[]`, `"x"`, `1`,
	`{"a":1,}`, `{1:2}`, `{"a":01}`, `{"a":"x}`, `{"a":1}  `, `{"modes":[{"mode":"ECO","meters":1}],"v":1}`,
}

func checkParseObject(t *testing.T, b []byte) {
	got, err := parseObject(b)
	want, werr := decoderObject(b)
	if (err != nil) != (werr != nil) {
		t.Fatalf("parseObject(%q) = %v, %v; the decoder gives %v, %v", b, got, err, want, werr)
	}
	if err == nil && !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("parseObject(%q) = %q, the decoder gives %q", b, got, want)
	}
}

// TestParseObjectAsDecoder holds parseObject to the json.Decoder reading it
// replaced: the same members, an error for the same inputs.
func TestParseObjectAsDecoder(t *testing.T) {
	for _, s := range parseObjectSeeds {
		checkParseObject(t, []byte(s))
	}
	for _, c := range []struct{ in, msg string }{
		{`{"a":1`, "unexpected end of input (truncated JSON)"},
		{`{"a":1}{}`, "data after the JSON object"},
		{`{"a":1} x`, "data after the JSON object"},
		{`[1]`, "expected a JSON object, found [1]"},
		{`{"a":1,"a":1}`, `field "a" appears twice`},
	} {
		if _, err := parseObject([]byte(c.in)); err == nil || err.Error() != c.msg {
			t.Errorf("parseObject(%s): %v, want %q", c.in, err, c.msg)
		}
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range parseObjectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseObject)
}
