package collect

import "sync"

// Stream handles a stream of groups as Process handles one, but checks the
// next group while the previous one's transaction commits: next returns
// the groups in order (false when there are no more), and done gets each
// group's replies (or its transaction's error) after its commit, in order,
// on the committing goroutine. Stream returns when next has returned false
// and the last group is done.
//
// The pipeline is one group deep: a checked group waits for the previous
// commit (and its done) to end before it commits, and the group after it
// is not taken from next until then, so messages not yet taken stay in
// the receive queue, where devices take turns (receipts.go). A message's
// wait is at most one check and one commit before its own: never more
// than without the overlap, where it waited for the group in hand to be
// checked and committed. What the overlap gains is the database's time:
// the signature checks (the CPU's work) go on while a commit waits for
// PostgreSQL's round trips and its fsync, or bbolt's fsync.
func (c *Collector) Stream(next func() ([]Message, bool), done func([]Reply, error)) {
	checked := make(chan *Checked) // unbuffered: one group checked ahead, no more
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := range checked {
			done(c.Commit(g))
		}
	}()
	for {
		msgs, ok := next()
		if !ok {
			break
		}
		checked <- c.Check(msgs)
	}
	close(checked)
	wg.Wait()
}
