// Package socketcan reads and writes CAN frames on a Linux SocketCAN interface.
//
// # Concepts
//
// A [Conn] is one CAN_RAW socket bound to one interface ("can0", "vcan0"). It
// reads like a bufio.Scanner:
//
//	conn, err := socketcan.Open("can0", socketcan.WithFilter(filter))
//	if err != nil { ... }
//	defer conn.Close()
//	for conn.Receive() {
//		f := conn.Frame()
//		...
//	}
//	err = conn.Err()
//
// or frame by frame with [Conn.ReadFrame], which a context cancels. Closing the
// Conn from another goroutine unblocks a pending read; [Conn.Receive] then
// returns false with a nil Err (the stream ended), [Conn.ReadFrame] returns an
// error that matches net.ErrClosed and os.ErrClosed.
//
// Kernel filters: [WithFilter] installs the allowlist's rules as CAN_RAW_FILTER,
// so frames that are not on the list never reach user space. An empty
// allowlist receives no data frames at all.
//
// Error frames are not data: the controller's error reports (bus-off,
// error-passive, lost arbitration, ...) are decoded into [Event] values,
// delivered on [Conn.Events] and counted in [Conn.Stats]. The same channel
// carries [Down] and [Up] when the interface goes away and comes back: the
// Conn then reopens the socket by itself with exponential backoff, reinstalls
// its options, and reading resumes transparently. [Conn.Reopen] forces the
// same cycle (Down, a new socket, Up) on request, as the diagnostic shell's
// "reopen can" does.
//
// Frames are received in batches: one non-blocking recvmmsg takes whatever
// the socket holds, up to 32 frames, and the reader hands them out one by
// one ([Stats].Reads counts the calls). When the socket is empty the reader
// waits in poll(2) on its own thread; the socket is kept off the Go
// runtime's poller, whose edge-triggered epoll would wake a thread for
// every frame queued. With [WithCoalesce] the reader lets frames gather in
// the socket for a while after a receive that emptied it, so that frames
// trickling in one at a time (a car's) come in one batch per interval, with
// their kernel receive times unchanged.
//
// Each frame carries the kernel's receive timestamp (SO_TIMESTAMPNS), and the
// kernel's count of frames dropped because the socket's receive buffer was
// full (SO_RXQ_OVFL) is reported as [Stats].Dropped.
//
// # Caveats
//
// One goroutine reads, and while it waits for frames it holds an OS thread
// (in poll); any number may write. The kernel reports drops only
// with the next frame it delivers, so Stats().Dropped can lag until another
// frame arrives. SocketCAN exists only on Linux: on other systems Open
// returns an error matching [ErrNotSupported].
package socketcan
