package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// managerProc is one manager process, restartable with the same flags.
// Each run logs to a file of its own.
type managerProc struct {
	name     string
	bin      string
	dir      string
	args     []string
	probeURL string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run exited
	waitErr error
	logFile []string
}

// newManagerProc prepares a manager serving JWKS on jwksAddr, with its own
// free metrics and probe ports.
func newManagerProc(name, bin, dir, jwksAddr string, extra ...string) (*managerProc, error) {
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probe, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--jwks-bind-address", jwksAddr,
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", probe,
	}, extra...)
	return &managerProc{name: name, bin: bin, dir: dir, args: args, probeURL: "http://" + probe + "/readyz"}, nil
}

// start runs the manager once more with the same flags.
func (m *managerProc) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	path := filepath.Join(m.dir, fmt.Sprintf("%s-%d.log", m.name, len(m.logFile)+1))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.cmd, m.done, m.waitErr = cmd, make(chan struct{}), nil
	m.logFile = append(m.logFile, path)
	done := m.done
	go func() {
		err := cmd.Wait()
		_ = f.Close()
		m.mu.Lock()
		m.waitErr = err
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady polls /readyz (the JWKS server's cache has synced) until 200.
func (m *managerProc) waitReady(ctx context.Context) error {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := probe.Get(m.probeURL)
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
