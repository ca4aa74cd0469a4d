package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := identityv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// tenant i lives in namespace bench-(i mod namespaces), bound to org
// org-(i mod namespaces), with a site ID of its own.
type tenant struct{ ns, name, org, site string }

func newTenant(i, namespaces int) tenant {
	k := i % namespaces
	return tenant{
		ns:   fmt.Sprintf("bench-%d", k),
		name: fmt.Sprintf("t-%06d", i),
		org:  fmt.Sprintf("org-%d", k),
		site: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
	}
}

func (t tenant) jwksPath() string {
	return identityv1alpha1.BasePath(t.org, t.site) + "/.well-known/jwks.json"
}

// object is the tenant's TenantIdentity: ES256, every other policy field
// left to the CRD's defaults.
func (t tenant) object() *identityv1alpha1.TenantIdentity {
	return &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: t.name},
		Spec: identityv1alpha1.TenantIdentitySpec{
			Org: t.org, SiteID: t.site,
			Keys: identityv1alpha1.KeyPolicy{Algorithm: "ES256"},
		},
	}
}

// createPhase creates the namespaces, then all N TenantIdentities at once,
// and measures the time until the last is Ready, then until both servers
// serve every one.
func createPhase(ctx context.Context, e *env, cfg config, res *results) ([]tenant, error) {
	ready, stop, err := watchReady(ctx, e)
	if err != nil {
		return nil, err
	}
	defer stop()
	for k := range cfg.namespaces {
		t := newTenant(k, cfg.namespaces)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.ns, Labels: map[string]string{identityv1alpha1.LabelOrg: t.org}}}
		if err := e.admin.Create(ctx, ns); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", t.ns, err)
		}
	}
	ts := make([]tenant, cfg.n)
	for i := range ts {
		ts[i] = newTenant(i, cfg.namespaces)
	}
	logf("creating %d TenantIdentities in %d namespace(s), %d at a time", cfg.n, cfg.namespaces, cfg.concurrency)
	start := time.Now()
	if err := createAll(ctx, e, ts, cfg.concurrency); err != nil {
		return nil, err
	}
	res.Create.AllCreated = dur(time.Since(start))
	logf("all %d created in %s; waiting for Ready", cfg.n, res.Create.AllCreated)
	readyCtx, cancel := context.WithTimeout(ctx, cfg.readyTimeout)
	defer cancel()
	last, err := ready.waitFor(readyCtx, cfg.n, start)
	if err != nil {
		return nil, err
	}
	res.Create.AllReady = dur(last.Sub(start))
	res.Create.ReadyPerSecond = float64(cfg.n) / last.Sub(start).Seconds()
	res.Memory.ManagerRSSN, res.Memory.ReplicaRSSN = e.manager.rss(), e.replica.rss()
	res.Memory.ManagerVmRSSN, res.Memory.ReplicaVmRSSN = e.manager.vmRSS(), e.replica.vmRSS()
	logf("all %d Ready after %s (%.1f/s); RSS %s (manager), %s (replica)", cfg.n, res.Create.AllReady,
		res.Create.ReadyPerSecond, mib(res.Memory.ManagerRSSN), mib(res.Memory.ReplicaRSSN))

	if res.Create.AllServedManager, err = allServed(readyCtx, e.manager.jwks, ts, start); err != nil {
		return nil, fmt.Errorf("manager's JWKS server: %w", err)
	}
	if res.Create.AllServedReplica, err = allServed(readyCtx, e.replica.jwks, ts, start); err != nil {
		return nil, fmt.Errorf("replica's JWKS server: %w", err)
	}
	logf("all served after %s (manager), %s (replica)", res.Create.AllServedManager, res.Create.AllServedReplica)
	return ts, nil
}

// createAll creates ts with `workers` concurrent requests; the first
// error stops it.
func createAll(ctx context.Context, e *env, ts []tenant, workers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan tenant)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range jobs {
				if err := e.admin.Create(ctx, t.object()); err != nil {
					cancel(fmt.Errorf("create %s/%s: %w", t.ns, t.name, err))
				}
			}
		})
	}
feed:
	for _, t := range ts {
		select {
		case jobs <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// readyWatch counts the TenantIdentities whose Ready condition is True for
// their current generation, from an informer's events: no object is
// polled.
type readyWatch struct {
	mu      sync.Mutex
	readyAt map[string]time.Time
	last    time.Time
	changed chan struct{}
}

func watchReady(ctx context.Context, e *env) (*readyWatch, func(), error) {
	c, err := cache.New(e.adminCfg, cache.Options{Scheme: scheme()})
	if err != nil {
		return nil, nil, err
	}
	inf, err := c.GetInformer(ctx, &identityv1alpha1.TenantIdentity{})
	if err != nil {
		return nil, nil, err
	}
	w := &readyWatch{readyAt: map[string]time.Time{}, changed: make(chan struct{})}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, o any) { w.observe(o) },
	}); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		cancel()
		return nil, nil, fmt.Errorf("TenantIdentity informer did not sync")
	}
	return w, cancel, nil
}

func (w *readyWatch) observe(o any) {
	ti, ok := o.(*identityv1alpha1.TenantIdentity)
	if !ok {
		return
	}
	c := apimeta.FindStatusCondition(ti.Status.Conditions, identityv1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != ti.Generation {
		return
	}
	key := ti.Namespace + "/" + ti.Name
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, seen := w.readyAt[key]; seen {
		return
	}
	w.readyAt[key], w.last = now, now
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitFor returns when n TenantIdentities have been Ready, with the time
// the last of them became Ready, and reports progress every 10 s.
func (w *readyWatch) waitFor(ctx context.Context, n int, start time.Time) (time.Time, error) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		w.mu.Lock()
		count, last, changed := len(w.readyAt), w.last, w.changed
		w.mu.Unlock()
		if count >= n {
			return last, nil
		}
		select {
		case <-changed:
		case <-tick.C:
			logf("  %d/%d Ready after %s", count, n, time.Since(start).Round(time.Second))
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d/%d Ready after %s: %w", count, n, time.Since(start).Round(time.Second), ctx.Err())
		}
	}
}

// httpClient keeps connections to the JWKS servers alive across polls.
var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16},
}

// status GETs url and returns its status code (0 on a transport error).
func status(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	drain(resp)
	return resp.StatusCode
}

// allServed passes over the tenants whose jwks.json is not yet 200 on
// base until none is left, and returns the time since start.
func allServed(ctx context.Context, base string, ts []tenant, start time.Time) (dur, error) {
	pending := ts
	for {
		var still []tenant
		for _, t := range pending {
			if status(ctx, base+t.jwksPath()) != http.StatusOK {
				still = append(still, t)
			}
		}
		if len(still) == 0 {
			return dur(time.Since(start)), nil
		}
		pending = still
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d/%d documents not served: %w", len(pending), len(ts), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
