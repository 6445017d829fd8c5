package cli

import (
	"errors"
	"testing"
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
