// Package controllers holds the TenantIdentity reconciler. One reconcile
// observes (observe.go: every read, into one struct), decides (decide.go,
// status.go: pure functions, the key lifecycle in internal/rotation) and
// writes (write.go: in the crash-safe order), with the objects it makes
// built in objects.go.
package controllers

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/managedfields"
	"github.com/signet-dev/signet/internal/tenancy"
)

// EventRecorder is the part of the events API the reconciler uses
// (k8s.io/client-go/tools/events.EventRecorder).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// TenantIdentityReconciler owns the keys of TenantIdentities.
type TenantIdentityReconciler struct {
	// Client reads through the manager's cache (which holds Secrets as
	// metadata only) and writes.
	client.Client
	// APIReader reads live from the API server (see observe.go); the
	// Client when nil.
	APIReader client.Reader
	// Clock is the time decisions and records use: the API server's
	// (internal/apiclock) in the manager, a fake one in tests.
	Clock    clock.PassiveClock
	Recorder EventRecorder
	// PublicBaseURL is where verifiers reach the JWKS server; default issuers start with it.
	PublicBaseURL string
	// OrgBinding: honour a TenantIdentity only in a namespace labelled with its org.
	OrgBinding bool
	// SystemNamespace is signet's own namespace, where it keeps the claim
	// records of org/sites (no tenant writes there).
	SystemNamespace string
	// SigningPropagation is how long a workload that mounts the signing
	// Secret may go on signing with a replaced key (kubelet's refresh of
	// mounted Secrets); a replaced key's overlap counts from then.
	SigningPropagation time.Duration
	// WatchNamespace, when set, is the one namespace this instance
	// watches (--watch-namespace); all when empty.
	WatchNamespace string
	// TenantSelector, when set, limits this instance to the
	// TenantIdentities it matches (one shard of several).
	TenantSelector labels.Selector
	// MaxConcurrentReconciles is how many TenantIdentities are reconciled
	// at once (1 when zero).
	MaxConcurrentReconciles int
	// Generate makes a new key; keys.Generate when nil.
	Generate func(alg string, rsaBits int, cert *keys.CertOptions) (*keys.Material, error)

	budgetOnce sync.Once
	budget     *keyBudget
	strays     strayNotes
}

// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities,verbs=get;list;watch
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile observes, decides and writes. It decides first on the cache's
// view and stops there when that changes nothing (no private key read, no
// write); otherwise it observes live and writes what the live view needs.
func (r *TenantIdentityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ti identityv1alpha1.TenantIdentity
	if err := r.Get(ctx, req.NamespacedName, &ti); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return ctrl.Result{}, r.forget(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if ti.DeletionTimestamp != nil || !r.selects(&ti) {
		r.strays.done(req.NamespacedName)
		return ctrl.Result{}, nil // owner references let the garbage collector remove what it owns
	}
	obs, err := r.observe(ctx, &ti, r.cached())
	if err != nil {
		return ctrl.Result{}, err
	}
	strays := len(r.strays.of(req.NamespacedName)) > 0 // noted by a scan: read them live
	if d := r.decide(obs); !strays && d.settled(obs, r.statusOf(obs, d), ti.Spec.SigningSecret.IsEnabled()) {
		r.observeTenant(obs.ti, obs.ti.Status)
		return scheduled(r.requeueOf(d)), nil
	}
	if obs, err = r.observe(ctx, &ti, r.liveSource()); err != nil {
		return ctrl.Result{}, err
	}
	return r.carryOut(ctx, obs, r.decide(obs))
}

// statusOf is the status d leads to when it is carried out as it is.
func (r *TenantIdentityReconciler) statusOf(obs *observed, d *decision) identityv1alpha1.TenantIdentityStatus {
	switch {
	case d.refusal != nil:
		return refusedStatus(obs.ti, d.refusal, r.PublicBaseURL)
	case d.invalid != nil:
		return invalidSpecStatus(obs.ti, d.invalid, r.PublicBaseURL)
	}
	return plannedStatus(obs.ti, d.in, d.plan, r.PublicBaseURL)
}

// requeueOf is when a settled TenantIdentity must be looked at again.
func (r *TenantIdentityReconciler) requeueOf(d *decision) time.Duration {
	if d.refusal != nil && d.refusal.reason == identityv1alpha1.ReasonKeyError {
		return notOursRetry
	}
	return requeueAfter(d.plan.NextChange, d.now)
}

// selects says whether this instance reconciles ti (--tenant-selector).
func (r *TenantIdentityReconciler) selects(ti *identityv1alpha1.TenantIdentity) bool {
	return r.TenantSelector == nil || r.TenantSelector.Matches(labels.Set(ti.Labels))
}

// forget drops what is kept about a deleted TenantIdentity: its metrics,
// its key budget, and the claim records that name it when no other claim
// is left to take its org/site over (a rival reconciles and records itself
// otherwise).
func (r *TenantIdentityReconciler) forget(ctx context.Context, tenant types.NamespacedName) error {
	forgetTenant(tenant)
	r.keyBudget().forget(tenant)
	r.strays.done(tenant)
	if r.SystemNamespace == "" {
		return nil
	}
	var records corev1.ConfigMapList
	if err := r.List(ctx, &records, client.InNamespace(r.SystemNamespace), client.MatchingLabels{
		identityv1alpha1.LabelComponent:      tenancy.ComponentClaim,
		identityv1alpha1.LabelTenantIdentity: tenant.Name,
		tenancy.LabelOwnerNamespace:          tenant.Namespace,
	}); err != nil {
		return err
	}
	for i := range records.Items {
		rec := &records.Items[i]
		var claims identityv1alpha1.TenantIdentityList
		orgSite := tenancy.OrgSite(rec.Labels[identityv1alpha1.LabelOrg], rec.Labels[identityv1alpha1.LabelSite])
		if err := r.List(ctx, &claims, client.MatchingFields{tenancy.OrgSiteField: orgSite}); err != nil {
			return err
		}
		if len(claims.Items) > 0 {
			continue
		}
		uid, rv := rec.UID, rec.ResourceVersion
		if err := r.writer().Delete(ctx, rec, client.Preconditions{UID: &uid, ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil && !isConflict(err) {
			return err
		}
	}
	return nil
}

// writer is the client signet writes with: every write is recorded under
// signet's field manager (internal/managedfields).
func (r *TenantIdentityReconciler) writer() client.Client {
	return client.WithFieldOwner(r.Client, managedfields.Signet)
}

func (r *TenantIdentityReconciler) generate() func(string, int, *keys.CertOptions) (*keys.Material, error) {
	if r.Generate == nil {
		return keys.Generate
	}
	return r.Generate
}

func (r *TenantIdentityReconciler) keyBudget() *keyBudget {
	r.budgetOnce.Do(func() { r.budget = &keyBudget{} })
	return r.budget
}

// SetupWithManager watches TenantIdentities, what they own (Secrets as
// metadata only), their namespaces (org binding), their rivals for the
// same org/site and the claim records.
func (r *TenantIdentityReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := cacheopts.IndexOrgSite(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := cacheopts.IndexField(ctx, mgr.GetCache(), cacheopts.SecretMetadata(), keySecretsField, cacheopts.WithinNamespace, keySecretsOf); err != nil {
		return err
	}
	selected := predicate.NewPredicateFuncs(func(o client.Object) bool {
		ti, ok := o.(*identityv1alpha1.TenantIdentity)
		return !ok || r.selects(ti)
	})
	strays := make(chan event.GenericEvent, 64)
	scan := &strayScan{r: r, reader: mgr.GetAPIReader(), namespace: r.WatchNamespace, synced: mgr.GetCache().WaitForCacheSync, found: strays}
	if err := mgr.Add(scan); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.TenantIdentity{}, builder.WithPredicates(selected)).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.Funcs{UpdateFunc: r.noteRelabelled, DeleteFunc: r.noteLeft}, builder.OnlyMetadata).
		WatchesRawSource(crsource.Channel(strays, &handler.EnqueueRequestForObject{})).
		Owns(&corev1.ConfigMap{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.tenantsInNamespace)).
		Watches(&identityv1alpha1.TenantIdentity{}, handler.EnqueueRequestsFromMapFunc(r.rivals)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.claimants)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
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

// rivals: when one claim on an org/site changes (say the owner is deleted),
// the others must decide again.
func (r *TenantIdentityReconciler) rivals(ctx context.Context, o client.Object) []reconcile.Request {
	ti := o.(*identityv1alpha1.TenantIdentity)
	return r.claimsOn(ctx, ti.Spec.Org, ti.Spec.SiteID)
}

// claimants: a claim record changed (or was deleted): every claim on its
// org/site decides again.
func (r *TenantIdentityReconciler) claimants(ctx context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if o.GetNamespace() != r.SystemNamespace || l[identityv1alpha1.LabelComponent] != tenancy.ComponentClaim {
		return nil
	}
	return r.claimsOn(ctx, l[identityv1alpha1.LabelOrg], l[identityv1alpha1.LabelSite])
}

func (r *TenantIdentityReconciler) claimsOn(ctx context.Context, org, site string) []reconcile.Request {
	var list identityv1alpha1.TenantIdentityList
	if err := r.List(ctx, &list, client.MatchingFields{tenancy.OrgSiteField: tenancy.OrgSite(org, site)}); err != nil {
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
