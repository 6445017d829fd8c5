package poll

import (
	"go/build"
	"strings"
	"testing"
)

const module = "github.com/csop/tbox/"

// The parts that take input from outside the car, the MQTT uplink and the
// diagnostic shell, cannot reach the poller or the socket it writes
// through: neither imports, directly or through another package of this
// module, agent/poll, can/isotp or can/socketcan. Only tboxd's main wires
// the poller, from the profile alone.
func TestOutsideInputCannotReachThePoller(t *testing.T) {
	forbidden := []string{module + "agent/poll", module + "can/isotp", module + "can/socketcan"}
	for _, root := range []string{module + "agent/uplink", module + "agent/shell"} {
		seen := map[string]string{}
		var walk func(pkg, from string)
		walk = func(pkg, from string) {
			if _, ok := seen[pkg]; ok {
				return
			}
			seen[pkg] = from
			bp, err := build.Import(pkg, ".", 0)
			if err != nil {
				t.Fatalf("%s: %v", pkg, err)
			}
			for _, imp := range bp.Imports {
				if strings.HasPrefix(imp, module) {
					walk(imp, pkg)
				}
			}
		}
		walk(root, "")
		if len(seen) < 2 {
			t.Fatalf("%s: found %d packages: the walk is broken", root, len(seen))
		}
		for _, f := range forbidden {
			if from, ok := seen[f]; ok {
				t.Errorf("%s reaches %s (imported by %s)", root, f, from)
			}
		}
	}
}
