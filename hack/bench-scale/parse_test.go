package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The addresses come from controller-runtime's "starting server" line, in
// the JSON encoder the manager uses by default and in the console one.
func TestServerLine(t *testing.T) {
	cases := []struct {
		line       string
		name, addr string
		ok         bool
	}{
		{`{"level":"info","ts":"2026-12-01T23:52:00Z","msg":"starting server","name":"jwks","addr":"127.0.0.1:35605"}`, "jwks", "127.0.0.1:35605", true},
		{`{"level":"info","msg":"starting server","name":"health probe","addr":"127.0.0.1:45775"}`, "health probe", "127.0.0.1:45775", true},
		{`2026-12-01T23:52:00Z	INFO	starting server	{"name": "jwks", "addr": "[::]:8443"}`, "jwks", "[::]:8443", true},
		{`{"level":"info","msg":"Serving metrics server","bindAddress":"127.0.0.1:0","secure":false}`, "", "", false},
		{`{"level":"info","msg":"shutting down server","name":"jwks","addr":"127.0.0.1:35605"}`, "", "", false},
		{`not json at all`, "", "", false},
	}
	for _, tc := range cases {
		name, addr, ok := serverLine([]byte(tc.line))
		if name != tc.name || addr != tc.addr || ok != tc.ok {
			t.Errorf("%s\n got %q %q %v, want %q %q %v", tc.line, name, addr, ok, tc.name, tc.addr, tc.ok)
		}
	}
}

func TestParseProcAddr(t *testing.T) {
	cases := map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:20FB":                         "0.0.0.0:8443",
		"00000000000000000000000001000000:0050": "[::1]:80",
	}
	for in, want := range cases {
		if got, err := parseProcAddr(in); err != nil || got != want {
			t.Errorf("parseProcAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "01007F:1F90", "zz00007F:1F90", "0100007F:fffff"} {
		if got, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q) = %q, want an error", bad, got)
		}
	}
}

// The kernel lists this process's own open listener; a closed one is gone.
func TestListeningAddrs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	addrs, err := listeningAddrs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs, ln.Addr().String()) {
		t.Fatalf("listening %v, want %s among them", addrs, ln.Addr())
	}
}

func TestCPUAndRSSOfSelf(t *testing.T) {
	if rss, err := rssBytes(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("rss = %d, %v; want at least 1 MiB", rss, err)
	}
	before, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick counter has moved.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if now, _ := cpuSeconds(os.Getpid()); now > before {
			return
		}
	}
	t.Fatal("cpuSeconds never grew while this test burned CPU")
}

func TestScrapeAndSum(t *testing.T) {
	body := `# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="tenantidentity",result="error"} 2
controller_runtime_reconcile_total{controller="tenantidentity",result="success"} 1028
controller_runtime_reconcile_total{controller="other",result="success"} 7
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 1030
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 4
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="POST"} 1
workqueue_depth{controller="tenantidentity",name="tenantidentity"} 3
odd_label{path="a\"b}c"} 5
process_cpu_seconds_total 12.5
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		pairs []string
		want  float64
	}{
		{"controller_runtime_reconcile_total", []string{"controller", controllerName}, 1030},
		{"controller_runtime_reconcile_total", []string{"controller", controllerName, "result", "error"}, 2},
		{"rest_client_requests_total", []string{"method", "POST"}, 5},
		{"odd_label", []string{"path", `a\"b}c`}, 5},
		{"process_cpu_seconds_total", nil, 12.5},
		{"missing", nil, 0},
	} {
		if got := m.sum(tc.name, tc.pairs...); got != tc.want {
			t.Errorf("sum(%s %v) = %v, want %v", tc.name, tc.pairs, got, tc.want)
		}
	}
	s := m.snapshot("x")
	if s.Reconciles != 1030 || s.ReconcileErrors != 2 || s.QueueDepth != 3 || s.writes() != 1035 {
		t.Errorf("snapshot %+v (writes %d)", s, s.writes())
	}
}

// Only the full manager's writes since the restart count.
func TestAuditWrites(t *testing.T) {
	log := `{"verb":"patch","user":{"username":"signet-manager"},"requestReceivedTimestamp":"2026-12-01T10:00:00.000001Z","objectRef":{"resource":"tenantidentities","subresource":"status"}}
{"verb":"patch","user":{"username":"signet-manager"},"requestReceivedTimestamp":"2026-12-01T10:00:05.000000Z","objectRef":{"resource":"tenantidentities","subresource":"status"}}
{"verb":"create","user":{"username":"signet-manager"},"requestReceivedTimestamp":"2026-12-01T10:00:06.000000Z","objectRef":{"resource":"events"}}
{"verb":"create","user":{"username":"bench-admin"},"requestReceivedTimestamp":"2026-12-01T10:00:06.000000Z","objectRef":{"resource":"tenantidentities"}}
{"verb":"update","user":{"username":"signet-manager"},"requestReceivedTimestamp":"2026-12-01T09:59:59.999999Z","objectRef":{"resource":"configmaps"}}
`
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := auditWrites(path, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"patch tenantidentities/status": 2, "create events": 1}
	if len(got) != len(want) || got["patch tenantidentities/status"] != 2 || got["create events"] != 1 {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := (restartResult{AuditWrites: got}).resourceWrites(); n != 2 {
		t.Errorf("resource writes %d, want 2 (events excluded)", n)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var l latencies
	for i := 1; i <= 30; i++ {
		l.add(sample{Manager: time.Duration(i) * time.Millisecond, Replica: time.Duration(31-i) * time.Millisecond})
	}
	if l.ManagerP50 != dur(15*time.Millisecond) || l.ManagerP99 != dur(30*time.Millisecond) || l.ReplicaP50 != dur(15*time.Millisecond) {
		t.Errorf("p50 %s p99 %s replica p50 %s; want 15 ms, 30 ms, 15 ms", l.ManagerP50, l.ManagerP99, l.ReplicaP50)
	}
}

func TestFlagsRefuseNonsense(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-n", "10", "-namespaces", "11"}, {"-samples", "0"}, {"extra"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	c, err := parseFlags([]string{"-manager-arg=--kube-api-qps=200", "-manager-arg", "--max-concurrent-reconciles=4"})
	if err != nil || !slices.Equal(c.managerArgs, []string{"--kube-api-qps=200", "--max-concurrent-reconciles=4"}) || c.n != 1000 {
		t.Errorf("got %+v, %v", c, err)
	}
}
