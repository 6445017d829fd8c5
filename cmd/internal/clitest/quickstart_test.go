package clitest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEQuickStart runs the README's host quick start exactly as the
// README writes it (the sh block after the "quickstart" marker), in bash
// from the repository's root, and checks what it promises: the collector
// stored and re-verified the car's chain, its meters equal the simulator's
// truth, and every batch was drawn.
func TestREADMEQuickStart(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("mosquitto not installed: make deps installs it")
			}
			t.Skip("mosquitto not installed (make deps installs it)")
		}
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- quickstart:")
	if !ok {
		t.Fatal("README has no quickstart marker")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("no sh block after the quickstart marker")
	}
	block, _, _ = strings.Cut(block, "```")
	if l, err := net.Listen("tcp", "127.0.0.1:18830"); err != nil {
		t.Fatalf("the quick start's broker port 18830 is taken: %v", err)
	} else {
		l.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", block)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("quick start took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out)
	}
	text := string(out)
	if !regexp.MustCompile(`(?m)^ok$`).MatchString(text) {
		t.Errorf("collector audit did not say ok:\n%s", text)
	}
	truth := regexp.MustCompile(`"meters": (\d+),`).FindStringSubmatch(text)
	stats := statsRow(text)
	if truth == nil || stats == nil {
		t.Fatalf("no truth or stats line in the output:\n%s", text)
	}
	if stats["meters"] != truth[1] {
		t.Errorf("collector stats: %s m stored, the truth says %s m\n%s", stats["meters"], truth[1], text)
	}
	if e, ok := stats["eligible"]; ok && e != truth[1] {
		t.Errorf("collector stats: %s m eligible, the truth says %s m\n%s", e, truth[1], text)
	}
	if stats["attestations"] == "0" || stats["wins"] == "0" || stats["wins"] == "" {
		t.Errorf("collector stats: %s attestations, %s wins: want the drive stored and drawn\n%s", stats["attestations"], stats["wins"], text)
	}
	// The drive ends now: its last batch may still be open, to be drawn
	// once it closes; every closed one is drawn.
	if m := regexp.MustCompile(`batches waiting for their draw (\d+)`).FindStringSubmatch(text); m == nil || (m[1] != "0" && m[1] != "1") {
		t.Errorf("closed batches left undrawn:\n%s", text)
	}
	if strings.Contains(text, "flags=[CLOCK") {
		t.Errorf("an attestation carries CLOCK: the replayed log's time must be trusted\n%s", text)
	}
}

// statsRow reads collector stats' table: the header line and the one
// device's line, column by column.
func statsRow(text string) map[string]string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		head := strings.Fields(l)
		if len(head) < 3 || head[0] != "device" || head[1] != "attestations" || i+1 >= len(lines) {
			continue
		}
		row := strings.Fields(lines[i+1])
		if len(row) < len(head)-1 || !strings.HasPrefix(row[0], "0x") {
			return nil
		}
		m := map[string]string{}
		for j, h := range head {
			if j < len(row) {
				m[h] = row[j]
			}
		}
		return m
	}
	return nil
}
