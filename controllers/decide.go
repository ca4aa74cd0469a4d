package controllers

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/managedfields"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/tenancy"
)

// The decisions of one reconcile: small pure functions over what observe
// read. Nothing here reads or writes the cluster.

// decision is what a reconcile decided from one observation.
type decision struct {
	now time.Time

	// Tenancy: whether ti may publish at all, and the claim record to
	// write (nil when the record stands as it is).
	refusal *refusal
	record  *tenancy.Claim

	// invalid: the spec cannot be applied; nothing changes.
	invalid error

	// The key lifecycle: the policy's input and plan, the keys as loaded by
	// kid, the stray key Secrets to re-label and those to destroy.
	in      rotation.Input
	plan    rotation.Plan
	loaded  map[string]loadedKey
	adopt   []secret
	destroy []secret

	// findings are what reading showed, for Events: unreadable Secrets,
	// dropped kids, strays.
	findings []finding
}

// loadedKey is one stored key: its Secret, record and (when read live) key.
type loadedKey struct {
	secret   secret
	rec      rotation.Key
	material *keys.Material
}

// finding is an Event about what a reconcile found rather than decided
// about a key's life.
type finding struct {
	typ, reason, message string
}

// refusal is why a TenantIdentity may not publish (or signet may not touch
// an object), as a condition reason and a message for humans.
type refusal struct {
	reason, message string
}

// decide is the whole decision of one reconcile over obs. Its time is read
// once the keys are loaded, right before the policy decides: a key it
// retires stops signing when the writes that follow switch the signing
// Secret, and its overlap must not have begun long before.
func (r *TenantIdentityReconciler) decide(obs *observed) *decision {
	d := &decision{now: r.Clock.Now()}
	ti := obs.ti
	owner := tenancy.Owner(recordOf(obs), obs.claims, func(ns string) map[string]string { return obs.claimLabels[ns] }, r.OrgBinding)
	if owner != nil && (obs.claimRecord == nil || !sameClaim(obs, owner)) {
		c := tenancy.Of(owner)
		d.record = &c
	}
	if d.refusal = cmp.Or(orgBindingRefusal(ti, obs.namespaceLabels, r.OrgBinding), conflictRefusal(ti, owner), notOurs(obs)); d.refusal != nil {
		return d
	}
	policy, err := policyFromSpec(ti.Spec, r.SigningPropagation)
	if err == nil {
		err = tenancy.IssuerError(ti.Spec.Issuer, r.PublicBaseURL, ti.Spec.Org, ti.Spec.SiteID)
	}
	if err != nil {
		d.invalid = err
		return d
	}
	d.in = r.rotationInput(obs, d, policy)
	d.now = r.Clock.Now()
	d.in.Now = d.now
	d.plan = rotation.Decide(d.in)
	return d
}

// recordOf is the claim the record holds, nil when there is none.
func recordOf(obs *observed) *tenancy.Claim {
	c, ok := tenancy.ClaimOf(obs.claimRecord, obs.ti.Spec.Org, obs.ti.Spec.SiteID)
	if !ok {
		return nil
	}
	return &c
}

func sameClaim(obs *observed, owner *identityv1alpha1.TenantIdentity) bool {
	c := recordOf(obs)
	return c != nil && *c == tenancy.Of(owner)
}

// orgBindingRefusal: with org binding on, the namespace must carry the org
// label with the TenantIdentity's org (set by the cluster admin), so a tenant
// cannot claim another tenant's org by naming it.
func orgBindingRefusal(ti *identityv1alpha1.TenantIdentity, namespaceLabels map[string]string, bindingOn bool) *refusal {
	if tenancy.Bound(ti, namespaceLabels, bindingOn) {
		return nil
	}
	bound, ok := namespaceLabels[identityv1alpha1.LabelOrg]
	if !ok {
		return &refusal{identityv1alpha1.ReasonOrgNotBound, fmt.Sprintf(
			"namespace %s has no label %s; a cluster admin must set it to %q to let this namespace publish keys for org %q",
			ti.Namespace, identityv1alpha1.LabelOrg, ti.Spec.Org, ti.Spec.Org)}
	}
	return &refusal{identityv1alpha1.ReasonOrgNotBound, fmt.Sprintf(
		"namespace %s is bound to org %q by its label %s, not to %q", ti.Namespace, bound, identityv1alpha1.LabelOrg, ti.Spec.Org)}
}

// conflictRefusal refuses ti when another TenantIdentity owns its org/site
// (tenancy.Owner: the recorded owner while it stands, else the oldest bound
// claim).
func conflictRefusal(ti *identityv1alpha1.TenantIdentity, owner *identityv1alpha1.TenantIdentity) *refusal {
	if owner == nil || owner.UID == ti.UID {
		return nil
	}
	return &refusal{identityv1alpha1.ReasonConflict, fmt.Sprintf(
		"org %q site %q is owned by the TenantIdentity %s/%s, which claimed it first; this one publishes nothing until that one is deleted or its namespace unbound",
		ti.Spec.Org, ti.Spec.SiteID, owner.Namespace, owner.Name)}
}

// notOurs refuses to go on when an object with a name signet needs exists
// but ti does not control it: signet never overwrites someone else's
// object; the user must move it.
func notOurs(obs *observed) *refusal {
	for _, o := range []metav1.Object{objectOrNil(obs.configMap), secretOrNil(obs.signing)} {
		if o != nil && !metav1.IsControlledBy(o, obs.ti) {
			return &refusal{identityv1alpha1.ReasonKeyError, fmt.Sprintf(
				"%s exists and is not controlled by this TenantIdentity; delete or rename it", o.GetName())}
		}
	}
	return nil
}

func objectOrNil(cm *corev1.ConfigMap) metav1.Object {
	if cm == nil {
		return nil
	}
	return cm
}

func secretOrNil(s *secret) metav1.Object {
	if s == nil {
		return nil
	}
	return &s.ObjectMeta
}

// policyFromSpec turns the spec's key policy into the rotation policy. The
// CRD refuses most of these errors at admission; they can still reach us
// from objects stored before a rule existed. The signing propagation
// counts only while a signing Secret is handed to workloads, and can push
// a policy the CRD admitted past the bound on keys held at once.
func policyFromSpec(spec identityv1alpha1.TenantIdentitySpec, signingPropagation time.Duration) (rotation.Policy, error) {
	p := spec.Keys
	out := rotation.Policy{Algorithm: cmp.Or(string(p.Algorithm), keys.ES256), RSAKeySize: keys.DefaultRSABits}
	if p.RSAKeySize != nil {
		out.RSAKeySize = int(*p.RSAKeySize)
	}
	if spec.SigningSecret.IsEnabled() {
		out.SigningPropagation = signingPropagation
	}
	durations := []struct {
		name, value, fallback string
		into                  *time.Duration
	}{
		{"rotationPeriod", p.RotationPeriod, "720h", &out.RotationPeriod},
		{"prePublish", p.PrePublish, "1h", &out.PrePublish},
		{"overlap", p.Overlap, "24h", &out.Overlap},
		{"tokenTTL", p.TokenTTL, "1h", &out.TokenTTL},
	}
	for _, d := range durations {
		v := cmp.Or(d.value, d.fallback)
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed <= 0 {
			return out, fmt.Errorf("keys.%s %q is not a positive Go duration", d.name, v)
		}
		*d.into = parsed
	}
	switch {
	case out.Overlap < out.TokenTTL:
		return out, fmt.Errorf("keys.overlap %s is shorter than keys.tokenTTL %s", out.Overlap, out.TokenTTL)
	case out.RotationPeriod <= out.PrePublish:
		return out, fmt.Errorf("keys.rotationPeriod %s is not longer than keys.prePublish %s", out.RotationPeriod, out.PrePublish)
	case out.KeysHeld() > rotation.MaxKeys:
		return out, fmt.Errorf("keys.overlap %s plus the signing Secret's propagation margin %s spans %d rotation periods of %s: "+
			"that holds %d keys at once, more than the %d allowed; shorten the overlap or lengthen the period",
			out.Overlap, out.SigningPropagation, out.KeysHeld()-2, out.RotationPeriod, out.KeysHeld(), rotation.MaxKeys)
	}
	return out, nil
}

// rotationInput turns what was observed into the policy's input. A key
// Secret that cannot be read is left out (as if lost): the policy then
// treats its kid like any lost key.
func (r *TenantIdentityReconciler) rotationInput(obs *observed, d *decision, policy rotation.Policy) rotation.Input {
	ti := obs.ti
	in := rotation.Input{
		Policy: policy, Suspend: ti.Spec.Suspend,
		Trigger: ti.Spec.RotationTrigger, LastTrigger: ti.Status.LastRotationTrigger,
		Revoked:       ti.Spec.RevokedKeyIDs,
		PublishedKIDs: kidsOfConfigMap(obs.configMap),
		SigningKID:    signingKID(obs.signing),
	}
	d.loaded = map[string]loadedKey{}
	load := func(s secret, stray bool) {
		k, err := loadKey(s)
		if err == nil {
			if _, dup := d.loaded[k.rec.KID]; dup {
				err = fmt.Errorf("secret %s holds kid %s, which another Secret holds too", s.Name, k.rec.KID)
			}
		}
		switch {
		case err != nil && stray:
			d.destroy = append(d.destroy, s)
			d.findings = append(d.findings, finding{corev1.EventTypeWarning, ReasonStrayKeyDestroyed,
				fmt.Sprintf("%s: %v; a key Secret of this TenantIdentity without its labels and unusable: destroyed", s.Name, err)})
		case err != nil:
			d.findings = append(d.findings, finding{corev1.EventTypeWarning, ReasonKeySecretUnreadable, err.Error() + "; treated as lost"})
		default:
			if stray {
				d.adopt = append(d.adopt, s)
				d.findings = append(d.findings, finding{corev1.EventTypeWarning, ReasonStrayKeyAdopted,
					fmt.Sprintf("key Secret %s of kid %s had lost its labels: given them back", s.Name, k.rec.KID)})
			}
			in.Keys = append(in.Keys, k.rec)
			d.loaded[k.rec.KID] = k
		}
	}
	for _, s := range obs.keySecrets {
		load(s, false)
	}
	for _, s := range obs.strays {
		load(s, true)
	}
	in.Orphans = orphans(obs, d, policy.Algorithm)
	return in
}

// orphans are published kids whose key Secret is gone. Only a kid signet
// provably never published is dropped (a kid someone added to the
// ConfigMap by hand is not signet's key); a kid the status lists, the
// signing Secret holds, or whose ConfigMap entry signet's own write put
// there (the API server records who wrote each field) stays published, as
// Retired, for its overlap: a status read from a cache may simply not list
// it yet.
func orphans(obs *observed, d *decision, algorithm string) []rotation.Key {
	known := map[string]identityv1alpha1.KeyStatus{}
	for _, ks := range obs.ti.Status.Keys {
		known[ks.KID] = ks
	}
	var written map[string]bool
	if obs.configMap != nil {
		written = managedfields.SignetDataKeys(obs.configMap.ObjectMeta)
	}
	signing := signingKID(obs.signing)
	var out []rotation.Key
	for _, kid := range kidsOfConfigMap(obs.configMap) {
		if _, stored := d.loaded[kid]; stored {
			continue
		}
		ks, ok := known[kid]
		switch {
		case ok:
		case kid == signing || written[configMapKey(kid)]:
			// Removal unknown: a full overlap from now.
			ks = identityv1alpha1.KeyStatus{KID: kid, State: identityv1alpha1.KeyStateRetired,
				Algorithm: identityv1alpha1.Algorithm(jwkAlgorithm(obs.configMap.Data[configMapKey(kid)], algorithm))}
		case obs.ti.Spec.Suspend:
			continue // suspended: the documents stay as they are, this entry too
		default:
			d.findings = append(d.findings, finding{corev1.EventTypeWarning, ReasonUnknownKeyDropped,
				fmt.Sprintf("the JWKS ConfigMap lists kid %s, which signet never published; it is removed", kid)})
			continue
		}
		o := rotation.Key{KID: kid, Algorithm: string(ks.Algorithm), State: rotation.Retired}
		if ks.State == identityv1alpha1.KeyStateRetired && ks.RemovesAt != nil {
			o.RemovesAt = ks.RemovesAt.Time
			if ks.RetiresAt != nil {
				o.RetiredAt = ks.RetiresAt.Time
			}
		}
		out = append(out, o)
	}
	return out
}

// jwkAlgorithm is the alg member of a published JWK, fallback when it has
// none signet knows.
func jwkAlgorithm(raw, fallback string) string {
	var jwk struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal([]byte(raw), &jwk) == nil && slices.Contains(keys.Algorithms(), jwk.Alg) {
		return jwk.Alg
	}
	return fallback
}

// settled reports whether carrying d out would write nothing: every
// object already is as d wants it. It is how a reconcile on the cache's
// view, which has no key material, knows it may stop there; anything it
// cannot tell from metadata counts as unsettled, and is then looked at
// live.
func (d *decision) settled(obs *observed, desired identityv1alpha1.TenantIdentityStatus, signingEnabled bool) bool {
	switch {
	case d.record != nil:
		return false
	case d.refusal != nil || d.invalid != nil:
		return statusEqual(obs.ti.Status, desired)
	case d.plan.Create != nil, len(d.plan.Delete) > 0, len(d.adopt) > 0, len(d.destroy) > 0, len(d.findings) > 0:
		return false
	}
	for _, k := range d.plan.Keys {
		if !recordsEqual(storedRecord(d.loaded[k.KID].secret.Annotations), recordAnnotations(k)) {
			return false
		}
	}
	return configMapSettled(obs, d.plan) && signingSettled(obs, d.plan, signingEnabled) && statusEqual(obs.ti.Status, desired)
}

// configMapSettled: the ConfigMap publishes exactly plan.Published, in
// order, each entry as signet wrote it, with signet's labels.
func configMapSettled(obs *observed, plan rotation.Plan) bool {
	cm := obs.configMap
	if cm == nil || managedfields.ForeignWrites(cm.ObjectMeta) || !labelsHave(cm.Labels, jwksLabels(obs.ti)) {
		return false
	}
	if cm.Annotations[identityv1alpha1.AnnotationKeyOrder] != strings.Join(plan.Published, ",") || len(cm.Data) != len(plan.Published) {
		return false
	}
	for _, kid := range plan.Published {
		if _, ok := cm.Data[configMapKey(kid)]; !ok {
			return false
		}
	}
	return true
}

// signingSettled: the signing Secret holds plan.ActiveKID as signet wrote
// it, or is absent when workloads get no signing Secret.
func signingSettled(obs *observed, plan rotation.Plan, enabled bool) bool {
	s := obs.signing
	switch {
	case !enabled:
		return s == nil
	case plan.ActiveKID == "":
		return s != nil || plan.Suspended
	case s == nil:
		return false
	}
	return !managedfields.ForeignWrites(s.ObjectMeta) && s.Annotations[annKID] == plan.ActiveKID && labelsHave(s.Labels, ownedLabels(obs.ti, identityv1alpha1.ComponentSigningKey))
}

func recordsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// issuer is the spec's issuer or the default under the public base URL.
func issuer(ti *identityv1alpha1.TenantIdentity, publicBaseURL string) string {
	return cmp.Or(ti.Spec.Issuer, identityv1alpha1.DefaultIssuer(publicBaseURL, ti.Spec.Org, ti.Spec.SiteID))
}

// jwksURI is where the server publishes ti's JWKS.
func jwksURI(ti *identityv1alpha1.TenantIdentity, publicBaseURL string) string {
	return identityv1alpha1.DefaultIssuer(publicBaseURL, ti.Spec.Org, ti.Spec.SiteID) + "/.well-known/jwks.json"
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

// cappedMessage keeps a condition or Event message readable and bounded:
// an API error can quote a whole object.
func cappedMessage(s string) string {
	const max = 1024
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
