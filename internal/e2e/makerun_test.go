package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
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

	cmd := exec.Command(bin)
	cmd.Dir = s.root
	// Port 0 everywhere: run-local and its manager bind what is free and
	// print what they got; nothing is picked here and released.
	cmd.Env = runLocalEnv(t, map[string]string{
		"HOME":                home, // no ~/.kube/config
		"SIGNET_RUN_DIR":      runDir,
		"SIGNET_JWKS_ADDR":    "127.0.0.1:0",
		"SIGNET_METRICS_ADDR": "127.0.0.1:0",
		"SIGNET_PROBE_ADDR":   "127.0.0.1:0",
		"SIGNET_TOKEN_ADDR":   "127.0.0.1:0",
		"KUBEBUILDER_ASSETS":  os.Getenv("KUBEBUILDER_ASSETS"),
	})
	logPath := filepath.Join(s.dir, "run-local.log")
	// Appending: run-local and what it starts write stderr to it directly.
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	// A pipe of our own, read line by line for what run-local prints; the
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
	printed := make(chan map[string]string, 1)
	go func() {
		got := map[string]string{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(log, line)
			for _, key := range []string{"metrics:", "JWKS URL:", "token API:"} {
				if _, v, ok := strings.Cut(line, key); ok && len(strings.Fields(v)) > 0 {
					got[key] = strings.Fields(v)[0]
				}
			}
			if len(got) == 3 {
				select {
				case printed <- got:
				default:
				}
				got = map[string]string{}
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

	var got map[string]string
	select {
	case got = <-printed:
	case err := <-exited:
		t.Fatalf("run-local exited before printing the JWKS URL: %v\n%s", err, dump())
	case <-time.After(3 * time.Minute):
		t.Fatalf("run-local printed no JWKS URL within 3 minutes\n%s", dump())
	}
	url := got["JWKS URL:"]
	t.Logf("run-local printed %s after %s", url, time.Since(started).Round(time.Millisecond))
	base, ok := strings.CutSuffix(url, "/v2/org/"+sampleOrg+"/nico/site/"+sampleSite+"/.well-known/jwks.json")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Errorf("JWKS URL %q, want the sample's at http://127.0.0.1:<the port bound>", url)
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
	// The issuer names the address printed: the public base URL was known
	// before the manager bound its own port.
	disc := fetch(context.Background(), &http.Client{Timeout: 5 * time.Second}, strings.TrimSuffix(url, pathJWKS)+pathDiscovery)
	var d struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(disc.body, &d); err != nil || d.JWKSURI != url || !strings.HasPrefix(d.Issuer, base+"/") {
		t.Errorf("discovery %d %s (%v): want jwks_uri %s", disc.status, disc.body, err, url)
	}
	// Metrics are secure under make run too: HTTPS, and no scrape without a token.
	metrics := got["metrics:"]
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // its self-signed certificate
	}}
	if !strings.HasPrefix(metrics, "https://127.0.0.1:") {
		t.Errorf("metrics printed as %q, want https://127.0.0.1:<port>/metrics", metrics)
	} else if r := fetch(context.Background(), insecure, metrics); r.err != nil || r.status != http.StatusUnauthorized {
		t.Errorf("GET %s without a token: %d %v, want 401", metrics, r.status, r.err)
	}
	if _, err := os.Stat(filepath.Join(runDir, "kubeconfig")); err != nil {
		t.Errorf("no kubeconfig in SIGNET_RUN_DIR: %v", err)
	} else {
		checkMakeRunToken(t, got["token API:"], filepath.Join(runDir, "kubeconfig"), set.Keys)
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

// checkMakeRunToken does what README says for make run: a token of the
// sample's workload (audience signet) from the printed token API, signed
// with the key the JWKS URL serves.
func checkMakeRunToken(t *testing.T, url, kubeconfig string, served []struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}) {
	t.Helper()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/v2/org/"+sampleOrg+"/nico/site/"+sampleSite+"/token") {
		t.Errorf("token API printed as %q, want http://127.0.0.1:<port>/v2/org/%s/nico/site/%s/token", url, sampleOrg, sampleSite)
		return
	}
	out, err := s.kubectlAs(kubeconfig, nil, "-n", sampleNamespace, "create", "token", "acme-workload", "--audience", "signet")
	if err != nil {
		t.Error(err)
		return
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	var res struct{ Token, KeyID string }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK || res.Token == "" {
		t.Errorf("POST %s as the sample workload: %d (%v)", url, resp.StatusCode, err)
		return
	}
	if len(served) != 1 || res.KeyID != served[0].Kid {
		t.Errorf("token of key %s; the JWKS URL serves %v", res.KeyID, served)
	}
}
