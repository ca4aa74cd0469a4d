package cacheopts

import (
	"context"
	"fmt"
	"strings"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// Scope is the one kind of lookup an index serves.
type Scope int

const (
	// AcrossNamespaces: client.MatchingFields alone, over every namespace.
	AcrossNamespaces Scope = iota
	// WithinNamespace: client.MatchingFields with client.InNamespace.
	WithinNamespace
)

// IndexField is client.FieldIndexer's IndexField for one kind of lookup.
// controller-runtime's index keeps two keys per value of a namespaced
// object, one for each kind, and a set per key: for 10,000 TenantIdentities
// and 20,000 key Secrets that is about 650 bytes a tenant, half of it for
// lookups signet never makes. This index keeps the key of scope only,
// under the names controller-runtime's cache reader looks up
// ("field:<field>", "<namespace>/<value>" or "__all_namespaces/<value>"),
// so that client.MatchingFields reads it as usual; the envtest suites,
// which read every index through the manager's cache, break if that
// convention ever changes. A lookup of the other scope finds nothing (no
// error): the org/site index is read without client.InNamespace, the key
// Secrets index with it.
func IndexField(ctx context.Context, informers cache.Informers, obj client.Object, field string, scope Scope, extract client.IndexerFunc) error {
	inf, err := informers.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	return inf.AddIndexers(toolscache.Indexers{"field:" + field: func(o any) ([]string, error) {
		co, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("index %s: %T is not an object", field, o)
		}
		ns := "__all_namespaces"
		if scope == WithinNamespace {
			ns = co.GetNamespace()
		}
		vals := extract(co)
		keys := make([]string, len(vals))
		for i, v := range vals {
			keys[i] = ns + "/" + v
		}
		return keys, nil
	}})
}

// IndexOrgSite adds the index of TenantIdentities by org/site
// (tenancy.OrgSiteField), across namespaces: every claim on one org/site,
// without listing all TenantIdentities. The controller and the server
// each add it; the second is a no-op.
func IndexOrgSite(ctx context.Context, informers cache.Informers) error {
	err := IndexField(ctx, informers, &identityv1alpha1.TenantIdentity{}, tenancy.OrgSiteField, AcrossNamespaces, tenancy.OrgSiteValues)
	if err != nil && strings.Contains(err.Error(), "indexer conflict") {
		return nil
	}
	return err
}
