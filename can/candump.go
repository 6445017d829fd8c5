package can

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Errors of the candump Reader. A *LineError wraps one of them.
var (
	// ErrSyntax means a line is not a candump log line or holds a frame
	// that cannot exist (an 11-bit id above 0x7FF, 9 bytes in a classic
	// frame, an FD length that is not a valid FD length, ...).
	ErrSyntax = errors.New("candump syntax")
	// ErrTruncated means the log's last line, which has no line end, is
	// cut short (candump killed mid-line). Every frame before it was
	// delivered; callers may treat it as a warning.
	ErrTruncated = errors.New("candump log truncated in its last line")
	// ErrLineTooLong means a line is longer than MaxLineLen bytes.
	ErrLineTooLong = errors.New("candump line too long")
)

// Limits of the candump log format as the Reader accepts it.
const (
	// MaxLineLen is the longest line the Reader accepts, newline excluded.
	// The longest line candump writes (a 64-byte FD frame) is under 200 bytes.
	MaxLineLen = 4096
	// MaxBusNameLen is the longest interface name: IFNAMSIZ-1 on Linux.
	MaxBusNameLen = 15
	// MaxLogSeconds is the largest timestamp, in seconds since 1970, that
	// the Reader and the Writer accept (12 digits, past the year 33000).
	MaxLogSeconds = 999_999_999_999
)

const (
	maxSecDigits  = 12
	maxFracDigits = 9
	maxFrameText  = 8 + 3 + 2*MaxFDDataLen + 4 // "12345678##1" + data + "_C" and room
	maxInterned   = 64                         // distinct bus names kept per Reader
	readBufSize   = 64 << 10
	writeBufSize  = 64 << 10
	ctxCheckLines = 1024 // lines skipped by the filter between context checks
)

// LineError reports a line of a candump log that could not be read.
type LineError struct {
	Line int   // 1-based line number
	Err  error // wraps ErrSyntax or ErrLineTooLong
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// Clock is the time source of a paced replay. The system clock is used
// unless a test supplies a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ReaderOption configures a Reader.
type ReaderOption func(*readerOptions)

type readerOptions struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	filter    *Filter
	hasFilter bool
	clock     Clock
	ctx       context.Context
}

// WithFilter makes the Reader return only the frames that f passes, exactly
// as the kernel would with f.Rules() installed: remote and error frames
// never pass. Other lines are still parsed, and a malformed one still stops
// the Reader. A nil f passes nothing, like Filter.Match.
func WithFilter(f *Filter) ReaderOption {
	return func(o *readerOptions) { o.filter, o.hasFilter = f, true }
}

// WithPace replays the log at its recorded pace: the Reader holds back each
// frame until as much time has passed on clock since the first line was read
// as the log shows between the first line's timestamp and the frame's. A
// frame stamped earlier than its predecessor is returned at once. A nil clock
// is the system clock. Without WithPace the Reader returns frames as fast as
// it can parse them.
func WithPace(clock Clock) ReaderOption {
	if clock == nil {
		clock = systemClock{}
	}
	return func(o *readerOptions) { o.clock = clock }
}

// WithContext stops the Reader when ctx is done: Receive returns false and
// Err returns ctx.Err(). A paced wait ends at once; a Read blocked in the
// underlying io.Reader does not, so close that reader to unblock it.
func WithContext(ctx context.Context) ReaderOption {
	return func(o *readerOptions) { o.ctx = ctx }
}

// Reader reads frames from a candump log. Use it like bufio.Scanner:
//
//	r := can.NewReader(file, can.WithFilter(filter))
//	for r.Receive() {
//		f := r.Frame()
//		...
//	}
//	if err := r.Err(); err != nil { ... }
//
// Without WithFilter every frame of the log is returned, remote and error
// frames included (socketcan.Conn reports error frames as events instead).
//
// Reading, parsing and filtering a line allocate nothing (a paced wait
// allocates its timer). A Reader is not
// safe for concurrent use.
type Reader struct {
	br     *bufio.Reader
	frame  Frame
	dirty  int // Data[:dirty] may hold bytes of earlier frames
	line   int
	err    error
	done   bool
	filter *Filter
	useF   bool

	names     map[string]string
	lastBus   string
	errDetail bool // the last line was an ERRORFRAME of candump's screen output

	ctx   context.Context
	ctxC  <-chan struct{}
	clock Clock
	paced bool
	t0    time.Time // log time of the first frame (paced)
	w0    time.Time // clock time when the first frame was read (paced)
}

// NewReader returns a Reader of the candump log in r.
func NewReader(r io.Reader, opts ...ReaderOption) *Reader {
	var o readerOptions
	for _, opt := range opts {
		opt(&o)
	}
	rd := &Reader{
		br:     bufio.NewReaderSize(r, readBufSize),
		filter: o.filter,
		useF:   o.hasFilter,
		names:  make(map[string]string, 4),
		clock:  o.clock,
		ctx:    o.ctx,
	}
	if o.ctx != nil {
		rd.ctxC = o.ctx.Done()
	}
	return rd
}

// Frame returns the frame read by the last successful Receive. The frame
// belongs to the Reader and is overwritten by the next call to Receive: copy
// it (*f) to keep it.
func (r *Reader) Frame() *Frame { return &r.frame }

// Err returns the error that stopped the Reader: nil at the end of the log, a
// *LineError for a malformed line, the context's error when its context was
// done, or a read error of the underlying reader.
func (r *Reader) Err() error { return r.err }

// Line returns the number of the last line read: the line of the frame
// Frame returns, or the line that stopped the Reader.
func (r *Reader) Line() int { return r.line }

// Receive reads the next frame that passes the Reader's filter. It returns
// false at the end of the log or on an error, which Err then returns.
func (r *Reader) Receive() bool {
	if r.done {
		return false
	}
	if r.ctxC != nil && r.ctxDone() {
		return false
	}
	skipped := 0
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil && !r.readError(line, err) {
			return false
		}
		r.line++
		line = trimLine(line)
		if len(line) == 0 || isNotice(line) {
			if err != nil { // io.EOF after a last line without newline
				r.done = true
				return false
			}
			continue
		}
		if len(line) > MaxLineLen {
			return r.fail(&LineError{Line: r.line, Err: errorf("%w: %d bytes, want at most %d", ErrLineTooLong, len(line), MaxLineLen)})
		}
		if perr := r.parseLine(line); perr != nil {
			if perr == errSkipLine {
				if err != nil {
					r.done = true
					return false
				}
				continue
			}
			if err != nil && !errors.Is(perr, ErrNoTimestamp) {
				// The last line has no newline: candump was killed while
				// writing it. Everything before it was delivered.
				return r.fail(&LineError{Line: r.line, Err: errorf("%w: %w", ErrTruncated, perr)})
			}
			return r.fail(&LineError{Line: r.line, Err: perr})
		}
		if err != nil {
			r.done = true // the last line had no newline: deliver it, then stop
		}
		if r.clock != nil && !r.paced {
			r.paced = true
			r.t0, r.w0 = r.frame.Time, r.clock.Now()
		}
		if !r.useF || r.filter.Match(&r.frame) {
			if r.clock != nil && !r.wait() {
				return false
			}
			return true
		}
		if r.done {
			return false
		}
		if skipped++; skipped == ctxCheckLines {
			skipped = 0
			if r.ctxC != nil && r.ctxDone() {
				return false
			}
		}
	}
}

// readError handles an error of ReadSlice. It reports whether line should
// still be parsed (the last line of the input, without a newline).
func (r *Reader) readError(line []byte, err error) bool {
	switch {
	case err == io.EOF:
		if len(line) == 0 {
			r.done = true
			return false
		}
		return true
	case errors.Is(err, bufio.ErrBufferFull):
		r.line++
		r.fail(&LineError{Line: r.line, Err: errorf("%w: over %d bytes, want at most %d", ErrLineTooLong, len(line), MaxLineLen)})
		return false
	default:
		r.fail(errorf("candump read after line %d: %w", r.line, err))
		return false
	}
}

func (r *Reader) fail(err error) bool {
	r.err, r.done = err, true
	return false
}

func (r *Reader) ctxDone() bool {
	select {
	case <-r.ctxC:
		r.fail(r.ctx.Err())
		return true
	default:
		return false
	}
}

// wait holds back the current frame until its time in a paced replay.
func (r *Reader) wait() bool {
	d := r.w0.Add(r.frame.Time.Sub(r.t0)).Sub(r.clock.Now())
	if d <= 0 {
		return true
	}
	select {
	case <-r.clock.After(d):
		return true
	case <-r.ctxC: // nil without a context: blocks forever, never chosen
		return r.fail(r.ctx.Err())
	}
}

// trimLine removes the line end and trailing blanks (CRLF logs, padding).
func trimLine(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case '\n', '\r', ' ', '\t':
			b = b[:len(b)-1]
		default:
			return b
		}
	}
	return b
}

// errSkipLine is parseLine's answer for a line that holds no frame.
var errSkipLine = errors.New("no frame on this line")

// isNotice reports candump's "DROPCOUNT: dropped N CAN frames ..." line.
func isNotice(b []byte) bool {
	return b[0] == 'D' && len(b) >= 10 && string(b[:10]) == "DROPCOUNT:"
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// hexVal maps an ASCII hex digit to its value and anything else to 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// parseLine parses one trimmed, non-empty line into r.frame.
func (r *Reader) parseLine(line []byte) error {
	f := &r.frame
	if line[0] == ' ' {
		// candump's screen output begins with a blank before the
		// timestamp: " (1700000000.123456)  can0  123   [8]  ...".
		j := 1
		for j < len(line) && isBlank(line[j]) {
			j++
		}
		if j < len(line) && line[j] == '(' {
			line = line[j:]
		}
	}
	if line[0] != '(' {
		if line[0] == '\t' && r.errDetail {
			return errSkipLine // candump -e: the decoded error frame above
		}
		if looksLikeScreen(line) {
			return errorf("%w: no timestamps (plain candump); %s", ErrNoTimestamp, recordHint)
		}
		return syntaxErr("timestamp", "(seconds.microseconds)", line)
	}
	r.errDetail = false
	if len(line) > 11 && line[5] == '-' && line[8] == '-' {
		return errorf("%w: local date and time (candump -tA) cannot be replayed exactly; %s", ErrNoTimestamp, recordHint)
	}
	i := 1
	start := i
	var sec int64
	for i < len(line) && i-start < maxSecDigits+1 && uint(line[i]-'0') < 10 {
		sec = sec*10 + int64(line[i]-'0')
		i++
	}
	secDigits := i - start
	if n := secDigits; n == 0 || n > maxSecDigits || i >= len(line) || line[i] != '.' {
		return syntaxErr("timestamp", "1 to 12 decimal digits of seconds, then '.'", line[start:])
	}
	i++
	start = i
	var frac int64
	for i < len(line) && i-start < maxFracDigits+1 && uint(line[i]-'0') < 10 {
		frac = frac*10 + int64(line[i]-'0')
		i++
	}
	n := i - start
	if n == 0 || n > maxFracDigits || i >= len(line) || line[i] != ')' {
		return syntaxErr("timestamp", "1 to 9 decimal digits of the fraction, then ')'", line[start:])
	}
	f.Time = time.Unix(sec, frac*pow10[maxFracDigits-n])
	i++

	// One or more blanks: candump right-aligns names of different lengths.
	if i >= len(line) || !isBlank(line[i]) {
		return syntaxErr("interface name", "a blank after the timestamp", line[i:])
	}
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	start = i
	for i < len(line) && !isBlank(line[i]) {
		if c := line[i]; c < 0x21 || c > 0x7E {
			return syntaxErr("interface name", "printable ASCII", line[start:i+1])
		}
		i++
	}
	name := line[start:i]
	if len(name) > MaxBusNameLen {
		return syntaxErr("interface name", "at most 15 bytes", name)
	}
	if i >= len(line) {
		return syntaxErr("frame", "an interface name and a frame after the timestamp", name)
	}
	r.intern(name)
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	start = i
	for i < len(line) && !isBlank(line[i]) {
		i++
	}
	if bytes.IndexByte(line[start:i], '#') < 0 {
		// Not a log line's frame: candump's screen output (-ta).
		return r.parseScreen(line[start:], secDigits)
	}
	if err := r.parseFrame(line[start:i]); err != nil {
		return err
	}
	// Optional direction of candump -x: " R" (received) or " T" (sent).
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	if rest := line[i:]; len(rest) != 0 && (len(rest) != 1 || (rest[0] != 'R' && rest[0] != 'T')) {
		return syntaxErr("end of line", "nothing, or the direction R or T", rest)
	}
	return nil
}

// intern sets the frame's bus name without allocating for a name seen before.
func (r *Reader) intern(name []byte) {
	if string(name) == r.lastBus {
		r.frame.Bus = r.lastBus
		return
	}
	s, ok := r.names[string(name)]
	if !ok {
		s = string(name)
		if len(r.names) < maxInterned {
			r.names[s] = s
		}
	}
	r.lastBus = s
	r.frame.Bus = s
}

// parseFrame parses the frame part of a line ("123#1122", "123##1AA", ...).
func (r *Reader) parseFrame(tok []byte) error {
	f := &r.frame
	n := 0
	var id uint32
	for n < len(tok) && n < 9 {
		v := hexVal[tok[n]]
		if v > 15 {
			break
		}
		id = id<<4 | uint32(v)
		n++
	}
	if n == len(tok) {
		return syntaxErr("frame", "<id>#<data>", tok)
	}
	if tok[n] != '#' {
		return syntaxErr("CAN id", "3 hex digits (standard) or 8 (extended), then '#'", tok)
	}
	if n == 5 {
		return syntaxErr("CAN id", "CAN or CAN FD; CAN XL frames are not supported", tok)
	}
	if err := r.setID(id, tok[:n]); err != nil {
		return err
	}
	p := tok[n+1:]

	if len(p) > 0 && (p[0] == 'R' || p[0] == 'r') {
		if f.Flags&ErrorFrame != 0 {
			return syntaxErr("frame", "an error frame with data, not remote", tok)
		}
		f.Flags |= Remote
		f.Len = 0
		p = p[1:]
		if len(p) > 0 {
			if uint(p[0]-'0') > MaxDataLen {
				return syntaxErr("remote frame length", "one digit 0 to 8", p)
			}
			f.Len = p[0] - '0'
			p = p[1:]
		}
		if len(p) > 0 && (f.Len != MaxDataLen || !isRawDLC(p)) {
			return syntaxErr("remote frame", "R, R<len> or R8_<raw DLC 9-F>", tok)
		}
		r.clearData(0)
		return nil
	}

	maxLen := MaxDataLen
	if len(p) > 0 && p[0] == '#' {
		if f.Flags&ErrorFrame != 0 {
			return syntaxErr("frame", "an error frame as a classic frame, not CAN FD", tok)
		}
		if len(p) < 2 || hexVal[p[1]] > 7 {
			return syntaxErr("CAN FD flags", "one hex digit 0-7 (1 BRS, 2 ESI, 4 FDF) after '##'", p[1:])
		}
		fl := hexVal[p[1]]
		f.Flags |= FD
		if fl&1 != 0 {
			f.Flags |= BRS
		}
		if fl&2 != 0 {
			f.Flags |= ESI
		}
		p = p[2:]
		maxLen = MaxFDDataLen
	}

	// Data: hex pairs, each optionally preceded by '.' as cansend allows.
	d := 0
	i := 0
	for {
		if i < len(p) && p[i] == '.' {
			i++
		}
		if i >= len(p) || p[i] == '_' {
			break
		}
		if d == maxLen {
			if maxLen == MaxDataLen {
				return syntaxErr("data", "at most 8 bytes in a classic frame", p)
			}
			return syntaxErr("data", "at most 64 bytes in a CAN FD frame", p)
		}
		if i+1 >= len(p) {
			return syntaxErr("data", "an even number of hex digits", p)
		}
		hi, lo := hexVal[p[i]], hexVal[p[i+1]]
		if hi|lo > 15 {
			return syntaxErr("data", "hex digits", p[i:i+2])
		}
		f.Data[d] = hi<<4 | lo
		d++
		i += 2
	}
	if i < len(p) { // '_' and a raw DLC after 8 bytes of a classic frame
		if maxLen != MaxDataLen || d != MaxDataLen || !isRawDLC(p[i:]) {
			return syntaxErr("raw DLC", "_<9-F> only after 8 bytes of a classic frame", p[i:])
		}
	}
	if maxLen == MaxFDDataLen && !validFDLen(uint8(d)) {
		return syntaxErr("CAN FD length", "0-8, 12, 16, 20, 24, 32, 48 or 64 bytes", p)
	}
	f.Len = uint8(d)
	r.clearData(d)
	return nil
}

// setID sets the frame's ID and flags from the ID's hex digits, whose
// value is id: 3 digits for a standard ID, 8 for an extended ID or an error
// frame (the kernel's error flag set), as candump writes them.
func (r *Reader) setID(id uint32, digits []byte) error {
	f := &r.frame
	switch len(digits) {
	case 3:
		if id > MaxID {
			return syntaxErr("CAN id", "a standard id up to 7FF", digits)
		}
		f.Flags = 0
	case 8:
		switch {
		case id&KernelERRFlag != 0 && id <= KernelERRFlag|KernelEFFMask:
			id &= KernelEFFMask
			f.Flags = ErrorFrame
		case id <= MaxExtendedID:
			f.Flags = Extended
		default:
			return syntaxErr("CAN id", "an extended id up to 1FFFFFFF or an error frame 2xxxxxxx", digits)
		}
	default:
		return syntaxErr("CAN id", "3 hex digits (standard) or 8 (extended)", digits)
	}
	f.ID = id
	return nil
}

// isRawDLC reports "_9" to "_F": the raw DLC of an 8-byte classic frame.
func isRawDLC(p []byte) bool {
	return len(p) == 2 && p[0] == '_' && hexVal[p[1]] >= 9 && hexVal[p[1]] <= 15
}

// clearData zeroes the bytes past the payload that an earlier frame wrote,
// so that frames compare equal when their payloads do.
func (r *Reader) clearData(n int) {
	if r.dirty > n {
		clear(r.frame.Data[n:r.dirty])
	}
	r.dirty = n
}

// syntaxErr describes a malformed field: what was expected and what was
// found (quoted, shortened to 40 bytes).
func syntaxErr(field, want string, found []byte) error {
	const maxShown = 40
	if len(found) > maxShown {
		return errorf("%w: %s: want %s, found %q...", ErrSyntax, field, want, found[:maxShown])
	}
	return errorf("%w: %s: want %s, found %q", ErrSyntax, field, want, found)
}

// Writer writes frames in the candump -l log format.
type Writer struct {
	bw  *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer that writes a candump log to w. Call Flush when
// done.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, writeBufSize), buf: make([]byte, 0, 256)}
}

// Write writes f as one log line, its time truncated to the microsecond. It
// refuses, with an error wrapping ErrInvalidFrame, a frame that fails
// Validate, has no valid bus name (1 to 15 printable bytes, no blanks), or a
// time before 1970 or after MaxLogSeconds.
func (w *Writer) Write(f *Frame) error {
	if err := checkWritable(f); err != nil {
		return err
	}
	b := w.buf[:0]
	sec := f.Time.Unix()
	usec := f.Time.Nanosecond() / 1000
	b = append(b, '(')
	b = appendDec(b, uint64(sec), 10)
	b = append(b, '.')
	b = appendDec(b, uint64(usec), 6)
	b = append(b, ')', ' ')
	b = append(b, f.Bus...)
	b = append(b, ' ')
	b = appendFrameText(b, f)
	b = append(b, '\n')
	w.buf = b
	if _, err := w.bw.Write(b); err != nil {
		return errorf("candump write: %w", err)
	}
	return nil
}

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return errorf("candump flush: %w", err)
	}
	return nil
}

func checkWritable(f *Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if n := len(f.Bus); n == 0 || n > MaxBusNameLen {
		return errorf("%w: bus name %q: want 1 to %d bytes", ErrInvalidFrame, f.Bus, MaxBusNameLen)
	}
	for i := 0; i < len(f.Bus); i++ {
		if c := f.Bus[i]; c < 0x21 || c > 0x7E {
			return errorf("%w: bus name %q: want printable ASCII without blanks", ErrInvalidFrame, f.Bus)
		}
	}
	if s := f.Time.Unix(); s < 0 || s > MaxLogSeconds {
		return errorf("%w: time %s: want 1970 to unix second %d", ErrInvalidFrame, f.Time.UTC().Format(time.RFC3339), int64(MaxLogSeconds))
	}
	return nil
}

const upperHex = "0123456789ABCDEF"

// appendFrameText appends the frame part of a log line as sprint_canframe
// writes it.
func appendFrameText(b []byte, f *Frame) []byte {
	switch {
	case f.Flags&ErrorFrame != 0:
		b = appendHex(b, f.ID&KernelEFFMask|KernelERRFlag, 8)
	case f.Flags&Extended != 0:
		b = appendHex(b, f.ID&KernelEFFMask, 8)
	default:
		b = appendHex(b, f.ID&KernelSFFMask, 3)
	}
	b = append(b, '#')
	if f.Flags&Remote != 0 && f.Flags&FD == 0 {
		b = append(b, 'R')
		if f.Len > 0 && f.Len <= MaxDataLen {
			b = append(b, '0'+f.Len)
		}
		return b
	}
	n := int(f.Len)
	if f.Flags&FD != 0 {
		var fl byte
		if f.Flags&BRS != 0 {
			fl |= 1
		}
		if f.Flags&ESI != 0 {
			fl |= 2
		}
		b = append(b, '#', upperHex[fl])
		n = min(n, MaxFDDataLen)
	} else {
		n = min(n, MaxDataLen)
	}
	for _, c := range f.Data[:n] {
		b = append(b, upperHex[c>>4], upperHex[c&0xF])
	}
	return b
}

func appendHex(b []byte, v uint32, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b = append(b, upperHex[(v>>(4*uint(i)))&0xF])
	}
	return b
}

// appendDec appends v in decimal, zero-padded to at least width digits.
func appendDec(b []byte, v uint64, width int) []byte {
	var t [20]byte
	i := len(t)
	for v > 0 || len(t)-i < width {
		i--
		t[i] = byte('0' + v%10)
		v /= 10
	}
	if i == len(t) {
		i--
		t[i] = '0'
	}
	return append(b, t[i:]...)
}
