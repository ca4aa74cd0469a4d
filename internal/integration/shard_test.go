package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
)

// shardRecorder notes which TenantIdentities a shard's controller acted on
// (every reconcile that changes anything emits an Event).
type shardRecorder struct {
	mu      sync.Mutex
	tenants map[string]bool
}

func (r *shardRecorder) Eventf(regarding, _ runtime.Object, _, _, _, _ string, _ ...any) {
	o, ok := regarding.(client.Object)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenants[o.GetNamespace()+"/"+o.GetName()] = true
}

func (r *shardRecorder) saw(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tenants[key]
}

// Two instances split the tenants of one namespace by --tenant-selector
// (as two Deployments with their own leader election would): each tenant is
// reconciled by exactly one of them, and both servers serve every tenant.
func TestShardsSplitTheTenants(t *testing.T) {
	t.Parallel()
	org := "shard" + uuid.NewString()[:8]
	ns := env.Namespace(t, map[string]string{identityv1alpha1.LabelOrg: org})
	shards := map[string]*shardRecorder{}
	var shardServers []*jwks.Server
	for _, shard := range []string{"a", "b"} {
		rec := &shardRecorder{tenants: map[string]bool{}}
		shards[shard] = rec
		shardServers = append(shardServers, startManager(t, replica{
			controller: true, workers: 2, watchNamespace: ns, recorder: rec,
			selector: labels.SelectorFromSet(labels.Set{"integration.signet.dev/shard": shard}),
		}))
	}
	type tenant struct{ name, shard, site string }
	var tenants []tenant
	for i := range 6 {
		tn := tenant{name: fmt.Sprintf("t%d", i), shard: []string{"a", "b"}[i%2], site: uuid.NewString()}
		tenants = append(tenants, tn)
		ti := &identityv1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tn.name, Labels: map[string]string{
				ownManagerLabel: "shards", "integration.signet.dev/shard": tn.shard,
			}},
			Spec: identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: tn.site},
		}
		if err := env.Client.Create(context.Background(), ti); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range tenants {
		eventually(t, tn.name+" Ready", func() error { // the status is written after the Events
			var ti identityv1alpha1.TenantIdentity
			if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: tn.name}, &ti); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(ti.Status.Conditions, identityv1alpha1.ConditionReady) {
				return fmt.Errorf("not Ready")
			}
			return nil
		})
		eventually(t, tn.name+" served by every server", func() error {
			for i, srv := range append(slices.Clone(shardServers), servers...) {
				if _, ok := srv.Published(org, tn.site); !ok {
					return fmt.Errorf("server %d does not serve %s", i, tn.name)
				}
			}
			return nil
		})
	}
	for _, tn := range tenants {
		key := ns + "/" + tn.name
		for shard, rec := range shards {
			if got, want := rec.saw(key), shard == tn.shard; got != want {
				t.Errorf("%s (shard %s) reconciled by shard %s: %v, want %v", tn.name, tn.shard, shard, got, want)
			}
		}
	}
}
