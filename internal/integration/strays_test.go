package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// A key Secret of a TenantIdentity whose labels are gone has left every
// cache, and no reconcile lists a namespace's Secrets. The manager still
// finds it: when the cache sees it leave, and, for what happened while no
// manager ran, in one scan when the controller starts. Both are shown with
// an unusable key Secret, which signet destroys once it finds it.
func TestStrayKeySecretsAreFound(t *testing.T) {
	t.Parallel()
	junk := func(t *testing.T, ti *identityv1alpha1.TenantIdentity, labelled bool) *corev1.Secret {
		t.Helper()
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ti.Namespace, Name: ti.Name + "-stray",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "TenantIdentity",
					Name: ti.Name, UID: ti.UID, Controller: ptr.To(true)}}},
			Type: "identity.signet.dev/signing-key",
			Data: map[string][]byte{"key.pem": []byte("not a key")},
		}
		if labelled {
			s.Labels = map[string]string{identityv1alpha1.LabelTenantIdentity: ti.Name, identityv1alpha1.LabelComponent: identityv1alpha1.ComponentKey}
		}
		if err := env.Client.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	destroyed := func(t *testing.T, s *corev1.Secret) {
		t.Helper()
		eventually(t, "the stray destroyed", func() error {
			err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &corev1.Secret{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%w)", err)
		})
	}

	t.Run("labels stripped while the manager runs", func(t *testing.T) {
		t.Parallel()
		tn := newTenant(t, "stray"+uuid.NewString()[:8], true)
		tn.create(t, nil)
		tn.ready(t)
		s := junk(t, tn.get(t), true)
		eventually(t, "labels stripped", func() error {
			var cur corev1.Secret
			if err := tn.c.Get(context.Background(), client.ObjectKeyFromObject(s), &cur); err != nil {
				return err
			}
			cur.Labels = nil
			return tn.c.Update(context.Background(), &cur)
		})
		destroyed(t, s)
		eventually(t, "the Event", func() error { return tn.hasEvent(t, corev1.EventTypeWarning, "StrayKeyDestroyed", s.Name) })
		tn.ready(t) // and the tenant's own keys are untouched
	})

	t.Run("labels stripped while no manager ran", func(t *testing.T) {
		t.Parallel()
		org := "stray" + uuid.NewString()[:8]
		ns := env.Namespace(t, map[string]string{identityv1alpha1.LabelOrg: org})
		ti := &identityv1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dc1", Labels: map[string]string{ownManagerLabel: "strays"}},
			Spec:       identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: uuid.NewString()},
		}
		if err := env.Client.Create(context.Background(), ti); err != nil {
			t.Fatal(err)
		}
		s := junk(t, ti, false)
		startManager(t, replica{controller: true, workers: 1, watchNamespace: ns,
			selector: labels.SelectorFromSet(labels.Set{ownManagerLabel: "strays"})})
		destroyed(t, s)
	})
}
