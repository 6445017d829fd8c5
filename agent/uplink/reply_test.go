package uplink

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseReply(t *testing.T) {
	long := strings.Repeat("é", MaxReasonLen) // 2 bytes each
	tests := []struct {
		name       string
		in         string
		wantSeq    uint64
		wantReason string
		wantErr    bool
	}{
		{"ack", `{"seq":7}`, 7, "", false},
		{"nack", `{"seq":7,"reason":"bad signature"}`, 7, "bad signature", false},
		{"spaces", " \n{ \"seq\" : 12 }\n", 12, "", false},
		{"unknown field is allowed", `{"seq":3,"stored_at":"2024-01-01"}`, 3, "", false},
		{"max uint64", `{"seq":18446744073709551615}`, 1<<64 - 1, "", false},
		{"nack without reason", `{"seq":5}`, 5, "", false},
		{"long reason is cut at a rune", `{"seq":5,"reason":"` + long + `"}`, 5, long[:MaxReasonLen], false},

		{"empty", ``, 0, "", true},
		{"not an object", `[1]`, 0, "", true},
		{"bare number", `7`, 0, "", true},
		{"null", `null`, 0, "", true},
		{"bad JSON", `{"seq":7`, 0, "", true},
		{"trailing garbage", `{"seq":7}x`, 0, "", true},
		{"missing seq", `{"reason":"x"}`, 0, "", true},
		{"null seq", `{"seq":null}`, 0, "", true},
		{"seq as string", `{"seq":"7"}`, 0, "", true},
		{"negative seq", `{"seq":-7}`, 0, "", true},
		{"fractional seq", `{"seq":7.5}`, 0, "", true},
		{"exponent seq", `{"seq":7e2}`, 0, "", true},
		{"seq 0", `{"seq":0}`, 0, "", true},
		{"seq overflow", `{"seq":18446744073709551616}`, 0, "", true},
		{"reason not a string", `{"seq":7,"reason":42}`, 0, "", true},
		{"huge payload", `{"seq":7,"reason":"` + strings.Repeat("x", MaxReplySize) + `"}`, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, reason, err := parseNack([]byte(tt.in))
			aseq, aerr := parseAck([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedReply) || !errors.Is(aerr, ErrMalformedReply) {
					t.Fatalf("parseNack err %v, parseAck err %v; want ErrMalformedReply", err, aerr)
				}
				return
			}
			if err != nil || aerr != nil {
				t.Fatalf("parseNack err %v, parseAck err %v; want nil", err, aerr)
			}
			if seq != tt.wantSeq || aseq != tt.wantSeq || reason != tt.wantReason {
				t.Fatalf("got seq %d/%d reason %q, want %d %q", seq, aseq, reason, tt.wantSeq, tt.wantReason)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		`{"seq":1}`, `{"seq":7,"reason":"bad signature"}`, `{"seq":0}`, `{"seq":-1}`, `{"seq":1e3}`,
		`{"seq":"1"}`, `{}`, `null`, `[]`, `{"seq":18446744073709551616}`, `{"seq":1,"reason":"\ud800"}`,
		`{"seq":1,"seq":2}`, "{\"seq\":1,\"reason\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		seq, reason, err := parseNack(p)
		aseq, aerr := parseAck(p)
		if (err == nil) != (aerr == nil) || seq != aseq {
			t.Fatalf("ack and nack parsers disagree: %d %v / %d %v", aseq, aerr, seq, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedReply) {
				t.Fatalf("error %v does not wrap ErrMalformedReply", err)
			}
			return
		}
		if seq == 0 || len(p) > MaxReplySize {
			t.Fatalf("accepted seq %d from %d bytes", seq, len(p))
		}
		if len(reason) > MaxReasonLen || !utf8.ValidString(reason) {
			t.Fatalf("reason of %d bytes, valid UTF-8 %v", len(reason), utf8.ValidString(reason))
		}
		// What was accepted re-encodes to the same reply.
		b, _ := json.Marshal(map[string]any{"seq": seq, "reason": reason})
		s2, r2, err := parseNack(b)
		if err != nil || s2 != seq || r2 != reason {
			t.Fatalf("round trip of %s: %d %q %v", b, s2, r2, err)
		}
	})
}
