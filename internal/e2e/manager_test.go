package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/signet-dev/signet/internal/devnet"
)

// managerProc is one manager process, restartable with the same flags.
// Each run logs to a file of its own. Every listener binds 127.0.0.1:0 and
// the run reports the address it bound (devnet.Addrs); the JWKS server is
// reached through front, a relay of the suite's own whose address (a
// public base URL) stays the same across restarts.
type managerProc struct {
	name  string
	bin   string
	dir   string
	args  []string
	front *devnet.Relay

	mu      sync.Mutex
	cmd     *exec.Cmd
	addrs   *devnet.Addrs // of the current run
	done    chan struct{} // closed when the current run exited
	waitErr error
	logFile []string
}

// newManagerProc prepares a manager whose listeners bind ports of their
// choosing, its JWKS server behind a relay the suite holds (jwksAddr).
func newManagerProc(name, bin, dir string, extra ...string) (*managerProc, error) {
	front, err := devnet.NewRelay("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--jwks-bind-address", "127.0.0.1:0",
		"--metrics-bind-address", "127.0.0.1:0",
		"--health-probe-bind-address", "127.0.0.1:0",
	}, extra...)
	return &managerProc{name: name, bin: bin, dir: dir, args: args, front: front}, nil
}

// jwksAddr is where the suite reaches this manager's JWKS server, the
// same address for every run.
func (m *managerProc) jwksAddr() string { return m.front.Addr() }

// start runs the manager once more with the same flags.
func (m *managerProc) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	path := filepath.Join(m.dir, fmt.Sprintf("%s-%d.log", m.name, len(m.logFile)+1))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	addrs := &devnet.Addrs{OnReport: func(name, addr string) {
		if name == "jwks" {
			m.front.SetBackend(addr)
		}
	}}
	out := addrs.Tee(f)
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.cmd, m.addrs, m.done, m.waitErr = cmd, addrs, make(chan struct{}), nil
	m.logFile = append(m.logFile, path)
	done := m.done
	go func() {
		err := cmd.Wait()
		// Its port is free now: nothing may reach whoever takes it next.
		m.front.SetBackend("")
		_ = f.Close()
		m.mu.Lock()
		m.waitErr = err
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

// addr waits for the current run to report the address of its listener
// name ("jwks", "metrics", "health probe").
func (m *managerProc) addr(ctx context.Context, name string) (string, error) {
	m.mu.Lock()
	addrs, done := m.addrs, m.done
	m.mu.Unlock()
	addr, err := addrs.Wait(ctx, name, done)
	if err != nil {
		return "", fmt.Errorf("%s: %w (exit: %s); log:\n%s", m.name, err, errText(m.exitErr()), m.tail(40))
	}
	return addr, nil
}

// waitReady polls /readyz (the JWKS server's cache has synced) until 200.
func (m *managerProc) waitReady(ctx context.Context) error {
	probe, err := m.addr(ctx, "health probe")
	if err != nil {
		return err
	}
	if !slices.Contains(m.args, "--jwks-server=false") {
		// Its relay has a backend once it has reported.
		if _, err := m.addr(ctx, "jwks"); err != nil {
			return err
		}
	}
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get("http://" + probe + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (%w); log:\n%s", m.name, m.exitErr(), m.tail(40))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; log:\n%s", m.name, ctx.Err(), m.tail(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// close stops the manager and its relay, for a manager that is not
// started again.
func (m *managerProc) close() {
	m.stop()
	_ = m.front.Close()
}

// kill sends SIGKILL and waits for the process to be gone.
func (m *managerProc) kill() error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not die within 30s of SIGKILL", m.name)
	}
}

// stop ends the current run gracefully (SIGTERM, then SIGKILL after 20 s).
func (m *managerProc) stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// running reports whether the current run has not exited.
func (m *managerProc) running() bool {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (m *managerProc) exitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waitErr
}

func (m *managerProc) logs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.logFile...)
}

// tail is the last n lines of the current run's log, for failure messages.
func (m *managerProc) tail(n int) string {
	logs := m.logs()
	if len(logs) == 0 {
		return ""
	}
	b, err := os.ReadFile(logs[len(logs)-1])
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
