package rig

import (
	"bytes"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"strings"
)

// DiskFiles lists the regular files under dir in an ext4 image (debugfs,
// without mounting it), recursively, as absolute paths in the image.
func DiskFiles(image, dir string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("debugfs", "-R", "ls -p "+dir, image)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs ls %s in %s: %w: %s", dir, image, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "File not found") {
		return nil, fmt.Errorf("%s in %s: %w", dir, image, fs.ErrNotExist)
	}
	// Lines: /inode/mode/uid/gid/name/size/
	var files []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(l), "/")
		if len(f) < 7 || f[5] == "." || f[5] == ".." || f[5] == "" {
			continue
		}
		p := path.Join(dir, f[5])
		switch {
		case strings.HasPrefix(f[2], "04"):
			sub, err := DiskFiles(image, p)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
		case strings.HasPrefix(f[2], "10"):
			files = append(files, p)
		}
	}
	return files, nil
}
