package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRun runs what `make run` runs (hack/run-local) the way the
// Makefile does, with no cluster configured: it must bring up an embedded
// control plane, print the sample's JWKS URL, serve it, and on SIGINT stop
// and leave no kube-apiserver, etcd or manager behind.
func TestMakeRun(t *testing.T) {
	started := time.Now()
	bin := filepath.Join(t.TempDir(), "run-local")
	if err := goBuild(s.root, bin, "./hack/run-local"); err != nil {
		t.Fatal(err)
	}
	runDir, home := t.TempDir(), t.TempDir()
	jwksAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	probeAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Dir = s.root
	cmd.Env = runLocalEnv(t, map[string]string{
		"HOME":                home, // no ~/.kube/config
		"SIGNET_RUN_DIR":      runDir,
		"SIGNET_JWKS_ADDR":    jwksAddr,
		"SIGNET_METRICS_ADDR": metricsAddr,
		"SIGNET_PROBE_ADDR":   probeAddr,
		"SIGNET_TOKEN_ADDR":   "127.0.0.1:0", // any free port: this test does not call it
		"KUBEBUILDER_ASSETS":  os.Getenv("KUBEBUILDER_ASSETS"),
	})
	logPath := filepath.Join(s.dir, "run-local.log")
	// Appending: run-local and what it starts write stderr to it directly.
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	// A pipe of our own: the manager run-local starts inherits it, and the
	// exit of run-local must not wait for the pipe to close.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdout.Close() }()
	cmd.Stdout, cmd.Stderr = stdoutW, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = stdoutW.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(log, line)
			if _, url, ok := strings.Cut(line, "JWKS URL:"); ok {
				select {
				case urls <- strings.TrimSpace(url):
				default:
				}
			}
		}
	}()
	// Whatever happens, nothing it started outlives the test.
	var children []proc
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for _, p := range children {
			if p.alive() {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})
	dump := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}

	var url string
	select {
	case url = <-urls:
	case err := <-exited:
		t.Fatalf("run-local exited before printing the JWKS URL: %v\n%s", err, dump())
	case <-time.After(3 * time.Minute):
		t.Fatalf("run-local printed no JWKS URL within 3 minutes\n%s", dump())
	}
	t.Logf("run-local printed %s after %s", url, time.Since(started).Round(time.Millisecond))
	if want := "http://" + jwksAddr + "/v2/org/" + sampleOrg + "/nico/site/" + sampleSite + "/.well-known/jwks.json"; url != want {
		t.Errorf("JWKS URL %q, want %q", url, want)
	}
	resp := fetch(context.Background(), &http.Client{Timeout: 5 * time.Second}, url)
	if resp.err != nil || resp.status != http.StatusOK {
		t.Errorf("GET %s: %d %v %s", url, resp.status, resp.err, resp.body)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(resp.body, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Alg != "ES256" || set.Keys[0].Kty != "EC" {
		t.Errorf("GET %s: want exactly one ES256 key, got %s (%v)", url, resp.body, err)
	}
	if _, err := os.Stat(filepath.Join(runDir, "kubeconfig")); err != nil {
		t.Errorf("no kubeconfig in SIGNET_RUN_DIR: %v", err)
	}

	// What it started: the manager, kube-apiserver and etcd (any depth).
	children = descendants(cmd.Process.Pid)
	names := map[string]bool{}
	for _, p := range children {
		names[p.comm] = true
	}
	for _, want := range []string{"manager", "kube-apiserver", "etcd"} {
		if !names[want] {
			t.Errorf("no %s among run-local's processes %v", want, children)
		}
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("run-local exited with %v after SIGINT\n%s", err, dump())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("run-local still running 90s after SIGINT\n%s", dump())
	}
	if err := poll(10*time.Second, 100*time.Millisecond, "run-local's processes gone", func() (bool, error) {
		var left []string
		for _, p := range children {
			if p.alive() {
				left = append(left, p.String())
			}
		}
		return len(left) == 0, fmt.Errorf("still running: %v", left)
	}); err != nil {
		t.Error(err)
	}
	if r := fetch(context.Background(), &http.Client{Timeout: 2 * time.Second}, url); r.err == nil {
		t.Errorf("%s still answers %d after run-local exited", url, r.status)
	}
	t.Logf("make run: up, served, stopped and cleaned up %d processes (%v) in %s",
		len(children), children, time.Since(started).Round(time.Millisecond))
}

// runLocalEnv is the test's environment without KUBECONFIG, with set
// applied, and with the Go caches pinned (HOME moves, the build cache must
// not).
func runLocalEnv(t *testing.T, set map[string]string) []string {
	t.Helper()
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatal(err)
		}
		set[v] = strings.TrimSpace(string(out))
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := set[k]; override || k == "KUBECONFIG" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// proc is a process seen in /proc, identified by pid and start time (so a
// reused pid is not mistaken for it).
type proc struct {
	pid   int
	start string
	comm  string
}

func (p proc) String() string { return fmt.Sprintf("%s[%d]", p.comm, p.pid) }

// alive reports whether the process still exists (a zombie counts as gone).
func (p proc) alive() bool {
	st, ok := readStat(p.pid)
	return ok && st.start == p.start && st.state != "Z"
}

type stat struct {
	ppid         int
	state, start string
	comm         string
}

func readStat(pid int) (stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	// pid (comm) state ppid ... field 22 is starttime.
	text := string(b)
	open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || closing < open {
		return stat{}, false
	}
	fields := strings.Fields(text[closing+1:])
	if len(fields) < 20 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return stat{ppid: ppid, state: fields[0], start: fields[19], comm: text[open+1 : closing]}, true
}

// descendants lists the processes below pid, at any depth.
func descendants(root int) []proc {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	stats := map[int]stat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			children[st.ppid] = append(children[st.ppid], pid)
			stats[pid] = st
		}
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, proc{pid: c, start: stats[c].start, comm: stats[c].comm})
			queue = append(queue, c)
		}
	}
	return out
}
