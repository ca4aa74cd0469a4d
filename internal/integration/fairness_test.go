package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// One tenant's churn does not hold the others back: a tenant whose key
// generation never ends (an RSA key here, held until the test lets it go,
// as a flood of RSA-4096 keys would hold a worker) occupies one reconcile
// worker; a quiet tenant's rotationTrigger is still acted on, by the other
// workers, while it lasts. With a single worker it would wait behind it.
func TestChurnDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	org := "fair" + uuid.NewString()[:8]
	ns := env.Namespace(t, map[string]string{identityv1alpha1.LabelOrg: org})
	churning := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	startManager(t, replica{controller: true, workers: 2, watchNamespace: ns,
		generate: func(alg string, rsaBits int, cert *keys.CertOptions) (*keys.Material, error) {
			if keys.IsRSA(alg) {
				select {
				case churning <- struct{}{}:
				default:
				}
				<-release
			}
			return keys.Generate(alg, rsaBits, cert)
		},
	})
	create := func(name string, alg identityv1alpha1.Algorithm) {
		ti := &identityv1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{ownManagerLabel: "fairness"}},
			Spec:       identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: uuid.NewString(), Keys: identityv1alpha1.KeyPolicy{Algorithm: alg}},
		}
		if err := env.Client.Create(context.Background(), ti); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) *identityv1alpha1.TenantIdentity {
		var ti identityv1alpha1.TenantIdentity
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &ti); err != nil {
			t.Fatal(err)
		}
		return &ti
	}
	create("quiet", identityv1alpha1.Algorithm(keys.ES256))
	eventually(t, "the quiet tenant's first key", func() error {
		if get("quiet").Status.ActiveKeyID == "" {
			return fmt.Errorf("no Active key yet")
		}
		return nil
	})
	create("churn", identityv1alpha1.Algorithm(keys.RS256))
	<-churning // a worker is now held by the churning tenant
	eventually(t, "trigger the quiet tenant", func() error {
		ti := get("quiet")
		ti.Spec.RotationTrigger = "now"
		return env.Client.Update(context.Background(), ti)
	})
	eventually(t, "the quiet tenant's trigger acted on while the churn holds a worker", func() error {
		for _, k := range get("quiet").Status.Keys {
			if k.State == identityv1alpha1.KeyStateNext {
				return nil
			}
		}
		return fmt.Errorf("no Next key yet")
	})
	if get("churn").Status.ActiveKeyID != "" {
		t.Fatal("the churning tenant was not held")
	}
}
