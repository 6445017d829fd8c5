package shell_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// terminal is a scripted byte stream: what the technician types, then the
// end of the stream; it keeps what the shell writes.
type terminal struct {
	in  io.Reader
	out bytes.Buffer
}

func (t *terminal) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t *terminal) Write(p []byte) (int, error) { return t.out.Write(p) }

func ExampleShell_Serve() {
	dev, _ := signer.ParseAddress("0x3b0c4e5a8f0d2c7e9a1b6d4f2e8c0a9b7d5f3e1c")
	sh, err := shell.New(shell.Config{}, shell.Deps{Device: dev, Version: "v1.0.0"})
	if err != nil {
		panic(err)
	}
	term := &terminal{in: strings.NewReader("id\r\natt\x1b[A\r\nupload now\r\n")}
	if err := sh.Serve(context.Background(), term); err != nil {
		panic(err)
	}
	for _, line := range strings.Split(term.out.String(), "\r\n") {
		fmt.Println(strings.TrimRight(line, " "))
	}
	// Output:
	// CSOP T-Box diagnostic shell v1.0.0, device 0x3b0c4e5a8f0d2c7e9a1b6d4f2e8c0a9b7d5f3e1c. Type help.
	// tbox> id
	// 0x3b0c4e5a8f0d2c7e9a1b6d4f2e8c0a9b7d5f3e1c
	// tbox> att
	// att: want one of: att last, att show SEQ
	// tbox> upload now
	// upload now: service mode required: type unlock
	// tbox>
}
