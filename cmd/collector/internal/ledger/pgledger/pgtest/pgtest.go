// Package pgtest starts a real PostgreSQL server for tests: a cluster made
// with initdb in a temporary directory, listening on a loopback port.
//
// The binaries are looked for in $PG_BIN, /usr/lib/postgresql/<version>/bin
// (Debian's postgresql package, 15 preferred) and $PATH. Without them a
// test is skipped with the reason, except in CI ($CI set), where
// hil/scripts/install.sh has installed them and their absence fails the
// test. PostgreSQL refuses to run as root: as root, the server runs as the
// user "postgres" (created by the Debian package), which owns the
// directory.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL cluster.
type Server struct {
	bin  string
	dir  string
	Port int
	cred *syscall.Credential
	mu   sync.Mutex
	up   bool
}

// ErrNoBinaries: PostgreSQL's initdb and pg_ctl were not found.
var ErrNoBinaries = errors.New("PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql package (hil/scripts/install.sh does)")

// Bin returns the directory holding initdb and pg_ctl.
func Bin() (string, error) {
	var dirs []string
	if d := os.Getenv("PG_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	vs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(vs, func(i, j int) bool { return strings.Contains(vs[i], "/15/") && !strings.Contains(vs[j], "/15/") })
	dirs = append(dirs, vs...)
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
	}
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil && !st.IsDir() {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", ErrNoBinaries
}

// Require returns the binaries' directory, or skips t (fails it in CI).
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set: %v", err)
		}
		t.Skip(err)
	}
	return bin
}

// Options configure New.
type Options struct {
	// Fsync keeps PostgreSQL's fsync on (benchmarks of durable commits);
	// tests run with it off.
	Fsync bool
}

// New makes and starts a cluster in a new temporary directory, fsync off.
// Stop it with Stop.
func New(bin string) (*Server, error) { return NewWith(bin, Options{}) }

// NewWith is New with options.
func NewWith(bin string, o Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if out, err := s.cmd("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	fsync := "off"
	if o.Fsync {
		fsync = "on"
	}
	conf := "listen_addresses = '127.0.0.1'\nunix_socket_directories = '" + dir + "'\nfsync = " + fsync + "\nsynchronous_commit = on\nmax_connections = 200\nshared_buffers = 64MB\nlog_min_messages = warning\n"
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("postgresql.conf: %w", err)
	}
	if err := s.Start(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(s.bin, name), args...)
	c.Dir = s.dir
	if s.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server (again, on the same port after a Stop).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return nil
	}
	if s.Port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		s.Port = p
	}
	out, err := s.cmd("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "30",
		"-o", "-p "+strconv.Itoa(s.Port), "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
	}
	s.up = true
	return nil
}

// Restart stops the server (mode "fast": sessions are ended, as when an
// operator restarts it, or "immediate": as a crash) and starts it again.
func (s *Server) Restart(mode string) error {
	if err := s.stop(mode); err != nil {
		return err
	}
	return s.Start()
}

func (s *Server) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return nil
	}
	if out, err := s.cmd("pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", "30", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	s.up = false
	return nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() error {
	err := s.stop("fast")
	os.RemoveAll(s.dir)
	return err
}

// URL returns the URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

var dbSeq atomic.Int64

// CreateDB creates a new empty database and returns its URL.
func (s *Server) CreateDB() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return s.URL(name), nil
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// Shared returns the package's shared server, started at the first call;
// a test package calling it stops it with StopShared in TestMain. It skips
// t (or fails it in CI) without the binaries.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = New(bin)
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// DB returns the URL of a new database on the shared server.
func DB(t testing.TB) string {
	t.Helper()
	u, err := Shared(t).CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// StopShared stops the shared server, if started.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}
