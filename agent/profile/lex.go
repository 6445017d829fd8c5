package profile

import "strings"

// Small scanners of profile text, in place of regular expressions (the
// parts of the regexp engine they needed were 26 KiB of tboxd). TestScannersMatchRegexps and
// FuzzScanners hold each to the expression in its comment.

// tomlLine returns the digits of the first "line <digits>" in msg, the line
// number of a TOML decoder's error: `line (\d+)`.
func tomlLine(msg string) (string, bool) {
	for i := 0; ; i++ {
		j := strings.Index(msg[i:], "line ")
		if j < 0 {
			return "", false
		}
		i += j
		k := i + len("line ")
		for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
			k++
		}
		if k > i+len("line ") {
			return msg[i+len("line ") : k], true
		}
	}
}

// isBusName reports whether s can name a CAN interface: 1 to 15 letters,
// digits and "_.:-" (`^[A-Za-z0-9_.:-]{1,15}$`).
func isBusName(s string) bool {
	if len(s) < 1 || len(s) > 15 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTableChar(s[i]) && s[i] != ':' {
			return false
		}
	}
	return true
}

// tableHeader returns the name of the TOML table a line opens, "[name]"
// with blanks allowed around the name (`^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]`);
// "[[array]]" is not one.
func tableHeader(line string) (string, bool) {
	i := skipSpace(line, 0)
	if i == len(line) || line[i] != '[' {
		return "", false
	}
	i = skipSpace(line, i+1)
	start := i
	for i < len(line) && isTableChar(line[i]) {
		i++
	}
	name := line[start:i]
	i = skipSpace(line, i)
	if name == "" || i == len(line) || line[i] != ']' {
		return "", false
	}
	return name, true
}

// isTableChar: [A-Za-z0-9_.-].
func isTableChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// skipSpace skips what `\s` matches, [\t\n\f\r ], from i.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\f' || s[i] == '\r') {
		i++
	}
	return i
}
