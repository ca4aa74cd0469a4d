package jwks

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
)

// Benchmarks of the request path. Run:
//
//	go test -run '^$' -bench . -benchmem ./internal/jwks/
//
// Numbers and their reading are in docs/performance.md.

var tenantCounts = []int{1, 1000, 10000}

// benchWriter is a ResponseWriter reused across iterations: the benchmark
// measures the handler, not a recorder's buffers.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) reset()                      { clear(w.h); w.code, w.n = 0, 0 }

// benchTenants is a synced server with n org/sites, each publishing two of
// eight ES256 keys, and the jwks.json path of each org/site.
type benchTenants struct {
	s     *Server
	paths []string // one per org/site, shuffled
}

// request is the one request an iteration reuses; run sets its path.
func (bt *benchTenants) request(header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, bt.paths[0], nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

var benchCache sync.Map // n -> *benchTenants

func loadTenants(b *testing.B, n int) *benchTenants {
	b.Helper()
	if v, ok := benchCache.Load(n); ok {
		return v.(*benchTenants)
	}
	s := testServer(b, Options{MaxCacheAge: 300e9})
	tis := make([]v1alpha1.TenantIdentity, 0, n)
	cms := make([]corev1.ConfigMap, 0, n)
	for i := range n {
		ti := newTI(fmt.Sprintf("ns-%d", i), "t", fmt.Sprintf("org-%d", i), siteA, epoch, metav1.ConditionTrue)
		tis = append(tis, *ti)
		cms = append(cms, *jwksConfigMap(ti, "1", genKey(b, "ES256", i%8), genKey(b, "ES256", (i+1)%8)))
	}
	if served := s.Load(Snapshot{TenantIdentities: tis, ConfigMaps: cms}); served != n {
		b.Fatalf("served %d of %d", served, n)
	}
	bt := &benchTenants{s: s}
	for i := range n {
		bt.paths = append(bt.paths, docPath(fmt.Sprintf("org-%d", i), siteA, routeJWKS))
	}
	// Visit org/sites in random order so 10,000 entries are not walked in
	// a cache-friendly sequence.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(bt.paths), func(i, j int) { bt.paths[i], bt.paths[j] = bt.paths[j], bt.paths[i] })
	benchCache.Store(n, bt)
	return bt
}

// BenchmarkServeJWKS: GET jwks.json, 200, through ServeHTTP (metrics included).
func BenchmarkServeJWKS(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			bt := loadTenants(b, n)
			r, w := bt.request(), &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				w.reset()
				r.URL.Path = bt.paths[i%len(bt.paths)]
				bt.s.ServeHTTP(w, r)
			}
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		})
	}
}

// BenchmarkServeJWKS304: the same with If-None-Match holding the current
// ETag of the requested org/site (a revalidating cache).
func BenchmarkServeJWKS304(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			bt := loadTenants(b, n)
			inm := make([][]string, len(bt.paths))
			for i, p := range bt.paths {
				org, site, rt, _ := parsePath(p)
				inm[i] = []string{bt.s.store.get(tenantKey{org, site}).docs[rt].etag()}
			}
			r, w := bt.request(), &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				w.reset()
				r.URL.Path = bt.paths[i%len(bt.paths)]
				r.Header["If-None-Match"] = inm[i%len(inm)]
				bt.s.ServeHTTP(w, r)
			}
			if w.code != http.StatusNotModified {
				b.Fatalf("status %d", w.code)
			}
		})
	}
}

// BenchmarkServeJWKSParallel: the 200 path from GOMAXPROCS goroutines, to
// show reads do not contend (no lock, shared counters aside).
func BenchmarkServeJWKSParallel(b *testing.B) {
	bt := loadTenants(b, 10000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, w := bt.request(), &benchWriter{h: http.Header{}}
		for i := 0; pb.Next(); i++ {
			w.reset()
			r.URL.Path = bt.paths[i%len(bt.paths)]
			bt.s.ServeHTTP(w, r)
		}
	})
}

// BenchmarkServeNoMetrics is the 200 path without the metrics, to price them.
func BenchmarkServeNoMetrics(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			bt := loadTenants(b, n)
			r, w := bt.request(), &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				w.reset()
				r.URL.Path = bt.paths[i%len(bt.paths)]
				bt.s.serve(w, r)
			}
		})
	}
}

// BenchmarkServeStaticBaseline is the floor the handler is compared with:
// a map from path to bytes and a write, as hack/loadtest's static server.
func BenchmarkServeStaticBaseline(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			bt := loadTenants(b, n)
			bodies := make(map[string][]byte, len(bt.paths))
			for _, p := range bt.paths {
				org, site, rt, _ := parsePath(p)
				bodies[p] = bt.s.store.get(tenantKey{org, site}).docs[rt].body
			}
			ct := []string{"application/json"}
			static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, ok := bodies[r.URL.Path]
				if !ok {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				w.Header()["Content-Type"] = ct
				_, _ = w.Write(body)
			})
			r, w := bt.request(), &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				w.reset()
				r.URL.Path = bt.paths[i%len(bt.paths)]
				static.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkStoreLookup compares the store's atomic pointer to an immutable
// map with the alternatives, at 10,000 org/sites, read in parallel.
func BenchmarkStoreLookup(b *testing.B) {
	bt := loadTenants(b, 10000)
	m := *bt.s.store.current.Load()
	keys := make([]tenantKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	var rw sync.RWMutex
	var sm sync.Map
	for k, e := range m {
		sm.Store(k, e)
	}
	run := func(name string, get func(tenantKey) *entry) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if get(keys[i%len(keys)]) == nil {
						b.Fail()
					}
				}
			})
		})
	}
	run("atomic-immutable-map", bt.s.store.get)
	run("rwmutex-map", func(k tenantKey) *entry { rw.RLock(); defer rw.RUnlock(); return m[k] })
	run("sync.Map", func(k tenantKey) *entry { v, _ := sm.Load(k); return v.(*entry) })
}

// BenchmarkStoreApply prices one changed org/site among n: a copy of the
// map (per coalesced batch, not per request).
func BenchmarkStoreApply(b *testing.B) {
	for _, n := range tenantCounts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			bt := loadTenants(b, n)
			var st store
			st.apply(*bt.s.store.current.Load())
			k := tenantKey{"org-0", siteA}
			one, _ := buildEntry(input(genKey(b, "ES256", 0)))
			two, _ := buildEntry(input(genKey(b, "ES256", 1)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				e := one
				if i%2 == 1 {
					e = two
				}
				st.apply(map[tenantKey]*entry{k: e})
			}
		})
	}
}

// BenchmarkBuildEntry prices the rebuild of one org/site with three keys:
// checks and serialization of its three documents.
func BenchmarkBuildEntry(b *testing.B) {
	in := input(genKey(b, "ES256", 0), genKey(b, "RS256", 0), genKey(b, "EdDSA", 0))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildEntry(in); err != nil {
			b.Fatal(err)
		}
	}
}
