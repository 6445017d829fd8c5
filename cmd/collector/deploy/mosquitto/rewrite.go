package mosquitto

import (
	"fmt"
	"strings"
)

// Paths are what a local run (a test, the HIL rig, make demo) changes in
// the shipped mosquitto.conf: the listener and the files it names.
// Everything else (mTLS required, identity as user name, no anonymous
// clients, the ACL, the size limits) stays as shipped.
type Paths struct {
	Port               int    // the listener, bound to 127.0.0.1 only
	CA, Cert, Key, ACL string // cafile, certfile, keyfile, acl_file
	RunAsRoot          bool   // add "user root" (mosquitto started as root would drop to a user that cannot read a private temp dir)
}

// Local returns Conf with p's listener and files, persistence off and the
// log on stderr.
func Local(p Paths) string {
	var s strings.Builder
	s.WriteString("# cmd/collector/deploy/mosquitto/mosquitto.conf, paths rewritten for a local run\n")
	if p.RunAsRoot {
		s.WriteString("user root\n")
	}
	for _, line := range strings.Split(Conf, "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch key {
		case "listener":
			fmt.Fprintf(&s, "listener %d 127.0.0.1\n", p.Port)
		case "cafile":
			fmt.Fprintf(&s, "cafile %s\n", p.CA)
		case "certfile":
			fmt.Fprintf(&s, "certfile %s\n", p.Cert)
		case "keyfile":
			fmt.Fprintf(&s, "keyfile %s\n", p.Key)
		case "acl_file":
			fmt.Fprintf(&s, "acl_file %s\n", p.ACL)
		case "persistence":
			s.WriteString("persistence false\n")
		case "persistence_location":
		case "log_dest":
			s.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
		default:
			s.WriteString(line + "\n")
		}
	}
	return s.String()
}
