package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// keyOwner is the TenantIdentity that controls a Secret, if any.
func keyOwner(o metav1.Object) (types.NamespacedName, bool) {
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil || ref.Kind != "TenantIdentity" || ref.APIVersion != identityv1alpha1.GroupVersion.String() {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}, true
}

// noteLeft is the handler of a Secret leaving the cache: deleted, or its
// labels stripped. Its TenantIdentity's next reconcile reads it by name:
// gone, nothing happens; a stray, it is adopted or destroyed.
func (r *TenantIdentityReconciler) noteLeft(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, ok := keyOwner(e.Object)
	if !ok || e.Object.GetName() == identityv1alpha1.SigningSecretName(owner.Name) {
		return
	}
	r.strays.note(owner, []string{e.Object.GetName()})
	q.Add(reconcile.Request{NamespacedName: owner})
}

// strayScan looks, once when the controller starts, for the key Secrets
// whose labels were stripped while no manager watched: one list of the
// metadata of signet's key Secrets (their type is a field the API server
// selects on), a page at a time. What it finds is noted for the owner's
// reconcile, which it triggers.
type strayScan struct {
	r      *TenantIdentityReconciler
	reader client.Reader
	// found feeds the controller (a channel source): a send waits until
	// the controller reads it.
	found chan<- event.GenericEvent
}

// NeedLeaderElection: the scan feeds the controller, which runs in the
// leader.
func (s *strayScan) NeedLeaderElection() bool { return true }

func (s *strayScan) Start(ctx context.Context) error {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	opts := []client.ListOption{client.MatchingFields{"type": string(secretTypeKey)}, client.Limit(500), client.InNamespace(s.r.WatchNamespace)}
	for {
		if err := s.reader.List(ctx, list, opts...); err != nil {
			// Not fatal: the strays are noted when the cache sees them leave.
			log.FromContext(ctx).Error(err, "cannot scan for stray key Secrets")
			return nil
		}
		for i := range list.Items {
			m := &list.Items[i]
			if owner, ok := keyOwner(m); ok && isStray(m, owner.Name) {
				s.r.strays.note(owner, []string{m.Name})
				ti := &identityv1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{Namespace: owner.Namespace, Name: owner.Name}}
				select {
				case s.found <- event.GenericEvent{Object: ti}:
				case <-ctx.Done():
					return nil
				}
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts = append(opts[:3:3], client.Continue(list.Continue))
	}
}
