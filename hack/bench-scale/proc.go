package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one manager process, restartable with the same flags. Its
// listeners bind 127.0.0.1:0; it reports the addresses it bound, which
// proc learns from its log (JWKS, probes) and from /proc (metrics, which
// controller-runtime logs only as configured).
type proc struct {
	name string
	bin  string
	dir  string
	args []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	runs    int
	done    chan struct{} // closed when the current run has exited
	waitErr error
	servers map[string]string // "starting server" log lines: name -> addr
	changed chan struct{}     // closed and replaced at every new server line

	jwks, probe, metrics string // base URLs of the current run
}

func newProc(name, bin, dir string, args []string) *proc {
	return &proc{name: name, bin: bin, dir: dir, args: args}
}

func (p *proc) commandLine() string {
	return strings.Join(append([]string{filepath.Base(p.bin)}, p.args...), " ")
}

// start runs the process once more and waits until it is ready: its
// servers bound and /readyz answering 200.
func (p *proc) start(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	p.runs++
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, p.runs))
	p.mu.Unlock()
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = logFile.Close()
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = w, w
	// The managers must not outlive this tool, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		_ = r.Close()
		_ = w.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	_ = w.Close()
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.waitErr = cmd, done, nil
	p.servers, p.changed = map[string]string{}, make(chan struct{})
	p.mu.Unlock()
	go func() {
		p.scanLog(r, logFile)
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.learnAddrs(ctx); err != nil {
		return fmt.Errorf("%s: %w; the end of its log %s:\n%s", p.name, err, logPath, tail(logPath, 10))
	}
	if err := p.waitReady(ctx); err != nil {
		return fmt.Errorf("%s: %w; the end of its log %s:\n%s", p.name, err, logPath, tail(logPath, 10))
	}
	return nil
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// scanLog copies the process's output to its log file and picks up the
// addresses controller-runtime logs when it starts a manager.Server
// ("starting server", name, addr): the JWKS server and the probe server.
func (p *proc) scanLog(r io.ReadCloser, logFile *os.File) {
	defer func() { _ = r.Close(); _ = logFile.Close() }()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = logFile.Write(append(line, '\n'))
		if name, addr, ok := serverLine(line); ok {
			p.mu.Lock()
			p.servers[name] = addr
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}
}

// serverLine parses a JSON log line (or the JSON tail of a console line).
func serverLine(line []byte) (name, addr string, ok bool) {
	i := strings.IndexByte(string(line), '{')
	if i < 0 {
		return "", "", false
	}
	var l struct{ Msg, Name, Addr string }
	if json.Unmarshal(line, &l) != nil && json.Unmarshal(line[i:], &l) != nil {
		return "", "", false
	}
	if l.Addr == "" || l.Name == "" || (l.Msg != "starting server" && !strings.Contains(string(line[:i]), "starting server")) {
		return "", "", false
	}
	return l.Name, l.Addr, true
}

// learnAddrs waits for the JWKS and probe servers' log lines, then finds
// the metrics listener among the process's listening sockets.
func (p *proc) learnAddrs(ctx context.Context) error {
	for {
		p.mu.Lock()
		jwks, probe := p.servers["jwks"], p.servers["health probe"]
		changed, done := p.changed, p.done
		p.mu.Unlock()
		if jwks != "" && probe != "" {
			p.jwks, p.probe = "http://"+jwks, "http://"+probe
			break
		}
		select {
		case <-changed:
		case <-done:
			return fmt.Errorf("exited before its servers started: %w", p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("no \"starting server\" log line for jwks and health probe: %w", ctx.Err())
		}
	}
	for {
		if addr, err := metricsListener(p.pid(), p.jwks, p.probe); err == nil {
			p.metrics = "http://" + addr
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricsListener is the listening socket of pid that serves /metrics.
func metricsListener(pid int, skip ...string) (string, error) {
	addrs, err := listeningAddrs(pid)
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for _, a := range addrs {
		if slices.Contains(skip, "http://"+a) {
			continue
		}
		resp, err := c.Get("http://" + a + "/metrics")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			return a, nil
		}
	}
	return "", fmt.Errorf("none of the listening sockets %v serves /metrics over plain HTTP", addrs)
}

// waitReady polls /readyz until 200 (for the JWKS server: its cache synced
// and every document built).
func (p *proc) waitReady(ctx context.Context) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := c.Get(p.probe + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.doneChan():
			return fmt.Errorf("exited before it was ready: %w", p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("/readyz not 200: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the current run with SIGTERM (SIGKILL after 30 s) and waits.
func (p *proc) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return errors.New(p.name + " did not stop within 30s of SIGTERM: killed")
	}
	// A manager stopped by SIGTERM exits 0; anything else is worth telling.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr != nil {
		return fmt.Errorf("%s after SIGTERM: %w", p.name, p.waitErr)
	}
	return nil
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

func (p *proc) doneChan() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// exitErr is how the last run ended: an *exec.ExitError, or a plain
// error for a clean exit (which for a manager is early too).
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr == nil {
		return errors.New("exit status 0")
	}
	return p.waitErr
}

// rss is the current run's anonymous resident memory in bytes (0 when
// unreadable): see anonBytes.
func (p *proc) rss() int64 {
	n, _ := anonBytes(p.pid())
	return n
}

// vmRSS is the current run's whole resident set, code pages included.
func (p *proc) vmRSS() int64 {
	n, _ := rssBytes(p.pid())
	return n
}

// knownFlags lists the flags a manager binary accepts, from its -help, so
// the tool passes newer flags only to binaries that know them.
func knownFlags(bin string) (map[string]bool, error) {
	out, _ := exec.Command(bin, "--help").CombinedOutput() // flag's help exits 2
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	if !flags["kubeconfig"] || !flags["jwks-bind-address"] {
		return nil, fmt.Errorf("%s --help does not list --kubeconfig and --jwks-bind-address:\n%s", bin, out)
	}
	return flags, nil
}
