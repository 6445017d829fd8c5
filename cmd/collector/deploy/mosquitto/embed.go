// Package mosquitto holds the broker configuration the project ships and
// tests with: mosquitto.conf and its acl (README §C2, "The broker's part").
package mosquitto

import _ "embed"

// Conf is mosquitto.conf; ACL is the acl_file it names.
var (
	//go:embed mosquitto.conf
	Conf string
	//go:embed acl
	ACL string
)

// CollectorCNs are the certificate CNs the shipped ACL lets publish
// receipts and refusals.
var CollectorCNs = []string{"collector-1", "collector-2"}
