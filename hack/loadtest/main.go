// Command loadtest measures the JWKS server's real handler against a
// minimal static net/http handler serving the same bytes, over loopback
// HTTP/1.1 with keep-alive, for several tenant counts.
//
//	go run ./hack/loadtest -tenants 1,1000,10000 -duration 2s -rounds 6 -concurrency 8
//
// The servers run in this process, beside the load generator, under the
// same http.Server settings. Rounds rotate the order of the handlers so
// that drift on a shared machine hits all alike, and each ratio is the
// median of per-round ratios. Besides req/s it reports the process CPU
// time per request (server, client and runtime together), which a busy
// neighbour disturbs far less than throughput; with -cpuprofile, runs are
// labelled by server and tenant count. Everything listens on 127.0.0.1
// and every run is bounded by -duration and -requests. docs/performance.md
// has the results and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
)

type config struct {
	servers     []string
	tenants     []int
	duration    time.Duration
	requests    int64
	concurrency int
	rounds      int
}

func main() {
	var cfg config
	var tenants string
	flag.StringVar(&tenants, "tenants", "1,1000,10000", "comma-separated tenant (org/site) counts")
	flag.DurationVar(&cfg.duration, "duration", 2*time.Second, "length of one run (one handler, one tenant count, one round); at most 1m")
	flag.Int64Var(&cfg.requests, "requests", 2_000_000, "cap on the requests of one run")
	flag.IntVar(&cfg.concurrency, "concurrency", 8, "concurrent keep-alive connections")
	flag.IntVar(&cfg.rounds, "rounds", 6, "runs per handler and tenant count, in rotating order (a multiple of 3 puts each handler in each position equally)")
	servers := flag.String("servers", "static,static+h,jwks", "handlers to drive: static (body and Content-Type), static+h (body and the jwks headers), jwks")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	for f := range strings.SplitSeq(tenants, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100_000 {
			fail(fmt.Errorf("bad tenant count %q", f))
		}
		cfg.tenants = append(cfg.tenants, n)
	}
	cfg.duration = min(cfg.duration, time.Minute)
	cfg.servers = strings.Split(*servers, ",")
	crlog.SetLogger(logr.Discard())
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	pprof.StopCPUProfile()
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

func run(cfg config) error {
	fmt.Printf("GOMAXPROCS=%d concurrency=%d duration=%v rounds=%d (servers and load generator share this process)\n\n",
		runtime.GOMAXPROCS(0), cfg.concurrency, cfg.duration, cfg.rounds)
	fmt.Printf("%8s  %-8s  %10s  %10s  %9s  %9s  %9s\n", "tenants", "server", "requests", "req/s", "p50", "p99", "CPU/req")
	keySet, err := publicKeys(8)
	if err != nil {
		return err
	}
	for _, n := range cfg.tenants {
		if err := compare(cfg, n, keySet); err != nil {
			return err
		}
	}
	return nil
}

// compare serves n tenants from both handlers and drives each in turn.
func compare(cfg config, n int, keySet []string) error {
	srv, err := jwks.NewServer(jwks.Options{PublicBaseURL: "https://jwks.example", MaxCacheAge: 5 * time.Minute})
	if err != nil {
		return err
	}
	tis, cms := tenants(n, keySet)
	if served := srv.Load(jwks.Snapshot{TenantIdentities: tis, ConfigMaps: cms}); served != n {
		return fmt.Errorf("jwks serves %d of %d tenants", served, n)
	}
	paths := documentPaths(tis)
	static, err := staticHandler(srv, paths, false)
	if err != nil {
		return err
	}
	staticHeaders, err := staticHandler(srv, paths, true)
	if err != nil {
		return err
	}
	servers := []struct {
		name string
		h    http.Handler
	}{{"static", static}, {"static+h", staticHeaders}, {"jwks", srv}}
	servers = slices.DeleteFunc(servers, func(s struct {
		name string
		h    http.Handler
	}) bool {
		return !slices.Contains(cfg.servers, s.name)
	})
	// Rounds rotate the order of the handlers, and each round yields its
	// own ratio from runs a few seconds apart: on a shared machine, the
	// median of those ratios is steadier than a ratio of totals.
	results := map[string][]result{}
	var ratios, ratiosH, cpuRatios []float64
	for round := range cfg.rounds {
		runs := map[string]result{}
		for i := range servers {
			s := servers[(i+round)%len(servers)]
			// Labels let a CPU profile (-cpuprofile) be split by handler
			// and tenant count: pprof -tagfocus server=jwks,tenants=10000.
			var r result
			var err error
			pprof.Do(context.Background(), pprof.Labels("server", s.name, "tenants", strconv.Itoa(n)), func(context.Context) {
				r, err = drive(cfg, s.h, paths)
			})
			if err != nil {
				return fmt.Errorf("%s, %d tenants: %w", s.name, n, err)
			}
			results[s.name] = append(results[s.name], r)
			runs[s.name] = r
		}
		ratios = append(ratios, runs["jwks"].rate()/runs["static"].rate())
		ratiosH = append(ratiosH, runs["jwks"].rate()/runs["static+h"].rate())
		cpuRatios = append(cpuRatios, float64(runs["static"].cpuPerRequest())/float64(runs["jwks"].cpuPerRequest()))
	}
	for _, s := range servers {
		m := merge(results[s.name])
		fmt.Printf("%8d  %-8s  %10d  %10.0f  %9v  %9v  %9v\n", n, s.name, m.requests, m.rate(), m.quantile(0.50), m.quantile(0.99),
			m.cpuPerRequest().Round(time.Microsecond/10))
	}
	if has := func(name string) bool { return len(results[name]) > 0 }; has("jwks") && has("static") {
		fmt.Printf("%8d  req/s   jwks/static   per round %s  median %.3f\n", n, fmtRatios(ratios), median(ratios))
		fmt.Printf("%8d  CPU/req static/jwks   per round %s  median %.3f\n", n, fmtRatios(cpuRatios), median(cpuRatios))
		if has("static+h") {
			fmt.Printf("%8d  req/s   jwks/static+h per round %s  median %.3f\n", n, fmtRatios(ratiosH), median(ratiosH))
		}
	}
	fmt.Println()
	return nil
}

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func median(rs []float64) float64 {
	s := slices.Clone(rs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// publicKeys generates count ES256 keys and returns their public JWKs.
func publicKeys(count int) ([]string, error) {
	out := make([]string, 0, count)
	for range count {
		m, err := keys.Generate("ES256", 0, nil)
		if err != nil {
			return nil, err
		}
		pub, err := m.PublicJWK()
		if err != nil {
			return nil, err
		}
		out = append(out, m.KID+"\x00"+string(pub))
	}
	return out, nil
}

// tenants builds n Published TenantIdentities and their ConfigMaps, as the
// controller writes them, each publishing two of the keys.
func tenants(n int, keySet []string) ([]v1alpha1.TenantIdentity, []corev1.ConfigMap) {
	tis := make([]v1alpha1.TenantIdentity, 0, n)
	cms := make([]corev1.ConfigMap, 0, n)
	created := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range n {
		ns, name := fmt.Sprintf("tenant-%d", i), "ti"
		ti := v1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(fmt.Sprintf("uid-%d", i)), CreationTimestamp: created},
			Spec:       v1alpha1.TenantIdentitySpec{Org: fmt.Sprintf("org%d", i), SiteID: siteID(i), Keys: v1alpha1.KeyPolicy{PrePublish: "1h"}},
		}
		meta.SetStatusCondition(&ti.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionPublished, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonKeysPublished})
		cm := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: v1alpha1.JWKSConfigMapName(name),
			Labels: map[string]string{
				v1alpha1.LabelTenantIdentity: name, v1alpha1.LabelOrg: ti.Spec.Org,
				v1alpha1.LabelSite: ti.Spec.SiteID, v1alpha1.LabelComponent: v1alpha1.ComponentJWKS,
			},
			Annotations: map[string]string{v1alpha1.AnnotationSequence: "1"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "TenantIdentity", Name: name, UID: ti.UID, Controller: ptr.To(true),
			}},
		}, Data: map[string]string{}}
		var order []string
		for _, k := range []string{keySet[i%len(keySet)], keySet[(i+1)%len(keySet)]} {
			kid, pub, _ := strings.Cut(k, "\x00")
			cm.Data[kid+".json"] = pub
			order = append(order, kid)
		}
		cm.Annotations[v1alpha1.AnnotationKeyOrder] = strings.Join(order, ",")
		tis, cms = append(tis, ti), append(cms, cm)
	}
	return tis, cms
}

func siteID(i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
}

// documentPaths lists the three documents of every tenant, shuffled, so
// consecutive requests hit unrelated tenants.
func documentPaths(tis []v1alpha1.TenantIdentity) []string {
	paths := make([]string, 0, 3*len(tis))
	for _, ti := range tis {
		base := v1alpha1.BasePath(ti.Spec.Org, ti.Spec.SiteID)
		paths = append(paths, base+"/.well-known/jwks.json", base+"/.well-known/spiffe/jwks.json", base+"/.well-known/openid-configuration")
	}
	rand.New(rand.NewPCG(7, 11)).Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	return paths
}

// staticHandler serves, for every path, the bytes the jwks handler serves,
// from a map: the least a Go HTTP server can do for these documents. With
// sameHeaders it also sends the jwks handler's headers (ETag,
// Cache-Control, ...), which isolates what the jwks handler does per
// request from the cost of the header bytes themselves.
func staticHandler(src http.Handler, paths []string, sameHeaders bool) (http.Handler, error) {
	type doc struct {
		body   []byte
		header http.Header
	}
	docs := make(map[string]doc, len(paths))
	for _, p := range paths {
		rec := httptest.NewRecorder()
		src.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			return nil, fmt.Errorf("jwks answers %d for %s", rec.Code, p)
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if sameHeaders {
			h = rec.Header()
		}
		docs[p] = doc{rec.Body.Bytes(), h}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := docs[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := w.Header()
		for k, v := range d.header {
			h[k] = v
		}
		_, _ = w.Write(d.body)
	}), nil
}

// result is one run: its requests and their latencies.
type result struct {
	requests  int64
	elapsed   time.Duration
	cpu       time.Duration // process CPU time (user+system) of the run
	latencies []time.Duration
}

// cpuPerRequest is the CPU the whole process (server, client, runtime)
// spent per request. Unlike req/s it does not depend on how much CPU other
// processes of a shared machine leave us.
func (r result) cpuPerRequest() time.Duration { return r.cpu / time.Duration(max(r.requests, 1)) }

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(q*float64(len(r.latencies)-1))].Round(time.Microsecond / 10)
}

func merge(rs []result) result {
	var m result
	for _, r := range rs {
		m.requests += r.requests
		m.elapsed += r.elapsed
		m.cpu += r.cpu
		m.latencies = append(m.latencies, r.latencies...)
	}
	slices.Sort(m.latencies)
	return m
}

// drive serves h on a loopback port and sends GETs over concurrency
// keep-alive connections until the duration or the request cap is reached.
func drive(cfg config, h http.Handler, paths []string) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 8 << 10,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.concurrency, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()

	var (
		sent     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	lat := make([][]time.Duration, cfg.concurrency)
	runtime.GC() // start every run with the same heap, not the last run's garbage
	cpu0 := processCPU()
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	for w := range cfg.concurrency {
		wg.Go(func() {
			lat[w] = make([]time.Duration, 0, 1<<16)
			for i := w * len(paths) / cfg.concurrency; time.Now().Before(deadline) && sent.Add(1) <= cfg.requests; i++ {
				t0 := time.Now()
				if err := fetch(client, base+paths[i%len(paths)]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), cpu: processCPU() - cpu0}
	for _, l := range lat {
		r.requests += int64(len(l))
		r.latencies = append(r.latencies, l...)
	}
	return r, firstErr
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fetch(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(url + ": " + resp.Status)
	}
	return nil
}
