// Package controllers holds the TenantIdentity reconciler: it reads what
// exists, asks the pure rotation policy what should exist, and writes it in a
// crash-safe order.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/tenancy"
)

// EventRecorder is the part of the events API the reconciler uses
// (k8s.io/client-go/tools/events.EventRecorder).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// TenantIdentityReconciler owns the keys of TenantIdentities.
type TenantIdentityReconciler struct {
	client.Client
	// APIReader reads the objects a TenantIdentity owns live (see gather);
	// the client's cache when nil.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Clock     clock.PassiveClock
	Recorder  EventRecorder
	// PublicBaseURL is where verifiers reach the JWKS server; default issuers start with it.
	PublicBaseURL string
	// OrgBinding: honour a TenantIdentity only in a namespace labelled with its org.
	OrgBinding bool
	// Generate makes a new key; keys.Generate unless a test injects another.
	Generate func(alg string, rsaBits int, cert *keys.CertOptions) (*keys.Material, error)
}

// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities,verbs=get;list;watch
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads, decides and writes; each step is a function of its own.
func (r *TenantIdentityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ti identityv1alpha1.TenantIdentity
	if err := r.Get(ctx, req.NamespacedName, &ti); err != nil {
		if apierrors.IsNotFound(err) {
			setKeyCounts(req.NamespacedName, nil)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ti.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // owner references let the garbage collector remove what it owns
	}
	obs, err := r.gather(ctx, &ti)
	if err != nil {
		return r.failed(ctx, &ti, err)
	}
	if ref := r.refusal(obs); ref != nil {
		r.Recorder.Eventf(&ti, nil, corev1.EventTypeWarning, ref.reason, "Refuse", "%s", ref.message)
		return r.finish(ctx, &ti, refusedStatus(&ti, ref, r.PublicBaseURL), 0)
	}
	now := r.Clock.Now()
	in, materials, err := r.rotationInput(ctx, obs, now)
	if err != nil {
		r.Recorder.Eventf(&ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonInvalidSpec, "Validate", "%s", err.Error())
		return r.finish(ctx, &ti, invalidSpecStatus(&ti, err, r.PublicBaseURL), 0)
	}
	plan := rotation.Decide(in)
	if plan.Create != nil {
		if in, err = r.createKey(ctx, obs, in, plan.Create, materials); err != nil {
			return r.failed(ctx, &ti, err)
		}
		// The events are those of the decision that asked for the key: the
		// re-plan repeats its decisions, so its events would repeat them.
		created := plan.Events
		plan = rotation.Decide(in)
		plan.Events = created
	}
	if err := r.apply(ctx, obs, plan, materials); err != nil {
		return r.failed(ctx, &ti, err)
	}
	r.emit(&ti, plan.Events)
	recordMetrics(&ti, plan)
	return r.finish(ctx, &ti, plannedStatus(&ti, in, plan, r.PublicBaseURL), requeueAfter(plan.NextChange, now))
}

// finish writes the status, the last write of a reconcile, and says when to
// come back.
func (r *TenantIdentityReconciler) finish(ctx context.Context, ti *identityv1alpha1.TenantIdentity, st identityv1alpha1.TenantIdentityStatus, after time.Duration) (ctrl.Result, error) {
	if err := r.writeStatus(ctx, ti, st); err != nil {
		return r.failed(ctx, ti, err)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// refusal says whether ti may publish at all.
func (r *TenantIdentityReconciler) refusal(obs *observed) *refusal {
	if ref := orgBindingRefusal(obs.ti, obs.namespaceLabels, r.OrgBinding); ref != nil {
		return ref
	}
	return conflictRefusal(obs.ti, boundClaims(obs.claimants, obs.claimantNamespaceLabels, r.OrgBinding))
}

// requeueAfter wakes the reconciler when the plan next changes. The
// reconciler's clock may be fake; the wait is measured on it.
func requeueAfter(next, now time.Time) time.Duration {
	if next.IsZero() {
		return 0
	}
	if d := next.Sub(now); d > 0 {
		return d
	}
	return time.Millisecond
}

// notOursRetry is how often a TenantIdentity blocked by someone else's
// object is tried again: that object is not owned by the TenantIdentity, so
// no watch brings it back when the object is moved.
const notOursRetry = time.Minute

// failed records an error that stops this reconcile: objects signet must not
// overwrite become a condition, checked again after a while; anything else
// is retried with backoff.
func (r *TenantIdentityReconciler) failed(ctx context.Context, ti *identityv1alpha1.TenantIdentity, err error) (ctrl.Result, error) {
	var notOurs errNotOurs
	if errors.As(err, &notOurs) {
		r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonKeyError, "Reconcile", "%s", err.Error())
		st := baseStatus(ti, r.PublicBaseURL)
		setCondition(&st, ti, identityv1alpha1.ConditionReady, "False", identityv1alpha1.ReasonKeyError, err.Error())
		if werr := r.writeStatus(ctx, ti, st); werr != nil {
			return r.failed(ctx, ti, werr)
		}
		return ctrl.Result{RequeueAfter: notOursRetry}, nil
	}
	if apierrors.IsConflict(err) {
		// We read from a cache a write of ours has not reached yet: not an
		// error, the next reconcile reads the newer object.
		log.FromContext(ctx).V(1).Info("object changed under us; reconciling again", "conflict", err.Error())
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	log.FromContext(ctx).Error(err, "reconcile failed; retrying")
	return ctrl.Result{}, err
}

// conflictRetry is how soon a reconcile that lost an optimistic-lock race
// runs again.
const conflictRetry = 200 * time.Millisecond

// writeStatus is the one status write of a reconcile.
func (r *TenantIdentityReconciler) writeStatus(ctx context.Context, ti *identityv1alpha1.TenantIdentity, st identityv1alpha1.TenantIdentityStatus) error {
	patch := client.MergeFromWithOptions(ti.DeepCopy(), client.MergeFromWithOptimisticLock{})
	ti.Status = st
	if err := r.Status().Patch(ctx, ti, patch); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// emit turns the policy's events into Kubernetes Events.
func (r *TenantIdentityReconciler) emit(ti *identityv1alpha1.TenantIdentity, events []rotation.Event) {
	for _, e := range events {
		r.Recorder.Eventf(ti, nil, e.Type, e.Reason, "Rotate", "%s", e.Message)
	}
}

// SecretCacheOptions is how the manager's cache must select Secrets: by the
// label signet puts on its own, so it never holds every Secret of the cluster.
func SecretCacheOptions() cache.ByObject {
	managed, err := labels.NewRequirement(identityv1alpha1.LabelTenantIdentity, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant requirement
	}
	return cache.ByObject{Label: labels.NewSelector().Add(*managed)}
}

// SetupWithManager watches TenantIdentities, what they own, their
// namespaces (org binding) and their rivals for the same org/site.
func (r *TenantIdentityReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := tenancy.RegisterOrgSite(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if r.Generate == nil {
		r.Generate = keys.Generate
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.TenantIdentity{}).
		Owns(&corev1.Secret{}).
		Owns(&corev1.ConfigMap{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.tenantsInNamespace)).
		Watches(&identityv1alpha1.TenantIdentity{}, handler.EnqueueRequestsFromMapFunc(r.rivals)).
		Named("tenantidentity").
		Complete(r)
}

// tenantsInNamespace: a namespace's org label decides its TenantIdentities,
// and whether they compete with their rivals elsewhere.
func (r *TenantIdentityReconciler) tenantsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list identityv1alpha1.TenantIdentityList
	if err := r.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		return nil
	}
	requests := requestsFor(list.Items)
	for i := range list.Items {
		requests = append(requests, r.rivals(ctx, &list.Items[i])...)
	}
	return requests
}

// rivals: when one claim on an org/site changes (say the winner is deleted),
// the others must decide again.
func (r *TenantIdentityReconciler) rivals(ctx context.Context, o client.Object) []reconcile.Request {
	ti := o.(*identityv1alpha1.TenantIdentity)
	var list identityv1alpha1.TenantIdentityList
	if err := r.List(ctx, &list, client.MatchingFields{tenancy.OrgSiteField: tenancy.OrgSite(ti.Spec.Org, ti.Spec.SiteID)}); err != nil {
		return nil
	}
	return requestsFor(list.Items)
}

func requestsFor(items []identityv1alpha1.TenantIdentity) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(items))
	for _, ti := range items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ti)})
	}
	return out
}
