package collect

import (
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

// FuzzTopic: splitTopic, parseAddress and isAddressText decide as the
// strings.Split, signer.ParseAddress and Address.String they replace.
func FuzzTopic(f *testing.F) {
	for _, s := range []string{
		"csop/v1/0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826/att",
		"csop/v1/0xCD2A3D9F938E13CD947EC05ABC7FE734DF8DD826/health",
		"csop/v1/0Xcd2a3d9f938e13cd947ec05abc7fe734df8dd826/att",
		"csop/v1/0xcd2a3d9f938e13cd947ec05abc7fe734df8dd82g/att",
		"csop/v1/0xcd2a3d9f938e13cd947ec05abc7fe734df8dd82/att",
		"csop/v1/0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826/att/x",
		"csop/v1/0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826/",
		"csop/v1//att", "csop/v1/att", "csop/v2/x/att", "/csop/v1/x/att", "", "csop/v1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		parts := strings.Split(topic, "/")
		wantOK := len(parts) == 4 && parts[0] == "csop" && parts[1] == "v1"
		seg, kind, ok := splitTopic(topic)
		if ok != wantOK || ok && (seg != parts[2] || kind != parts[3]) {
			t.Fatalf("splitTopic(%q) = %q, %q, %v; strings.Split gives %q", topic, seg, kind, ok, parts)
		}
		for _, s := range parts {
			want, err := signer.ParseAddress(s)
			got, ok := parseAddress(s)
			if ok != (err == nil) || ok && got != want {
				t.Fatalf("parseAddress(%q) = %s, %v; signer.ParseAddress: %s, %v", s, got, ok, want, err)
			}
			if ok && isAddressText(s, got) != (s == got.String()) {
				t.Fatalf("isAddressText(%q, %s) = %v", s, got, !(s == got.String()))
			}
		}
	})
}
