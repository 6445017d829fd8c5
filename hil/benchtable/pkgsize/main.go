// Command pkgsize sums the symbol sizes of a Go binary per package and,
// given a second binary, prints the packages in which they differ: what
// tboxd links above the library floor (hil/benchtable/floor). Build both
// unstripped (no -s -w: the symbol table is what it reads) for the same
// target, then:
//
//	go run ./hil/benchtable/pkgsize tboxd floor
//
// Symbols without a package (go:func.*, the funcdata of every function) are
// listed under their own names; the line tables (.gopclntab) are not
// symbols and come on top, roughly in proportion to the code.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: pkgsize BINARY [BASELINE]")
		os.Exit(2)
	}
	a, err := sizes(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pkgsize:", err)
		os.Exit(1)
	}
	b := map[string]int64{}
	if len(os.Args) == 3 {
		if b, err = sizes(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "pkgsize:", err)
			os.Exit(1)
		}
	}
	type row struct {
		pkg  string
		a, b int64
	}
	var rows []row
	var total int64
	for p := range union(a, b) {
		rows = append(rows, row{p, a[p], b[p]})
		total += a[p] - b[p]
	}
	sort.Slice(rows, func(i, j int) bool {
		di, dj := rows[i].a-rows[i].b, rows[j].a-rows[j].b
		if di != dj {
			return di > dj
		}
		return rows[i].pkg < rows[j].pkg
	})
	fmt.Printf("%-56s %9s %9s %9s\n", "package", "KiB", "base KiB", "diff KiB")
	for _, r := range rows {
		if d := r.a - r.b; d >= 512 || d <= -512 {
			fmt.Printf("%-56s %9.1f %9.1f %+9.1f\n", r.pkg, kib(r.a), kib(r.b), kib(d))
		}
	}
	fmt.Printf("%-56s %9s %9s %+9.1f\n", "total (symbols)", "", "", kib(total))
}

func kib(n int64) float64 { return float64(n) / 1024 }

func union(a, b map[string]int64) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// sizes runs go tool nm -size on bin and sums the sizes of its text and
// data symbols per package (bss takes no room in the file).
func sizes(bin string) (map[string]int64, error) {
	out, err := exec.Command("go", "tool", "nm", "-size", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool nm %s: %w", bin, err)
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text()) // address, size, type, name (which may hold blanks)
		if len(f) < 4 || strings.ContainsAny(f[2], "BbU") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m[pkgOf(strings.Join(f[3:], " "))] += n
	}
	return m, sc.Err()
}

// pkgOf returns the import path of a symbol's package: the text up to the
// first dot after the last slash, once the prefixes of type and
// interface-table symbols and the type arguments of generic code are cut.
func pkgOf(sym string) string {
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:", "go:itab.", "go:info.", "go:string."} {
		if strings.HasPrefix(sym, p) {
			sym = sym[len(p):]
			break
		}
	}
	sym = strings.TrimLeft(sym, "*")
	if i := strings.IndexByte(sym, '['); i >= 0 {
		sym = sym[:i]
	}
	slash := strings.LastIndexByte(sym, '/') + 1
	if dot := strings.IndexByte(sym[slash:], '.'); dot >= 0 {
		return sym[:slash+dot]
	}
	return sym
}
