package jwks

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// view is where the server reads what an org/site serves: the manager's
// cache (cacheView, for the rebuild loop) or a given snapshot
// (snapshotView, for Load). Both go through the same resolve and commit,
// so a snapshot is served exactly as a cluster would be. Every read of the
// package is here.
type view interface {
	// claims are the TenantIdentities naming org/site k.
	claims(k tenantKey) ([]v1alpha1.TenantIdentity, error)
	// record is signet's claim record of k, nil when there is none.
	record(k tenantKey) (*tenancy.Claim, error)
	// namespaceLabels are a namespace's labels, nil when it is unknown.
	namespaceLabels(ns string) (map[string]string, error)
	// configMap is the named ConfigMap, nil when absent.
	configMap(key client.ObjectKey) (*corev1.ConfigMap, error)
	// inNamespace lists the TenantIdentities of a namespace (a namespace's
	// labels changed: their org/sites are decided again).
	inNamespace(ns string) ([]v1alpha1.TenantIdentity, error)
}

// cacheView reads the manager's cache.
type cacheView struct {
	ctx    context.Context
	reader client.Reader
	opts   Options
}

func (v cacheView) claims(k tenantKey) ([]v1alpha1.TenantIdentity, error) {
	var list v1alpha1.TenantIdentityList
	// Through the field index: resolving one org/site never lists all
	// TenantIdentities. The index serves lookups across namespaces only
	// (cacheopts.IndexOrgSite); with --watch-namespace the cache holds that
	// namespace alone.
	if err := v.reader.List(v.ctx, &list, client.MatchingFields{tenancy.OrgSiteField: k.String()}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (v cacheView) record(k tenantKey) (*tenancy.Claim, error) {
	if v.opts.SystemNamespace == "" {
		return nil, nil
	}
	cm, err := v.configMap(client.ObjectKey{Namespace: v.opts.SystemNamespace, Name: tenancy.ClaimName(k.org, k.site)})
	if cm == nil || err != nil {
		return nil, err
	}
	if c, ok := tenancy.ClaimOf(cm, k.org, k.site); ok {
		return &c, nil
	}
	return nil, nil
}

func (v cacheView) namespaceLabels(ns string) (map[string]string, error) {
	var n corev1.Namespace
	if err := v.reader.Get(v.ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return n.Labels, nil
}

func (v cacheView) configMap(key client.ObjectKey) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := v.reader.Get(v.ctx, key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return cm, nil
}

func (v cacheView) inNamespace(ns string) ([]v1alpha1.TenantIdentity, error) {
	var list v1alpha1.TenantIdentityList
	if err := v.reader.List(v.ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Snapshot is a set of objects to serve from, for Load: TenantIdentities,
// ConfigMaps (JWKS ConfigMaps, and claim records in the system namespace)
// and the tenants' namespaces (for org binding).
type Snapshot struct {
	TenantIdentities []v1alpha1.TenantIdentity
	ConfigMaps       []corev1.ConfigMap
	Namespaces       []corev1.Namespace
}

// snapshotView reads a Snapshot.
type snapshotView struct {
	byOrgSite  map[tenantKey][]v1alpha1.TenantIdentity
	configMaps map[client.ObjectKey]*corev1.ConfigMap
	namespaces map[string]map[string]string
	opts       Options
}

func newSnapshotView(snap Snapshot, opts Options) *snapshotView {
	v := &snapshotView{
		byOrgSite:  map[tenantKey][]v1alpha1.TenantIdentity{},
		configMaps: make(map[client.ObjectKey]*corev1.ConfigMap, len(snap.ConfigMaps)),
		namespaces: make(map[string]map[string]string, len(snap.Namespaces)),
		opts:       opts,
	}
	for _, ti := range snap.TenantIdentities {
		if k, ok := tenantIdentityKey(&ti); ok && (opts.WatchNamespace == "" || ti.Namespace == opts.WatchNamespace) {
			v.byOrgSite[k] = append(v.byOrgSite[k], ti)
		}
	}
	for i := range snap.ConfigMaps {
		v.configMaps[client.ObjectKeyFromObject(&snap.ConfigMaps[i])] = &snap.ConfigMaps[i]
	}
	for _, ns := range snap.Namespaces {
		v.namespaces[ns.Name] = ns.Labels
	}
	return v
}

func (v *snapshotView) claims(k tenantKey) ([]v1alpha1.TenantIdentity, error) {
	return v.byOrgSite[k], nil
}

func (v *snapshotView) record(k tenantKey) (*tenancy.Claim, error) {
	cm := v.configMaps[client.ObjectKey{Namespace: v.opts.SystemNamespace, Name: tenancy.ClaimName(k.org, k.site)}]
	if c, ok := tenancy.ClaimOf(cm, k.org, k.site); ok && v.opts.SystemNamespace != "" {
		return &c, nil
	}
	return nil, nil
}

func (v *snapshotView) namespaceLabels(ns string) (map[string]string, error) {
	return v.namespaces[ns], nil
}

func (v *snapshotView) configMap(key client.ObjectKey) (*corev1.ConfigMap, error) {
	return v.configMaps[key], nil
}

func (v *snapshotView) inNamespace(ns string) ([]v1alpha1.TenantIdentity, error) {
	var out []v1alpha1.TenantIdentity
	for _, tis := range v.byOrgSite {
		for _, ti := range tis {
			if ti.Namespace == ns {
				out = append(out, ti)
			}
		}
	}
	return out, nil
}
