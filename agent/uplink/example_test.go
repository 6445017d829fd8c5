package uplink_test

import (
	"errors"
	"fmt"

	"github.com/csop/tbox/agent/uplink"
)

func ExampleTopics() {
	att, ack, nack, health := uplink.Topics("0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293")
	fmt.Println(att)
	fmt.Println(ack)
	fmt.Println(nack)
	fmt.Println(health)
	// Output:
	// csop/v1/0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293/att
	// csop/v1/0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293/ack
	// csop/v1/0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293/nack
	// csop/v1/0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293/health
}

// Plaintext MQTT leaves loopback only with allow_insecure; Validate refuses
// it before anything is dialed.
func ExampleConfig_Validate() {
	cfg := uplink.Config{
		Broker: "tcp://192.0.2.1:1883",
		Device: "0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293",
	}
	err := cfg.Validate()
	fmt.Println(errors.Is(err, uplink.ErrInsecure))
	fmt.Println(err)

	cfg.AllowInsecure = true
	fmt.Println(cfg.Validate())
	// Output:
	// true
	// uplink config: broker "tcp://192.0.2.1:1883": plaintext MQTT to non-loopback host "192.0.2.1"; want ssl:// or tls://, or allow_insecure = true
	// <nil>
}
