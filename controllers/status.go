package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

// Status is computed by pure functions from what the reconcile decided, and
// written once at its end.

// refusedStatus: the TenantIdentity may not publish (org not bound, or
// another owns its org/site), or an object signet needs is someone else's.
// Its keys are kept (nothing is lost); a refused claim is not served.
func refusedStatus(ti *identityv1alpha1.TenantIdentity, r *refusal, publicBaseURL string) identityv1alpha1.TenantIdentityStatus {
	st := baseStatus(ti, publicBaseURL)
	setCondition(&st, ti, identityv1alpha1.ConditionReady, metav1.ConditionFalse, r.reason, r.message)
	if r.reason != identityv1alpha1.ReasonKeyError {
		setCondition(&st, ti, identityv1alpha1.ConditionPublished, metav1.ConditionFalse, r.reason, "nothing is served for this TenantIdentity: "+r.message)
	}
	return st
}

// invalidSpecStatus: a spec the controller cannot apply. Nothing changes:
// keys, documents and the Published condition stay as they were.
func invalidSpecStatus(ti *identityv1alpha1.TenantIdentity, err error, publicBaseURL string) identityv1alpha1.TenantIdentityStatus {
	return notReadyStatus(ti, identityv1alpha1.ReasonInvalidSpec, err.Error()+"; keys and documents are left as they were", publicBaseURL)
}

// notReadyStatus: the reconcile could not carry its plan out (a write
// failed, or key generation is throttled); what is published stays.
func notReadyStatus(ti *identityv1alpha1.TenantIdentity, reason, msg, publicBaseURL string) identityv1alpha1.TenantIdentityStatus {
	st := baseStatus(ti, publicBaseURL)
	setCondition(&st, ti, identityv1alpha1.ConditionReady, metav1.ConditionFalse, reason, cappedMessage(msg))
	return st
}

// plannedStatus: the plan was carried out.
func plannedStatus(ti *identityv1alpha1.TenantIdentity, in rotation.Input, plan rotation.Plan, publicBaseURL string) identityv1alpha1.TenantIdentityStatus {
	st := baseStatus(ti, publicBaseURL)
	st.ActiveKeyID = plan.ActiveKID
	st.LastRotationTrigger = plan.HandledTrigger
	st.Keys = keyStatuses(ti, in.Policy, plan)
	st.NextRotationTime = nil // nothing is scheduled while suspended
	if t := nextRotation(in.Policy, plan); !t.IsZero() && !plan.Suspended {
		st.NextRotationTime = timeOrNil(t)
	}
	ready, reason, msg := metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished,
		fmt.Sprintf("%d key(s) published; %s signs", len(plan.Published), plan.ActiveKID)
	if !ti.Spec.SigningSecret.IsEnabled() {
		msg += "; no signing Secret: tokens come from the token API only"
	}
	switch {
	case plan.Suspended:
		reason, msg = identityv1alpha1.ReasonSuspended, "suspended: no key is created, activated, removed or revoked"
		if len(plan.PendingRevocations) > 0 {
			msg += "; revocations pending until resumed: " + strings.Join(plan.PendingRevocations, ", ")
		}
	case plan.Blocked != "":
		ready, reason, msg = metav1.ConditionFalse, identityv1alpha1.ReasonKeyLimitReached, plan.Blocked
	}
	setCondition(&st, ti, identityv1alpha1.ConditionReady, ready, reason, msg)
	if len(plan.Published) > 0 {
		setCondition(&st, ti, identityv1alpha1.ConditionPublished, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished,
			fmt.Sprintf("the documents list %d key(s)", len(plan.Published)))
	} else {
		setCondition(&st, ti, identityv1alpha1.ConditionPublished, metav1.ConditionFalse, identityv1alpha1.ReasonNoKeys, "no key to publish")
	}
	return st
}

// statusEqual: writing b over a would change nothing.
func statusEqual(a, b identityv1alpha1.TenantIdentityStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// baseStatus carries over what a reconcile does not recompute and fills the
// fields every status has.
func baseStatus(ti *identityv1alpha1.TenantIdentity, publicBaseURL string) identityv1alpha1.TenantIdentityStatus {
	st := *ti.Status.DeepCopy()
	st.ObservedGeneration = ti.Generation
	st.Issuer = issuer(ti, publicBaseURL)
	st.JWKSURI = jwksURI(ti, publicBaseURL)
	return st
}

func setCondition(st *identityv1alpha1.TenantIdentityStatus, ti *identityv1alpha1.TenantIdentity, typ string, status metav1.ConditionStatus, reason, msg string) {
	// A transition's time in whole seconds, as the API server stores it
	// (kept as it is while the status stays the same).
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: ti.Generation,
		LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second)),
	})
}

// keyStatuses lists the keys in document order, with their timeline as it
// stands: a Next key's activation is when it will really be allowed to sign.
func keyStatuses(ti *identityv1alpha1.TenantIdentity, p rotation.Policy, plan rotation.Plan) []identityv1alpha1.KeyStatus {
	activation := nextActivation(p, plan)
	out := make([]identityv1alpha1.KeyStatus, 0, len(plan.Keys)+len(plan.Orphans))
	for _, k := range plan.Keys {
		ks := identityv1alpha1.KeyStatus{
			KID: k.KID, Algorithm: identityv1alpha1.Algorithm(k.Algorithm), State: identityv1alpha1.KeyState(k.State),
			PublishedAt: timeOrNil(k.PublishedAt), ActivatesAt: timeOrNil(k.ActivatesAt),
		}
		ks.SecretName, _ = keySecretName(ti, k.KID)
		switch k.State {
		case rotation.Next:
			ks.ActivatesAt = timeOrNil(k.EligibleAt(p.PrePublish))
		case rotation.Active:
			retires := k.RotatesAt
			if !activation.IsZero() {
				retires = activation
			}
			ks.RetiresAt = timeOrNil(retires)
			ks.RemovesAt = removalOrNil(retires.Add(p.Retention()))
		case rotation.Retired:
			ks.RetiresAt, ks.RemovesAt = timeOrNil(k.RetiredAt), removalOrNil(k.RemovesAt)
		}
		out = append(out, ks)
	}
	for _, o := range plan.Orphans {
		out = append(out, identityv1alpha1.KeyStatus{
			KID: o.KID, Algorithm: identityv1alpha1.Algorithm(o.Algorithm), State: identityv1alpha1.KeyStateRetired,
			RetiresAt: timeOrNil(o.RetiredAt), RemovesAt: removalOrNil(o.RemovesAt),
		})
	}
	return out
}

// nextActivation is when the first Next key of the plan takes over; zero
// when there is none.
func nextActivation(p rotation.Policy, plan rotation.Plan) time.Time {
	for _, k := range plan.Keys {
		if k.State == rotation.Next {
			return k.EligibleAt(p.PrePublish)
		}
	}
	return time.Time{}
}

// nextRotation is when the Active key is next replaced: the Next key's
// activation, or the Active key's scheduled rotation.
func nextRotation(p rotation.Policy, plan rotation.Plan) time.Time {
	if t := nextActivation(p, plan); !t.IsZero() {
		return t
	}
	for _, k := range plan.Keys {
		if k.State == rotation.Active {
			return k.RotatesAt
		}
	}
	return time.Time{}
}

// timeOrNil is a time as the status stores it: metav1.Time keeps whole
// seconds, so the status computed is the status read back, and a
// reconcile that changes nothing finds it equal and writes nothing.
func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: t.Truncate(time.Second)}
}

// removalOrNil is a removal time as the status keeps it: metav1.Time drops
// the fraction of a second, and an orphan's removal is read back from the
// status, so it is rounded up, never down (a key is never unpublished
// before its overlap ends).
func removalOrNil(t time.Time) *metav1.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return timeOrNil(t)
}
