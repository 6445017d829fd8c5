//go:build pprof

package main

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// With -tags pprof, TBOXD_CPUPROFILE=FILE writes a CPU profile of the
// first TBOXD_CPUPROFILE_SECONDS (default 30) seconds.
func init() {
	path := os.Getenv("TBOXD_CPUPROFILE")
	if path == "" {
		return
	}
	secs, _ := strconv.Atoi(os.Getenv("TBOXD_CPUPROFILE_SECONDS"))
	if secs <= 0 {
		secs = 30
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	delay, _ := time.ParseDuration(os.Getenv("TBOXD_CPUPROFILE_DELAY"))
	go func() {
		time.Sleep(delay)
		pprof.StartCPUProfile(f)
		time.Sleep(time.Duration(secs) * time.Second)
		pprof.StopCPUProfile()
		f.Close()
	}()
}
