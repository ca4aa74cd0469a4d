package cacheopts

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
	"github.com/signet-dev/signet/internal/testenv"
)

// The one-key indexes answer client.MatchingFields through a real cache,
// watching every namespace or one: they follow the key convention of
// controller-runtime's cache reader, which this test pins.
func TestIndexesAnswerTheirLookups(t *testing.T) {
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	org, site := "idx"+uuid.NewString()[:8], uuid.NewString()
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t"},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: site},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t-key",
		Labels: map[string]string{identityv1alpha1.LabelTenantIdentity: "t"}}}
	for _, o := range []client.Object{ti, secret} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	const byOwner = "test.owner"
	for name, watch := range map[string]string{"every namespace": "", "one namespace": ns} {
		t.Run(name, func(t *testing.T) {
			opts := Options(Config{WatchNamespace: watch, SystemNamespace: "signet-system"})
			opts.Scheme = testenv.Scheme()
			c, err := cache.New(env.Config, opts)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the controller and the server both add it
				if err := IndexOrgSite(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			owner := func(o client.Object) []string { return []string{o.GetLabels()[identityv1alpha1.LabelTenantIdentity]} }
			if err := IndexField(ctx, c, SecretMetadata(), byOwner, WithinNamespace, owner); err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() { _ = c.Start(ctx) }()
			if !c.WaitForCacheSync(ctx) {
				t.Fatal("no sync")
			}
			// One key per value: the lookups' own, not controller-runtime's two.
			if inf, err := c.GetInformer(ctx, &identityv1alpha1.TenantIdentity{}); err != nil {
				t.Fatal(err)
			} else if idx, ok := inf.(interface{ GetIndexer() toolscache.Indexer }); !ok && watch == "" {
				t.Fatalf("the informer (%T) shows no indexer: the keys cannot be checked", inf)
			} else if ok {
				for _, k := range idx.GetIndexer().ListIndexFuncValues("field:" + tenancy.OrgSiteField) {
					if !strings.HasPrefix(k, "__all_namespaces/") {
						t.Errorf("index key %q: the across-namespaces index keeps a namespaced key", k)
					}
				}
			}
			var claims identityv1alpha1.TenantIdentityList
			if err := c.List(ctx, &claims, client.MatchingFields{tenancy.OrgSiteField: tenancy.OrgSite(org, site)}); err != nil {
				t.Fatal(err)
			}
			if len(claims.Items) != 1 || claims.Items[0].Name != "t" {
				t.Errorf("claims on %s/%s: %d, want t", org, site, len(claims.Items))
			}
			secrets := &metav1.PartialObjectMetadataList{}
			secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
			if err := c.List(ctx, secrets, client.InNamespace(ns), client.MatchingFields{byOwner: "t"}); err != nil {
				t.Fatal(err)
			}
			if len(secrets.Items) != 1 || secrets.Items[0].Name != "t-key" {
				t.Errorf("key Secrets of t: %d, want t-key", len(secrets.Items))
			}
		})
	}
}
