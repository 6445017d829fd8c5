package fleettest

import (
	"crypto/tls"

	"github.com/csop/tbox/cmd/collector/internal/collect"
)

func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	return collect.MQTT{CAFile: ca, CertFile: cert, KeyFile: key}.TLSConfig()
}
