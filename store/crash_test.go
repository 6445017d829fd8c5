package store

import (
	"fmt"
	"os"
)

const crashHelperEnv = "STORE_CRASH_HELPER_DIR"

// crashHelper runs in a child process (the test binary re-executed): it
// appends to the store in dir with real fsyncs, acking and checkpointing
// along the way, until it is killed.
func crashHelper(dir string) int {
	s, err := Open(dir, &Options{CheckpointEvery: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		return 3
	}
	fmt.Println("ready")
	c := chainAt(s.Last())
	for i := 0; ; i++ {
		r := c.next()
		if err := s.Append(r, stateFor(r.Seq)); err != nil {
			fmt.Fprintln(os.Stderr, "helper append:", err)
			return 4
		}
		switch {
		case i%7 == 6 && r.Seq > 3:
			if _, err := s.Ack(r.Seq - 3); err != nil {
				fmt.Fprintln(os.Stderr, "helper ack:", err)
				return 5
			}
		case i%3 == 1:
			if err := s.Checkpoint([]byte(string(stateFor(r.Seq)) + ";cp")); err != nil {
				fmt.Fprintln(os.Stderr, "helper checkpoint:", err)
				return 6
			}
		case i%11 == 5:
			if err := s.Nack(r.Seq, "test"); err != nil {
				fmt.Fprintln(os.Stderr, "helper nack:", err)
				return 7
			}
		}
	}
}
