package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/crus-go/crus/internal/freeport"
)

// Server is an etcd server process started by a test.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:<port>.
	Endpoint string
	// Version is what the binary said of itself.
	Version string

	cmd  *exec.Cmd
	dir  string
	logs *bytes.Buffer
	done chan struct{}

	mu      sync.Mutex
	stopped bool
}

// Binary returns the path of the etcd binary, or "" if there is none.
func Binary() string {
	p, err := exec.LookPath("etcd")
	if err != nil {
		return ""
	}
	return p
}

// require skips or fails the test when there is no etcd.
func require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin != "" {
		return bin
	}
	const how = "no etcd binary on PATH: install Debian's etcd-server (see .ci/setup.d/30-etcd.sh)"
	if os.Getenv("CI") != "" {
		t.Fatal(how + "; in CI the etcd tests must run")
	}
	t.Skip(how)
	return ""
}

// Start starts a new etcd server for the test and stops it when the test
// ends. Use it for tests that stop or kill the server themselves, or that
// need flags of their own (args, such as "--quota-backend-bytes=1000000");
// others share one with Shared.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := require(t)
	s, err := start(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

var shared struct {
	mu     sync.Mutex
	server *Server
	client *clientv3.Client
	err    error
	prefix int
}

// Shared returns the client of the package's shared etcd server, started
// on first use, and a key prefix of the test's own ("/t<n>/"). The client
// is shared by every test of the package: do not close it. Call Main from
// TestMain to stop the server when the tests are done.
func Shared(t testing.TB) (*clientv3.Client, string) {
	t.Helper()
	bin := require(t)
	shared.mu.Lock()
	if shared.server == nil && shared.err == nil {
		shared.server, shared.err = start(bin)
		if shared.err == nil {
			shared.client, shared.err = shared.server.NewClient()
		}
	}
	c, err := shared.client, shared.err
	shared.prefix++
	prefix := fmt.Sprintf("/t%d/", shared.prefix)
	shared.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return c, prefix
}

// SharedServer returns the package's shared server, started on first use.
func SharedServer(t testing.TB) *Server {
	t.Helper()
	Shared(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.server
}

// Main runs the package's tests, then stops the shared server if they
// started it.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.client != nil {
		shared.client.Close()
	}
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := s.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewClient returns a new client of the server; the caller closes it.
func (s *Server) NewClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

func dataParent() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "crus-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm" // tmpfs: etcd's fsyncs cost nothing
		}
	}
	return os.TempDir()
}

// StartServer starts a new etcd server, outside tests (a measuring
// command); the caller stops it. It fails if there is no etcd binary.
func StartServer(args ...string) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, errors.New("etcdtest: no etcd binary on PATH: install Debian's etcd-server")
	}
	return start(bin, args...)
}

func start(bin string, args ...string) (*Server, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %s --version: %w", bin, err)
	}
	version := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	var errs []error
	for range 3 { // a port taken between choosing and binding: try again
		s, err := startOnce(bin, args)
		if err == nil {
			s.Version = version
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startOnce(bin string, args []string) (*Server, error) {
	ports, err := freeport.Loopback(2)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: choosing ports: %w", err)
	}
	dir, err := os.MkdirTemp(dataParent(), "crus-etcd-")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s := &Server{Endpoint: client, dir: dir, logs: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{
		"--name", "crus-test",
		"--data-dir", dir + "/data",
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "crus-test=" + peer,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	}, args...)...)
	s.cmd.Stdout = &syncWriter{w: s.logs}
	s.cmd.Stderr = s.cmd.Stdout
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("etcdtest: starting %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(15 * time.Second); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("etcdtest: etcd (pid %d) did not become ready: %w\n%s", s.cmd.Process.Pid, err, s.Logs())
	}
	return s, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	c, err := s.NewClient()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return errors.New("the process exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "/ready")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid returns the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns what the server printed.
func (s *Server) Logs() string {
	w := s.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return s.logs.String()
}

// Stop stops the server process (by its pid: SIGTERM, then SIGKILL after
// 10 s), waits for it to exit and removes its data. Stopping twice is a
// no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	defer os.RemoveAll(s.dir)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("etcdtest: etcd (pid %d) ignored SIGTERM and was killed", s.cmd.Process.Pid)
	}
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
