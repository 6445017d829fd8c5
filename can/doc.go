// Package can provides primitives for working with CAN: the frame type, the
// can-utils candump log format, and allowlist filters with the semantics of
// the kernel's CAN_RAW_FILTER.
//
// # Frames
//
// A Frame is a plain value holding a classic CAN, CAN FD, remote or error
// frame. Frame.Validate says whether a frame can exist on a bus.
//
// # The candump log format
//
// Reader and Writer handle the log files of can-utils `candump -l` (the same
// lines `candump -L` prints), one frame per line:
//
//	(1700000000.123456) can0 1A3#0011223344556677
//	^ seconds.micro     ^bus ^ frame
//
// The frame part, as can-utils lib.c writes it (sprint_canframe, no
// separators) and reads it (parse_canframe):
//
//	1A3#0011223344556677     standard id: exactly 3 hex digits, 0 to 8 data bytes
//	18FEF100#0011            extended id: exactly 8 hex digits
//	123#R  123#R5            remote frame, with an optional length digit 0-8
//	123#1122334455667788_C   classic frame of 8 bytes with a raw DLC 9-F (read; Len stays 8)
//	123##1001122             CAN FD: flags nibble (1 BRS, 2 ESI, 4 FDF), then 0-64 bytes of a valid FD length
//	20000004#0000000000000000 error frame: CAN_ERR_FLAG in an 8-digit id; Frame.ID is the error class
//
// Hex digits may be upper or lower case, and '.' may separate data bytes as
// cansend allows. The interface name (1 to 15 printable bytes, right-aligned
// by candump when it logs several interfaces) may be preceded by extra spaces,
// and the line may end in candump -x's direction " R" or " T", which is
// ignored. Blank lines and candump's "DROPCOUNT: ..." notices are skipped.
// CAN XL frames ("12345#80:00:11223344#...") are not supported and are an
// error.
//
// A line that does not parse stops the Reader with a *LineError that names
// the line, wrapping ErrSyntax or ErrLineTooLong. The Writer writes exactly
// what candump writes: uppercase hex, a 10-digit zero-padded seconds field,
// 6 decimals, and FD flags without the FDF bit.
//
// # Filters
//
// A Filter is an allowlist of data frames. Filter.Rules gives the kernel
// filters (CAN_RAW_FILTER) that pass exactly the frames Filter.Match passes,
// so a log replayed with WithFilter sees what a filtered socket would see.
package can
