package cli

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

// TestHTTPConfig: the status page listens on loopback unless the
// operator says otherwise in so many words (it has no authentication).
func TestHTTPConfig(t *testing.T) {
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{``, true},
		{`http = "127.0.0.1:8080"`, true},
		{`http = "127.0.0.2:0"`, true},
		{`http = "[::1]:8080"`, true},
		{`http = "localhost:8080"`, true},
		{`http = ":8080"`, false}, // every interface
		{`http = "0.0.0.0:8080"`, false},
		{`http = "192.0.2.7:8080"`, false},
		{`http = "[::]:8080"`, false},
		{`http = "status.example:8080"`, false},
		{"http = \"0.0.0.0:8080\"\nhttp_public = true", true},
		{"http = \":9100\"\nhttp_public = true", true},
		{`http_public = true`, false}, // public what?
		{`http = "127.0.0.1"`, false},
		{`http = "127.0.0.1:http"`, false},
		{`http = "127.0.0.1:65536"`, false},
		{`http = "127.0.0.1:-1"`, false},
	} {
		_, err := ParseConfig("c.toml", []byte(baseConfig(tc.extra)))
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.extra, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "http" {
			t.Errorf("%s: error %v, want one naming field http", tc.extra, err)
		}
	}
}

// TestRunStatusPageAddress: run refuses a public address as bad
// configuration (exit 2, naming the field), and stops at start, before any
// broker is dialled, when the port is taken.
func TestRunStatusPageAddress(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "devices.txt", "")
	if _, err := signer.GenerateKeyFile(filepath.Join(dir, "collector.key")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	public := writeFile(t, dir, "public.toml", baseConfig(`http = ":8080"`))
	taken := writeFile(t, dir, "taken.toml", baseConfig(`http = "`+ln.Addr().String()+`"`))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code, _, stderr := run(t, ctx, "run", "--config", public); code != 2 || !strings.Contains(stderr, `field "http"`) || !strings.Contains(stderr, "http_public") {
		t.Errorf("public address: exit %d, %q", code, stderr)
	}
	if code, _, stderr := run(t, ctx, "run", "--config", taken); code != 1 || !strings.Contains(stderr, "status page") || !strings.Contains(stderr, "address already in use") {
		t.Errorf("port taken: exit %d, %q", code, stderr)
	}
	if ctx.Err() != nil {
		t.Error("run with a taken port did not stop at start")
	}
}
