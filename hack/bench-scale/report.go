package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// results is everything measured; it is written as JSON and printed as
// markdown.
type results struct {
	Machine        machine `json:"machine"`
	N              int     `json:"n"`
	Namespaces     int     `json:"namespaces"`
	Samples        int     `json:"samples"`
	ManagerCommand string  `json:"managerCommand"`
	ReplicaCommand string  `json:"replicaCommand"`
	Duration       dur     `json:"durationSeconds"`

	Create struct {
		AllCreated       dur     `json:"allCreatedSeconds"`
		AllReady         dur     `json:"allReadySeconds"`
		ReadyPerSecond   float64 `json:"readyPerSecond"`
		AllServedManager dur     `json:"allServedManagerSeconds"`
		AllServedReplica dur     `json:"allServedReplicaSeconds"`
	} `json:"create"`
	Apply   latencies     `json:"applyToServed"`
	Rotate  latencies     `json:"rotationTriggerToServed"`
	Restart restartResult `json:"restart"`
	Memory  memory        `json:"memory"`
	CPU     cpuTable      `json:"cpuSeconds"`
	// Snapshots of the full manager's metrics after each phase.
	Snapshots []snapshot `json:"managerMetrics"`
}

type restartResult struct {
	Tenants             int            `json:"tenants"`
	Stop                dur            `json:"stopSeconds"`
	StartToReady        dur            `json:"startToReadySeconds"`
	StartToReverified   dur            `json:"startToReverifiedSeconds"`
	SigtermToReverified dur            `json:"sigtermToReverifiedSeconds"`
	Reconciles          int            `json:"reconciles"`
	ReconcileErrors     int            `json:"reconcileErrors"`
	ClientWrites        map[string]int `json:"clientWritesByMethod"` // rest_client_requests_total: events included
	AuditWrites         map[string]int `json:"auditWritesByResource"`
	Replica             unserved       `json:"replicaDuringRestart"`
	OldManagerCPU       float64        `json:"oldManagerCPUSeconds"`
	ManagerCPU          float64        `json:"managerCPUSecondsUntilReverified"`
}

// resourceWrites are the audited writes other than Events and Leases:
// writes to the tenants' own objects and status.
func (r restartResult) resourceWrites() int {
	n := 0
	for k, v := range r.AuditWrites {
		if !strings.HasSuffix(k, " events") && !strings.HasSuffix(k, " leases") {
			n += v
		}
	}
	return n
}

type memory struct {
	ManagerRSS0  int64 `json:"managerRSSAtZeroBytes"`
	ReplicaRSS0  int64 `json:"replicaRSSAtZeroBytes"`
	ManagerRSSN  int64 `json:"managerRSSAllReadyBytes"`
	ReplicaRSSN  int64 `json:"replicaRSSAllReadyBytes"`
	RestartedRSS int64 `json:"restartedManagerRSSBytes"`
	// The whole resident sets (VmRSS, code pages included) with all Ready.
	ManagerVmRSSN int64 `json:"managerVmRSSAllReadyBytes"`
	ReplicaVmRSSN int64 `json:"replicaVmRSSAllReadyBytes"`
}

func perTenant(rss, base int64, n int) float64 { return float64(rss-base) / float64(n) }

// latencies collects samples and their percentiles (nearest rank: with
// 30 samples, p99 is the largest).
type latencies struct {
	samples    []sample
	Count      int `json:"count"`
	Timeouts   int `json:"timeouts"`
	ManagerP50 dur `json:"managerP50Seconds"`
	ManagerP99 dur `json:"managerP99Seconds"`
	ManagerMax dur `json:"managerMaxSeconds"`
	ReplicaP50 dur `json:"replicaP50Seconds"`
	ReplicaP99 dur `json:"replicaP99Seconds"`
	// AcceptedP50: the write itself (kubectl, or the patch request).
	AcceptedP50 dur `json:"acceptedP50Seconds"`
	// AfterAcceptedP50/P99: served by the manager, from the write's return.
	AfterAcceptedP50 dur `json:"afterAcceptedP50Seconds"`
	AfterAcceptedP99 dur `json:"afterAcceptedP99Seconds"`
}

func (l *latencies) add(s sample) {
	l.samples = append(l.samples, s)
	l.Count = len(l.samples)
	if s.TimedOut {
		l.Timeouts++
	}
	pick := func(f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(l.samples))
		for i, s := range l.samples {
			out[i] = f(s)
		}
		slices.Sort(out)
		return out
	}
	m := pick(func(s sample) time.Duration { return s.Manager })
	r := pick(func(s sample) time.Duration { return s.Replica })
	a := pick(func(s sample) time.Duration { return s.Accepted })
	after := pick(func(s sample) time.Duration { return max(s.Manager-s.Accepted, 0) })
	l.ManagerP50, l.ManagerP99, l.ManagerMax = pct(m, 50), pct(m, 99), dur(m[len(m)-1])
	l.ReplicaP50, l.ReplicaP99, l.AcceptedP50 = pct(r, 50), pct(r, 99), pct(a, 50)
	l.AfterAcceptedP50, l.AfterAcceptedP99 = pct(after, 50), pct(after, 99)
}

func pct(sorted []time.Duration, p float64) dur {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return dur(sorted[max(i, 0)])
}

func (l latencies) summary() string {
	s := fmt.Sprintf("manager p50 %s p99 %s; replica p50 %s p99 %s; the write itself p50 %s; after it returned p50 %s p99 %s",
		l.ManagerP50, l.ManagerP99, l.ReplicaP50, l.ReplicaP99, l.AcceptedP50, l.AfterAcceptedP50, l.AfterAcceptedP99)
	if l.Timeouts > 0 {
		s += fmt.Sprintf("; %d of %d timed out", l.Timeouts, l.Count)
	}
	return s
}

// cpuTable is CPU seconds per phase and process.
type cpuTable struct {
	Phases []cpuPhase `json:"phases"`
	last   map[string]cpuSample
}

type cpuPhase struct {
	Name    string             `json:"name"`
	Seconds map[string]float64 `json:"seconds"`
}

type cpuSample struct {
	PID     int
	Seconds float64
}

var cpuProcs = []string{"manager", "replica", "kube-apiserver", "etcd", "bench-scale (clients)"}

// add records the CPU used since the previous sample; a process with a
// new pid (the restarted manager) counts from its start.
func (c *cpuTable) add(phase string, now map[string]cpuSample) {
	p := cpuPhase{Name: phase, Seconds: map[string]float64{}}
	for name, s := range now {
		if prev, ok := c.last[name]; ok && prev.PID == s.PID {
			p.Seconds[name] = s.Seconds - prev.Seconds
		} else {
			p.Seconds[name] = s.Seconds
		}
	}
	c.Phases, c.last = append(c.Phases, p), now
}

// machine describes where it ran; the load average says how busy the
// machine was with other work (this tool's own load adds to it).
type machine struct {
	CPUs      int       `json:"cpus"`
	CPUModel  string    `json:"cpuModel"`
	Kernel    string    `json:"kernel"`
	GoVersion string    `json:"goVersion"`
	Started   time.Time `json:"started"`
	LoadStart float64   `json:"loadAvg1Start"`
	LoadEnd   float64   `json:"loadAvg1End"`
	LoadMax   float64   `json:"loadAvg1Max"`
}

func machineAtStart() machine {
	m := machine{CPUs: runtime.NumCPU(), Started: time.Now(), LoadStart: loadAvg()}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (m *machine) finish(maxLoad float64) {
	m.LoadEnd, m.LoadMax = loadAvg(), max(maxLoad, m.LoadStart)
}

// loadSampler records the highest 1-minute load average seen.
type loadSampler struct {
	mu   sync.Mutex
	max  float64
	quit chan struct{}
}

func startLoadSampler(ctx context.Context) *loadSampler {
	s := &loadSampler{quit: make(chan struct{})}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			s.mu.Lock()
			s.max = max(s.max, loadAvg())
			s.mu.Unlock()
			select {
			case <-t.C:
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

func (s *loadSampler) stop() float64 {
	close(s.quit)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// dur is a duration printed for people and written to JSON as seconds.
type dur time.Duration

func (d dur) String() string {
	t := time.Duration(d)
	switch {
	case t < time.Second:
		return fmt.Sprintf("%.1f ms", float64(t)/float64(time.Millisecond))
	case t < 2*time.Minute:
		return fmt.Sprintf("%.2f s", t.Seconds())
	default:
		return fmt.Sprintf("%dm %02ds", int(t.Minutes()), int(t.Seconds())%60)
	}
}

func (d dur) MarshalJSON() ([]byte, error) {
	return json.Marshal(math.Round(time.Duration(d).Seconds()*1e6) / 1e6)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// write stores <out>.json and <out>.md.
func (r *results) write(out string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".json", append(data, '\n'), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	r.print(&md)
	return os.WriteFile(out+".md", md.Bytes(), 0o644)
}

// print writes the summary as markdown: issue 9's targets beside the
// measured values, then the details.
func (r *results) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	m := r.Machine
	p("## bench-scale: N=%d TenantIdentities (ES256, default policies) in %d namespace(s)", r.N, r.Namespaces)
	p("")
	p("Machine: %d CPUs (%s), Linux %s, %s. Load average (1 min): %.2f at start, %.2f at end, %.2f at most (this run included). Started %s, took %s.",
		m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.LoadStart, m.LoadEnd, m.LoadMax, m.Started.Format(time.RFC3339), r.Duration)
	p("")
	p("| figure | target (issue 9) | measured | met |")
	p("|---|---|---|---|")
	readyTarget, readyText := 20*time.Second, "1,000 within 20 s"
	if r.N > 1000 {
		readyTarget, readyText = 4*time.Minute, "10,000 within 4 min"
	}
	p("| %d created at once -> all Ready | %s | %s (%.1f tenants/s) | %s |", r.N, readyText, r.Create.AllReady, r.Create.ReadyPerSecond, yes(time.Duration(r.Create.AllReady) <= readyTarget))
	lat := func(what string, l latencies) {
		for _, s := range []struct {
			server   string
			p50, p99 dur
		}{{"manager", l.ManagerP50, l.ManagerP99}, {"replica", l.ReplicaP50, l.ReplicaP99}} {
			to := ""
			if l.Timeouts > 0 {
				to = fmt.Sprintf(", %d of %d timed out", l.Timeouts, l.Count)
			}
			p("| %s, served by the %s | p50 < 150 ms, p99 < 1 s (10,000 present) | p50 %s, p99 %s (%d samples%s) | %s |", what, s.server, s.p50, s.p99, l.Count, to,
				yes(time.Duration(s.p50) < 150*time.Millisecond && time.Duration(s.p99) < time.Second && l.Timeouts == 0))
		}
	}
	lat("`kubectl apply` of one more -> its jwks.json (from kubectl's start)", r.Apply)
	lat("`rotationTrigger` merge patch -> the Next key (from the request's start)", r.Rotate)
	rs := r.Restart
	p("| restart of the full manager -> every tenant re-verified | within 2 min (10,000) | %s from start (%s from SIGTERM), %d reconciles, %d errors | %s |",
		rs.StartToReverified, rs.SigtermToReverified, rs.Reconciles, rs.ReconcileErrors, yes(time.Duration(rs.StartToReverified) <= 2*time.Minute))
	p("| restart: writes for tenants already right | 0 | %d (audit log, events and leases excluded: %s); client-go: %s | %s |",
		rs.resourceWrites(), mapText(rs.AuditWrites), mapText(rs.ClientWrites), yes(rs.resourceWrites() == 0))
	p("| restart: documents unserved on the replica | 0 | %d non-200 of %d requests (%d tenants, %d full passes) | %s |",
		rs.Replica.Non200, rs.Replica.Requests, rs.Replica.Tenants, rs.Replica.Passes, yes(rs.Replica.Non200 == 0 && rs.Replica.Passes > 0))
	mem := r.Memory
	mgr, rep := perTenant(mem.ManagerRSSN, mem.ManagerRSS0, r.N), perTenant(mem.ReplicaRSSN, mem.ReplicaRSS0, r.N)
	p("| full manager RSS per tenant (anonymous) | < 20 KiB | %.1f KiB (%s at 0, %s with %d Ready; VmRSS %s) | %s |", mgr/1024, mib(mem.ManagerRSS0), mib(mem.ManagerRSSN), r.N, mib(mem.ManagerVmRSSN), yes(mgr < 20*1024))
	p("| `--controllers=false` replica RSS per tenant (anonymous) | < 8 KiB | %.1f KiB (%s at 0, %s with %d Ready; VmRSS %s) | %s |", rep/1024, mib(mem.ReplicaRSS0), mib(mem.ReplicaRSSN), r.N, mib(mem.ReplicaVmRSSN), yes(rep < 8*1024))
	p("| serving req/s vs a static handler at 10,000 tenants | >= 0.9, p99 flat 1 -> 10,000 | not measured here: `go run ./hack/loadtest -tenants 1,10000` | - |")
	p("")
	p("Details:")
	p("")
	p("- Create: all %d accepted by the apiserver after %s; all Ready after %s; all served by the manager after %s, by the replica after %s.",
		r.N, r.Create.AllCreated, r.Create.AllReady, r.Create.AllServedManager, r.Create.AllServedReplica)
	if len(r.Snapshots) >= 2 {
		s0, s1 := r.Snapshots[0], r.Snapshots[1]
		p("- Create: the manager reconciled %.2f times and wrote %.2f times (POST/PUT/PATCH/DELETE, events included) per tenant until all were Ready and served.",
			float64(s1.Reconciles-s0.Reconciles)/float64(r.N), float64(s1.writes()-s0.writes())/float64(r.N))
	}
	p("- Latencies: both servers polled every %s. `kubectl apply` itself took p50 %s; served by the manager p50 %s, p99 %s after kubectl returned; max %s.",
		pollEvery, r.Apply.AcceptedP50, r.Apply.AfterAcceptedP50, r.Apply.AfterAcceptedP99, r.Apply.ManagerMax)
	p("  The trigger patch itself took p50 %s; the Next key served by the manager p50 %s, p99 %s after it returned; max %s.",
		r.Rotate.AcceptedP50, r.Rotate.AfterAcceptedP50, r.Rotate.AfterAcceptedP99, r.Rotate.ManagerMax)
	p("- Restart with %d tenants: stopped %s after SIGTERM; ready (/readyz) %s after start; CPU %.1f s until re-verified; RSS after it %s (%.1f KiB per tenant).",
		rs.Tenants, rs.Stop, rs.StartToReady, rs.ManagerCPU, mib(mem.RestartedRSS), perTenant(mem.RestartedRSS, mem.ManagerRSS0, rs.Tenants)/1024)
	p("- Manager: `%s`", r.ManagerCommand)
	p("- Replica: `%s`", r.ReplicaCommand)
	p("")
	p("The full manager's own metrics (controller-runtime and client-go; the restarted manager counts from its start):")
	p("")
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	p("| after | reconciles | errors | mean reconcile | queue depth | queue adds | %s |", strings.Join(methods, " | "))
	p("|---|---:|---:|---:|---:|---:|%s", strings.Repeat("---:|", len(methods)))
	for _, s := range r.Snapshots {
		cells := make([]string, len(methods))
		for i, m := range methods {
			cells[i] = fmt.Sprint(s.Requests[m])
		}
		p("| %s | %d | %d | %s | %d | %d | %s |", s.At, s.Reconciles, s.ReconcileErrors,
			dur(time.Duration(s.ReconcileMeanSecs*float64(time.Second))), s.QueueDepth, s.QueueAdds, strings.Join(cells, " | "))
	}
	p("")
	p("CPU seconds by phase (the restarted manager counts from its start):")
	p("")
	p("| phase | %s |", strings.Join(cpuProcs, " | "))
	p("|---|%s", strings.Repeat("---:|", len(cpuProcs)))
	for _, ph := range r.CPU.Phases {
		cells := make([]string, len(cpuProcs))
		for i, name := range cpuProcs {
			cells[i] = fmt.Sprintf("%.1f", ph.Seconds[name])
		}
		p("| %s | %s |", ph.Name, strings.Join(cells, " | "))
	}
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func mapText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
