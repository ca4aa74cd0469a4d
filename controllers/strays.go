package controllers

import (
	"context"
	"slices"
	"time"

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

// reconciledOwner is the owner of a key Secret that may be a stray, when
// this instance reconciles it: one in the cache, selected by
// --tenant-selector and not being deleted. Nothing is noted for another
// shard's TenantIdentities, nor for one that is gone.
func (r *TenantIdentityReconciler) reconciledOwner(ctx context.Context, o metav1.Object) (types.NamespacedName, bool) {
	owner, ok := keyOwner(o)
	if !ok || o.GetName() == identityv1alpha1.SigningSecretName(owner.Name) {
		return owner, false
	}
	var ti identityv1alpha1.TenantIdentity
	if err := r.Get(ctx, owner, &ti); err != nil || ti.DeletionTimestamp != nil || !r.selects(&ti) {
		return owner, false
	}
	return owner, true
}

// noteLeft is the handler of a Secret leaving the cache: deleted, or the
// label the cache selects on stripped. Its TenantIdentity's next reconcile
// reads it by name: gone, nothing happens; a stray, it is adopted or
// destroyed.
func (r *TenantIdentityReconciler) noteLeft(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	r.noteStray(ctx, e.Object, q)
}

// noteRelabelled is the handler of a Secret that stays in the cache but
// whose labels no longer say it is its TenantIdentity's key (another
// component, another TenantIdentity's name): the cache index no longer
// lists it under its owner.
func (r *TenantIdentityReconciler) noteRelabelled(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, ok := keyOwner(e.ObjectNew)
	if ok && slices.Equal(keySecretsOf(e.ObjectOld), []string{owner.Name}) && isStray(e.ObjectNew, owner.Name) {
		r.noteStray(ctx, e.ObjectNew, q)
	}
}

func (r *TenantIdentityReconciler) noteStray(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, ok := r.reconciledOwner(ctx, o)
	if !ok {
		return
	}
	r.strays.note(owner, []string{o.GetName()})
	q.Add(reconcile.Request{NamespacedName: owner})
}

// strayScan looks, once when the controller starts, for the key Secrets
// whose labels were stripped while no manager watched: one list of the
// metadata of signet's key Secrets (their type is a field the API server
// selects on), a page at a time, after the cache has synced (a stray the
// scan misses then leaves the cache while it watches). What it finds is
// noted for the owner's reconcile, which it triggers. A failed list is
// tried again from the start, with backoff, until it succeeds.
type strayScan struct {
	r         *TenantIdentityReconciler
	reader    client.Reader
	namespace string                         // --watch-namespace; all when ""
	synced    func(ctx context.Context) bool // the manager's cache; nil: do not wait
	// found feeds the controller (a channel source): a send waits until
	// the controller reads it.
	found chan<- event.GenericEvent
}

// NeedLeaderElection: the scan feeds the controller, which runs in the
// leader.
func (s *strayScan) NeedLeaderElection() bool { return true }

func (s *strayScan) Start(ctx context.Context) error {
	if s.synced != nil && !s.synced(ctx) {
		return nil // stopped before the cache synced
	}
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		err := s.scan(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopping: not a failure of the manager
		}
		log.FromContext(ctx).Error(err, "cannot scan for stray key Secrets; trying again", "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// scan is one pass over every page.
func (s *strayScan) scan(ctx context.Context) error {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	opts := []client.ListOption{client.MatchingFields{"type": string(secretTypeKey)}, client.Limit(500), client.InNamespace(s.namespace)}
	for {
		if err := s.reader.List(ctx, list, opts...); err != nil {
			return err // an expired continue token too: the pass starts again
		}
		for i := range list.Items {
			m := &list.Items[i]
			owner, ok := keyOwner(m)
			if !ok || !isStray(m, owner.Name) {
				continue
			}
			if owner, ok = s.r.reconciledOwner(ctx, m); !ok {
				continue
			}
			s.r.strays.note(owner, []string{m.Name})
			ti := &identityv1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{Namespace: owner.Namespace, Name: owner.Name}}
			select {
			case s.found <- event.GenericEvent{Object: ti}:
			case <-ctx.Done():
				return nil
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts = append(opts[:3:3], client.Continue(list.Continue))
	}
}
