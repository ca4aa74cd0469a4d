package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/tenancy"
)

// The writes of one reconcile, in the order that keeps every crash and
// every failed write safe:
//
//  1. the claim record, before anything is published for the org/site;
//  2. stray key Secrets given their labels back (or destroyed);
//  3. a new key's Secret, record included, before anything refers to it;
//  4. the records of the keys, the Active one first;
//  5. the ConfigMap: a key is published before it signs;
//  6. the signing Secret: it switches only to a published key;
//  7. deletions: a key is destroyed only once it is unpublished and signs
//     no more, so a write that fails above destroys nothing;
//  8. the status, once, last.
//
// A failed write stops the reconcile: the status says ApplyFailed with the
// object and the API server's error, and what was published stays.

// carryOut writes what d decided.
func (r *TenantIdentityReconciler) carryOut(ctx context.Context, obs *observed, d *decision) (ctrl.Result, error) {
	ti := obs.ti
	if d.record != nil {
		if err := r.writeClaim(ctx, obs, *d.record); err != nil {
			return r.applyFailed(ctx, ti, err)
		}
	}
	switch {
	case d.refusal != nil:
		r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, d.refusal.reason, "Refuse", "%s", d.refusal.message)
		retry := time.Duration(0)
		if d.refusal.reason == identityv1alpha1.ReasonKeyError {
			retry = notOursRetry
		}
		return r.finish(ctx, ti, refusedStatus(ti, d.refusal, r.PublicBaseURL), retry)
	case d.invalid != nil:
		r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonInvalidSpec, "Validate", "%s", d.invalid.Error())
		return r.finish(ctx, ti, invalidSpecStatus(ti, d.invalid, r.PublicBaseURL), 0)
	}
	for _, f := range d.findings {
		r.Recorder.Eventf(ti, nil, f.typ, f.reason, "Repair", "%s", f.message)
	}
	if err := r.repairStrays(ctx, ti, d); err != nil {
		return r.applyFailed(ctx, ti, err)
	}
	r.strays.done(client.ObjectKeyFromObject(ti)) // read above: adopted, destroyed or gone
	if d.plan.Create != nil {
		cost := keyCost(d.plan.Create.Algorithm, d.plan.Create.RSAKeySize)
		if ok, retryAt := r.keyBudget().take(client.ObjectKeyFromObject(ti), cost, d.now); !ok {
			msg := fmt.Sprintf("key generation for this TenantIdentity is limited to %s of CPU a second; the next key is made at %s and nothing changes until then",
				budgetRefill, retryAt.UTC().Format(time.RFC3339))
			r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonKeyGenerationThrottled, "Generate", "%s", msg)
			return r.finish(ctx, ti, notReadyStatus(ti, identityv1alpha1.ReasonKeyGenerationThrottled, msg, r.PublicBaseURL), requeueAfter(retryAt, d.now))
		}
		if err := r.createKey(ctx, obs, d); err != nil {
			return r.applyFailed(ctx, ti, err)
		}
	}
	if err := r.apply(ctx, obs, d); err != nil {
		return r.applyFailed(ctx, ti, err)
	}
	r.emit(ti, d.plan.Events)
	st := plannedStatus(ti, d.in, d.plan, r.PublicBaseURL)
	if d.plan.Blocked != "" && !conditionIs(ti, identityv1alpha1.ReasonKeyLimitReached) {
		r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonKeyLimitReached, "Rotate", "%s", d.plan.Blocked)
	}
	return r.finish(ctx, ti, st, requeueAfter(d.plan.NextChange, d.now))
}

// conditionIs: ti's Ready condition has reason already (so its Event was
// emitted when it first did).
func conditionIs(ti *identityv1alpha1.TenantIdentity, reason string) bool {
	for _, c := range ti.Status.Conditions {
		if c.Type == identityv1alpha1.ConditionReady {
			return c.Reason == reason
		}
	}
	return false
}

// writeClaim records c as the owner of ti's org/site, in signet's own
// namespace. Two reconciles racing for a new org/site are settled here:
// one create wins, the other fails with a conflict and decides again.
func (r *TenantIdentityReconciler) writeClaim(ctx context.Context, obs *observed, c tenancy.Claim) error {
	want := tenancy.ClaimRecord(r.SystemNamespace, obs.ti.Spec.Org, obs.ti.Spec.SiteID, c)
	if obs.claimRecord == nil {
		if err := r.writer().Create(ctx, want); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return conflict(err)
			}
			return fmt.Errorf("create claim record %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil
	}
	rec := obs.claimRecord.DeepCopy()
	rec.Labels, rec.Data = want.Labels, want.Data
	if err := r.writer().Update(ctx, rec); err != nil {
		return fmt.Errorf("update claim record %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	return nil
}

// repairStrays gives the stray key Secrets of d their labels back, and
// destroys those that are signet's but unusable: no private key is left in
// the namespace where signet no longer tracks it.
func (r *TenantIdentityReconciler) repairStrays(ctx context.Context, ti *identityv1alpha1.TenantIdentity, d *decision) error {
	for _, s := range d.adopt {
		k := d.loaded[s.Annotations[annKID]]
		obj := &corev1.Secret{ObjectMeta: *s.DeepCopy()}
		patch := client.MergeFrom(obj.DeepCopy())
		if obj.Labels == nil {
			obj.Labels = map[string]string{}
		}
		maps.Copy(obj.Labels, keySecretLabels(ti, k.rec.KID))
		if err := r.writer().Patch(ctx, obj, patch); err != nil {
			return fmt.Errorf("restore the labels of key Secret %s: %w", s.Name, err)
		}
		k.secret.ObjectMeta = obj.ObjectMeta
		d.loaded[k.rec.KID] = k
	}
	for _, s := range d.destroy {
		if err := r.deleteSecret(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// createKey generates the key the plan asks for and stores it, record
// included, before anything refers to it; then completes the plan with it.
func (r *TenantIdentityReconciler) createKey(ctx context.Context, obs *observed, d *decision) error {
	ti, nk := obs.ti, d.plan.Create
	var cert *keys.CertOptions
	if ti.Spec.Keys.Certificate.Enabled {
		p := d.in.Policy
		cert = &keys.CertOptions{
			CommonName: issuer(ti, r.PublicBaseURL),
			NotBefore:  d.now.Add(-time.Minute),
			// Outlive the key's planned life (publication, signing, retention) with a period to spare.
			NotAfter: d.now.Add(p.PrePublish + 2*p.RotationPeriod + p.Retention()),
		}
	}
	m, err := r.generate()(nk.Algorithm, nk.RSAKeySize, cert)
	if err != nil {
		return fmt.Errorf("generate %s key: %w", nk.Algorithm, err)
	}
	rec := nk.Record
	rec.KID, rec.Algorithm = m.KID, m.Algorithm
	s, err := keySecret(ti, m, rec)
	if err != nil {
		return err
	}
	if err := r.writer().Create(ctx, s); err != nil {
		return fmt.Errorf("create key Secret %s: %w", s.Name, err)
	}
	d.in, d.plan = rotation.Created(d.in, d.plan, m.KID)
	d.loaded[m.KID] = loadedKey{secret: secretOf(s), rec: rec, material: m}
	return nil
}

// apply writes the records, the ConfigMap and the signing Secret the plan
// wants, then deletes what it removes.
func (r *TenantIdentityReconciler) apply(ctx context.Context, obs *observed, d *decision) error {
	plan := d.plan
	for _, k := range plan.Keys {
		if err := r.writeRecord(ctx, d.loaded[k.KID], k); err != nil {
			return err
		}
	}
	if err := r.writeConfigMap(ctx, obs, d); err != nil {
		return err
	}
	if err := r.writeSigningSecret(ctx, obs, d); err != nil {
		return err
	}
	if err := r.recordSwitch(ctx, obs, d); err != nil {
		return err
	}
	for _, kid := range plan.Delete {
		if k, ok := d.loaded[kid]; ok {
			if err := r.deleteSecret(ctx, k.secret); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordSwitch: the writes above took time, and the key the signing
// Secret held (or, without a signing Secret, the key the token API signed
// with, the first one the documents listed) stopped signing only now, not
// when the plan was made. Its retirement moves to now, so that its overlap
// counts from when it really stopped (rotation.Switched).
func (r *TenantIdentityReconciler) recordSwitch(ctx context.Context, obs *observed, d *decision) error {
	previous := signingKID(obs.signing)
	if !obs.ti.Spec.SigningSecret.IsEnabled() || previous == "" {
		previous = firstKID(obs.configMap)
	}
	if previous == "" || previous == d.plan.ActiveKID || d.plan.Suspended {
		return nil
	}
	var rec *rotation.Key
	d.plan, rec = rotation.Switched(d.in.Policy, d.plan, previous, r.Clock.Now())
	if rec == nil {
		return nil
	}
	return r.writeRecord(ctx, d.loaded[rec.KID], *rec)
}

// firstKID is the kid a JWKS ConfigMap lists first: the Active key's.
func firstKID(cm *corev1.ConfigMap) string {
	if cm == nil {
		return ""
	}
	first, _, _ := strings.Cut(cm.Annotations[identityv1alpha1.AnnotationKeyOrder], ",")
	return first
}

// writeRecord updates a key Secret's record annotations when they changed.
func (r *TenantIdentityReconciler) writeRecord(ctx context.Context, lk loadedKey, k rotation.Key) error {
	if lk.secret.Name == "" {
		return fmt.Errorf("no stored secret for key %s", k.KID)
	}
	want := recordAnnotations(k)
	if recordsEqual(storedRecord(lk.secret.Annotations), want) {
		return nil
	}
	s := &corev1.Secret{ObjectMeta: *lk.secret.DeepCopy()}
	patch := client.MergeFrom(s.DeepCopy())
	maps.DeleteFunc(s.Annotations, func(name, _ string) bool { return isRecordAnnotation(name) })
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Annotations, want)
	if err := r.writer().Patch(ctx, s, patch); err != nil {
		return fmt.Errorf("record the timeline of key %s in Secret %s: %w", k.KID, s.Name, err)
	}
	return nil
}

// writeConfigMap publishes the public halves of the plan's keys. Orphans
// keep the public key the ConfigMap already had, if it is still sound.
func (r *TenantIdentityReconciler) writeConfigMap(ctx context.Context, obs *observed, d *decision) error {
	public := map[string][]byte{}
	for _, kid := range d.plan.Published {
		if k, ok := d.loaded[kid]; ok && k.material != nil {
			jwk, err := k.material.PublicJWK()
			if err != nil {
				return fmt.Errorf("public JWK of %s: %w", kid, err)
			}
			public[kid] = jwk
			continue
		}
		if obs.configMap == nil {
			continue
		}
		if jwk := []byte(obs.configMap.Data[configMapKey(kid)]); keys.CheckPublic(jwk) == nil {
			public[kid] = jwk
		}
	}
	want := desiredConfigMap(obs.ti, obs.configMap, d.plan.Published, public, d.now)
	if obs.configMap == nil {
		if err := r.writer().Create(ctx, want); err != nil {
			return fmt.Errorf("create JWKS ConfigMap %s: %w", want.Name, err)
		}
		return nil
	}
	cm := obs.configMap.DeepCopy()
	if maps.Equal(cm.Data, want.Data) && len(cm.BinaryData) == 0 && maps.Equal(cm.Annotations, want.Annotations) &&
		labelsHave(cm.Labels, want.Labels) && cm.Immutable == nil {
		return nil
	}
	cm.Data, cm.BinaryData, cm.Annotations = want.Data, nil, want.Annotations
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	maps.Copy(cm.Labels, want.Labels)
	if err := r.writer().Update(ctx, cm); err != nil {
		if apierrors.IsInvalid(err) && cm.Immutable != nil {
			return fmt.Errorf("JWKS ConfigMap %s was made immutable by hand; delete it and signet writes it again: %w", cm.Name, err)
		}
		return fmt.Errorf("update JWKS ConfigMap %s: %w", cm.Name, err)
	}
	return nil
}

// writeSigningSecret points the signing Secret at the Active key, and
// repairs it if it was edited or deleted; with signingSecret.enabled false
// it deletes it.
func (r *TenantIdentityReconciler) writeSigningSecret(ctx context.Context, obs *observed, d *decision) error {
	ti, plan := obs.ti, d.plan
	if !ti.Spec.SigningSecret.IsEnabled() {
		if obs.signing == nil || plan.Suspended {
			return nil
		}
		return r.deleteSecret(ctx, *obs.signing)
	}
	if plan.ActiveKID == "" {
		return nil
	}
	active := d.loaded[plan.ActiveKID]
	if active.material == nil {
		if plan.Suspended {
			return nil // suspended: the signing Secret stays as it is, even when its key's Secret is gone
		}
		return fmt.Errorf("the Active key %s is not loaded", plan.ActiveKID)
	}
	want, err := signingSecret(ti, active.material)
	if err != nil {
		return err
	}
	if obs.signing == nil {
		if err := r.writer().Create(ctx, want); err != nil {
			return fmt.Errorf("create signing Secret %s: %w", want.Name, err)
		}
		return nil
	}
	s := &corev1.Secret{ObjectMeta: *obs.signing.DeepCopy(), Type: obs.signing.typ, Data: obs.signing.data}
	// The labels matter too: without them the cache, which selects by
	// label, no longer sees the Secret.
	if secretDataEqual(s.Data, want.Data) && labelsHave(s.Labels, want.Labels) && s.Annotations[annKID] == want.Annotations[annKID] {
		return nil
	}
	s.Data = want.Data
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Labels, want.Labels)
	maps.Copy(s.Annotations, want.Annotations)
	if err := r.writer().Update(ctx, s); err != nil {
		if apierrors.IsInvalid(err) {
			return fmt.Errorf("signing Secret %s cannot be updated (made immutable by hand?): %w", s.Name, err)
		}
		return fmt.Errorf("update signing Secret %s: %w", s.Name, err)
	}
	return nil
}

// deleteSecret deletes s, and only s: the UID precondition keeps a
// Secret recreated under the same name since it was read.
func (r *TenantIdentityReconciler) deleteSecret(ctx context.Context, s secret) error {
	obj := &corev1.Secret{ObjectMeta: *s.DeepCopy()}
	uid := s.UID
	if err := r.writer().Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		if apierrors.IsConflict(err) {
			return conflict(err)
		}
		return fmt.Errorf("delete Secret %s: %w", s.Name, err)
	}
	return nil
}

// finish writes the status, the last write of a reconcile, and says when to
// come back.
func (r *TenantIdentityReconciler) finish(ctx context.Context, ti *identityv1alpha1.TenantIdentity, st identityv1alpha1.TenantIdentityStatus, after time.Duration) (ctrl.Result, error) {
	r.observeTenant(ti, st)
	if statusEqual(ti.Status, st) {
		return scheduled(after), nil
	}
	if err := r.writeStatus(ctx, ti, st); err != nil {
		if isConflict(err) {
			return r.conflictRetry(ctx, err)
		}
		return ctrl.Result{}, err
	}
	return scheduled(after), nil
}

// scheduled is the result of a reconcile that comes back at a time of its
// own (the next change of its keys): at low priority, so that new and
// changed TenantIdentities (whose events have the normal priority) are not
// stuck behind the periodic work of thousands of settled ones. Coming back
// late is always safe: a key activates or leaves later, never earlier.
func scheduled(after time.Duration) ctrl.Result {
	if after <= 0 {
		return ctrl.Result{}
	}
	low := handler.LowPriority
	return ctrl.Result{RequeueAfter: after, Priority: &low}
}

// writeStatus is the one status write of a reconcile.
func (r *TenantIdentityReconciler) writeStatus(ctx context.Context, ti *identityv1alpha1.TenantIdentity, st identityv1alpha1.TenantIdentityStatus) error {
	patch := client.MergeFromWithOptions(ti.DeepCopy(), client.MergeFromWithOptimisticLock{})
	obj := ti.DeepCopy()
	obj.Status = st
	if err := r.writer().Status().Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// applyFailed records a write that failed: Ready=False, reason
// ApplyFailed, naming the object and the API server's error, a Warning
// Event and signet_reconcile_errors_total. Nothing else is written, so what
// is published stays; the reconcile is retried with backoff. An
// optimistic-lock conflict is not a failure: the reconcile read an object
// a newer write had changed, and simply runs again.
func (r *TenantIdentityReconciler) applyFailed(ctx context.Context, ti *identityv1alpha1.TenantIdentity, err error) (ctrl.Result, error) {
	if isConflict(err) {
		return r.conflictRetry(ctx, err)
	}
	msg := err.Error() + "; what is published is unchanged; retrying"
	reconcileErrors.WithLabelValues(identityv1alpha1.ReasonApplyFailed).Inc()
	r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonApplyFailed, "Apply", "%s", cappedMessage(msg))
	st := notReadyStatus(ti, identityv1alpha1.ReasonApplyFailed, msg, r.PublicBaseURL)
	r.observeTenant(ti, st)
	if !statusEqual(ti.Status, st) {
		if werr := r.writeStatus(ctx, ti, st); werr != nil {
			log.FromContext(ctx).Error(werr, "cannot record the failure in the status")
		}
	}
	log.FromContext(ctx).Error(err, "reconcile failed; retrying")
	return ctrl.Result{}, err
}

// conflictError marks an error as a lost optimistic-concurrency race.
type conflictError struct{ error }

func (e conflictError) Unwrap() error { return e.error }

func conflict(err error) error { return conflictError{err} }

func isConflict(err error) bool {
	var c conflictError
	return apierrors.IsConflict(err) || errors.As(err, &c)
}

// conflictRetry: the reconcile read from a cache a write had not reached
// yet, or raced another writer; not an error, the next reconcile reads the
// newer object.
func (r *TenantIdentityReconciler) conflictRetry(ctx context.Context, err error) (ctrl.Result, error) {
	log.FromContext(ctx).V(1).Info("object changed under us; reconciling again", "conflict", err.Error())
	return ctrl.Result{RequeueAfter: conflictRetryAfter}, nil
}

const (
	// conflictRetryAfter is how soon a reconcile that lost an
	// optimistic-lock race runs again.
	conflictRetryAfter = 200 * time.Millisecond
	// notOursRetry is how often a TenantIdentity blocked by someone else's
	// object is tried again: that object is not owned by the
	// TenantIdentity, so no watch brings it back when the object is moved.
	notOursRetry = time.Minute
)

// emit turns the policy's events into Kubernetes Events.
func (r *TenantIdentityReconciler) emit(ti *identityv1alpha1.TenantIdentity, events []rotation.Event) {
	for _, e := range events {
		r.Recorder.Eventf(ti, nil, e.Type, e.Reason, "Rotate", "%s", e.Message)
		keyEvents.WithLabelValues(e.Reason).Inc()
	}
}

func secretDataEqual(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func labelsHave(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
