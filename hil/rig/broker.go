package rig

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/csop/tbox/hil"
)

// Broker is mosquitto on the host's loopback; a guest booted with
// GuestOptions.Broker reaches it as hil.BrokerAddr.
type Broker struct {
	Port int
	proc *proc
}

// URL is the broker's address for a host client.
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.Port) }

// Stop ends the broker (SIGTERM, then SIGKILL after 3 s).
func (b *Broker) Stop() { b.proc.terminate(3 * time.Second) }

// StartBroker runs mosquitto on a free loopback port, without persistence,
// and returns once it accepts connections.
func (r *Rig) StartBroker(ctx context.Context) (*Broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, fmt.Errorf("mosquitto (installed by hil/scripts/install.sh): %w", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to a user that may not read this directory
	}
	cf := r.path("mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logPath := r.path("mosquitto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := commandContext(ctx, bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	pr, err := r.procs.start("mosquitto", cmd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			r.logf("mosquitto listening on 127.0.0.1:%d (the guest reaches it as %s)", port, hil.BrokerAddr)
			return &Broker{Port: port, proc: pr}, nil
		}
		if pr.exited() {
			b, _ := os.ReadFile(filepath.Clean(logPath))
			return nil, fmt.Errorf("mosquitto exited at start (%v): %s", pr.err, b)
		}
		if time.Now().After(deadline) {
			pr.terminate(time.Second)
			return nil, fmt.Errorf("mosquitto not listening on 127.0.0.1:%d after 10 s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
