// Package shell is the T-Box agent's diagnostic shell, served on a serial
// port for a technician with a serial terminal.
//
// # Sessions
//
// [Shell.Serve] runs one line-oriented session on any byte stream; [Shell.Run]
// opens the configured serial device with go.bug.st/serial and reopens it
// with backoff when it fails or vanishes. The line editor echoes, handles
// backspace (0x08, 0x7f), ^U, ^C and CR, LF or CRLF line ends, discards NUL,
// other control bytes, bytes >= 0x80 and ANSI escape sequences, and refuses
// a line longer than [Config.MaxLine] whole without buffering it. A session
// with no input for [Config.IdleTimeout] is reset and service mode locks.
// Output goes through a bounded queue drained by its own goroutine: a
// terminal that stops reading loses output, never stalls the shell, and the
// shell never stalls the agent, whose state it reads through snapshots.
// Everything printed is made printable ASCII first, so text from outside (a
// backend's nack reason, a log line) cannot drive the terminal.
//
// # Service mode
//
// Read-only commands work at once. Commands that change something (upload
// now, reconnect, reopen can, outbox retry-nacked, flush) need service mode,
// unlocked by a challenge and response in the spirit of UDS SecurityAccess:
//
//  1. unlock prints a challenge token: hex of version (1), the device
//     address (20 bytes), a random nonce (32 bytes) and 4 check bytes.
//  2. The technician runs `tboxctl unlock --service-key FILE --challenge
//     TOKEN`, which signs keccak256("CSOP-TBOX-SERVICE-UNLOCK-v1" || device
//     || nonce) with the maker's service key (secp256k1) and prints the
//     65-byte r||s||v in hex.
//  3. unlock RESPONSE recovers the signer and compares it with the
//     configured service public key ([Config.ServiceKey]).
//
// A challenge gets one answer and expires after [Config.ChallengeTTL]; a new
// one replaces it, so an old response never works twice. Service mode ends
// after [Config.UnlockTTL], on lock, exit, an idle timeout or the end of the
// session. After [Config.MaxFailures] wrong responses in a row, unlocking is
// locked out for [Config.LockoutBase], doubling with every further failure
// up to [Config.LockoutMax], whatever the session; the count lives in
// memory and starts again when the agent restarts.
//
// # What the shell never does
//
// It never shows or exports the device's private key (it holds only a
// [signer.Signer]), never signs data a user chooses (selftest signs the one
// fixed message keccak256("CSOP-TBOX-SELFTEST-v1" || device), which starts
// with no 0x19 and so is neither an EIP-712 attestation digest nor an
// EIP-191 message), never shows a CAN frame, and never blocks or crashes the
// agent, whatever arrives on the port.
package shell
