package jwks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// retryDelay is how long an org/site whose resolution failed (a cache read
// error) waits before it is resolved again. Its old entry stays served.
const retryDelay = time.Second

// coalescer is the set of org/sites to rebuild. Informer handlers add to
// it; the rebuild loop takes the whole set at once. A burst of events for
// one org/site (the controller writes the TenantIdentity status and the
// ConfigMap in one reconcile) becomes one rebuild, and a burst over many
// org/sites becomes one copy of the store.
type coalescer struct {
	mu         sync.Mutex
	dirty      map[tenantKey]struct{}
	namespaces map[string]struct{} // namespaces whose labels changed: their org/sites are dirty
	kick       chan struct{}       // capacity 1: "the set is not empty"
}

func newCoalescer() *coalescer {
	return &coalescer{dirty: map[tenantKey]struct{}{}, namespaces: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

func (c *coalescer) add(k tenantKey) {
	c.mu.Lock()
	c.dirty[k] = struct{}{}
	c.mu.Unlock()
	c.wake()
}

func (c *coalescer) addNamespace(ns string) {
	c.mu.Lock()
	c.namespaces[ns] = struct{}{}
	c.mu.Unlock()
	c.wake()
}

func (c *coalescer) wake() {
	select {
	case c.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

// take empties the sets and returns what they held.
func (c *coalescer) take() (map[tenantKey]struct{}, map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	taken, namespaces := c.dirty, c.namespaces
	c.dirty = make(map[tenantKey]struct{}, len(taken))
	c.namespaces = map[string]struct{}{}
	return taken, namespaces
}

// What an org/site's documents depend on: the TenantIdentities claiming it
// (spec, creation time, Published), the ConfigMaps whose labels name it
// (only a ConfigMap labelled with an org/site can serve it), its claim
// record, and the labels of the claimants' namespaces. So an event marks
// the org/site of the object before and after the change (a namespace
// event, the org/sites of its TenantIdentities), and nothing else: no
// event reaches beyond its own org/sites.

// tenantIdentityKey is the org/site a TenantIdentity claims.
func tenantIdentityKey(ti *v1alpha1.TenantIdentity) (tenantKey, bool) {
	return tenantKey{ti.Spec.Org, ti.Spec.SiteID}, ti.Spec.Org != "" && ti.Spec.SiteID != ""
}

// configMapTenant is the org/site a JWKS ConfigMap's labels name, or that
// a claim record in the system namespace records.
func (s *Server) configMapTenant(cm *corev1.ConfigMap) (tenantKey, bool) {
	k := tenantKey{cm.Labels[v1alpha1.LabelOrg], cm.Labels[v1alpha1.LabelSite]}
	switch c := cm.Labels[v1alpha1.LabelComponent]; {
	case k.org == "" || k.site == "":
		return k, false
	case c == v1alpha1.ComponentJWKS:
		return k, s.inScope(cm.Namespace)
	case c == tenancy.ComponentClaim:
		return k, cm.Namespace == s.opts.SystemNamespace && s.opts.SystemNamespace != ""
	}
	return k, false
}

// eventHandler marks the org/sites named by the old and new object.
func (s *Server) eventHandler() toolscache.ResourceEventHandler {
	mark := func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		var (
			k  tenantKey
			ok bool
		)
		switch o := obj.(type) {
		case *v1alpha1.TenantIdentity:
			k, ok = tenantIdentityKey(o)
			ok = ok && s.inScope(o.Namespace)
		case *corev1.ConfigMap:
			k, ok = s.configMapTenant(o)
		case *corev1.Namespace:
			if s.opts.OrgBinding && s.inScope(o.Name) {
				s.queue.addNamespace(o.Name)
			}
		}
		if ok {
			s.queue.add(k)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    mark,
		UpdateFunc: func(oldObj, newObj any) { mark(oldObj); mark(newObj) },
		DeleteFunc: mark,
	}
}

// inScope applies Options.WatchNamespace, for a cache that watches more.
func (s *Server) inScope(namespace string) bool {
	return s.opts.WatchNamespace == "" || namespace == s.opts.WatchNamespace
}

// watch registers the event handlers on the cache's informers. It does not
// start them: the manager starts its cache.
func (s *Server) watch(ctx context.Context, informers cache.Informers) error {
	for _, obj := range []client.Object{&v1alpha1.TenantIdentity{}, &corev1.ConfigMap{}, &corev1.Namespace{}} {
		inf, err := informers.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("jwks: informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(s.eventHandler())
		if err != nil {
			return fmt.Errorf("jwks: event handler for %T: %w", obj, err)
		}
		s.registrations = append(s.registrations, reg)
	}
	return nil
}

// Start runs the rebuild loop until ctx ends. It waits until the informers
// have delivered their initial lists, rebuilds every org/site they named,
// and only then reports ready: before that, every tenant route answers 503
// rather than a 404 that would only mean "not read yet".
func (s *Server) Start(ctx context.Context) error {
	if s.reader == nil {
		return errors.New("jwks: Start needs a Server made by Add")
	}
	synced := make([]toolscache.InformerSynced, 0, len(s.registrations))
	for _, reg := range s.registrations {
		synced = append(synced, reg.HasSynced)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended first
	}
	s.rebuild(ctx)
	s.synced.Store(true)
	syncedGauge.Set(1)
	s.log.Info("JWKS documents ready", "tenants", s.store.len())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.queue.kick:
			s.rebuild(ctx)
		}
	}
}

// NeedLeaderElection is false: every replica serves the documents.
func (s *Server) NeedLeaderElection() bool { return false }

// rebuild resolves every marked org/site and stores the result in one swap.
func (s *Server) rebuild(ctx context.Context) {
	marked, namespaces := s.queue.take()
	v := cacheView{ctx: ctx, reader: s.reader, opts: s.opts}
	for ns := range namespaces {
		tis, err := v.inNamespace(ns)
		if err != nil {
			s.log.Error(err, "Cannot list the TenantIdentities of a namespace; retrying", "namespace", ns)
			time.AfterFunc(retryDelay, func() { s.queue.addNamespace(ns) })
			continue
		}
		for i := range tis {
			if k, ok := tenantIdentityKey(&tis[i]); ok {
				marked[k] = struct{}{}
			}
		}
	}
	if len(marked) == 0 {
		return
	}
	changes := make(map[tenantKey]*entry, len(marked))
	for k := range marked {
		e, err := s.resolve(k, v)
		if err != nil {
			s.log.Error(err, "Cannot resolve org/site; keeping what is served", "org", k.org, "site", k.site)
			time.AfterFunc(retryDelay, func() { s.queue.add(k) })
			continue
		}
		changes[k] = e
	}
	s.commit(changes)
}

// commit stores a batch of changes (a nil entry removes the org/site) and
// keeps the gauges: the one path by which the rebuild loop and Load change
// what is served.
func (s *Server) commit(changes map[tenantKey]*entry) int {
	changed, served := s.store.apply(changes)
	documentsRebuilt.Add(float64(changed))
	tenantsServed.Set(float64(served))
	return served
}

// resolve is what org/site k serves now, as v shows it: nil for nothing.
// The owner (ownership.go) must have a trusted ConfigMap. A bad key yields
// badEntry (502), logged without the document.
func (s *Server) resolve(k tenantKey, v view) (*entry, error) {
	claims, err := v.claims(k)
	if err != nil || len(claims) == 0 {
		return nil, err
	}
	record, err := v.record(k)
	if err != nil {
		return nil, err
	}
	labels := map[string]map[string]string{}
	if s.opts.OrgBinding {
		for _, c := range claims {
			if _, seen := labels[c.Namespace]; !seen {
				if labels[c.Namespace], err = v.namespaceLabels(c.Namespace); err != nil {
					return nil, err
				}
			}
		}
	}
	o := owner(facts{claims: claims, record: record, labels: func(ns string) map[string]string { return labels[ns] }, binding: s.opts.OrgBinding})
	if o == nil {
		return nil, nil
	}
	name := client.ObjectKey{Namespace: o.Namespace, Name: v1alpha1.JWKSConfigMapName(o.Name)}
	cm, err := v.configMap(name)
	if err != nil || cm == nil {
		return nil, err
	}
	log := s.log.WithValues("org", k.org, "site", k.site, "configMap", name)
	if why := distrust(cm, o); why != "" {
		log.Info("Not serving an untrusted JWKS ConfigMap", "reason", why)
		return nil, nil
	}
	e, err := buildEntry(documentInput(o, cm, s.cfg))
	if err != nil {
		// err names the entry and the members at fault, never a value.
		log.Error(err, "Refusing the JWKS ConfigMap: every document of this org/site answers 502")
		badDocuments.Inc()
		return badEntry, nil
	}
	return e, nil
}
