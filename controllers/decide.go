package controllers

import (
	"cmp"
	"fmt"
	"time"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/tenancy"
)

// The tenancy decisions: small pure functions over what gather read.

// refusal is why a TenantIdentity may not publish, as a condition reason and
// a message for humans.
type refusal struct {
	reason, message string
}

// orgBindingRefusal: with org binding on, the namespace must carry the org
// label with the TenantIdentity's org (set by the cluster admin), so a tenant
// cannot claim another tenant's org by naming it.
func orgBindingRefusal(ti *identityv1alpha1.TenantIdentity, namespaceLabels map[string]string, bindingOn bool) *refusal {
	if !bindingOn {
		return nil
	}
	bound, ok := namespaceLabels[identityv1alpha1.LabelOrg]
	switch {
	case !ok:
		return &refusal{identityv1alpha1.ReasonOrgNotBound, fmt.Sprintf(
			"namespace %s has no label %s; a cluster admin must set it to %q to let this namespace publish keys for org %q",
			ti.Namespace, identityv1alpha1.LabelOrg, ti.Spec.Org, ti.Spec.Org)}
	case bound != ti.Spec.Org:
		return &refusal{identityv1alpha1.ReasonOrgNotBound, fmt.Sprintf(
			"namespace %s is bound to org %q by its label %s, not to %q", ti.Namespace, bound, identityv1alpha1.LabelOrg, ti.Spec.Org)}
	}
	return nil
}

// boundClaims are the claims that compete for an org/site: with org binding
// on, only those whose namespace is bound to their org, so that a tenant
// cannot squat another org's org/site by claiming it first.
func boundClaims(claims []identityv1alpha1.TenantIdentity, namespaceLabels map[string]map[string]string, bindingOn bool) []identityv1alpha1.TenantIdentity {
	if !bindingOn {
		return claims
	}
	var bound []identityv1alpha1.TenantIdentity
	for i := range claims {
		if orgBindingRefusal(&claims[i], namespaceLabels[claims[i].Namespace], true) == nil {
			bound = append(bound, claims[i])
		}
	}
	return bound
}

// conflictRefusal refuses ti when an older TenantIdentity claims its org/site.
func conflictRefusal(ti *identityv1alpha1.TenantIdentity, claimants []identityv1alpha1.TenantIdentity) *refusal {
	w := tenancy.Winner(append([]identityv1alpha1.TenantIdentity{*ti}, claimants...))
	if w == nil || (w.Namespace == ti.Namespace && w.Name == ti.Name) {
		return nil
	}
	return &refusal{identityv1alpha1.ReasonConflict, fmt.Sprintf(
		"org %q site %q is already claimed by the older TenantIdentity %s/%s; this one publishes nothing",
		ti.Spec.Org, ti.Spec.SiteID, w.Namespace, w.Name)}
}

// policyFromSpec turns the spec's key policy into the rotation policy. The
// CRD refuses all of these errors at admission; they can still reach us
// from objects stored before a rule existed.
func policyFromSpec(p identityv1alpha1.KeyPolicy) (rotation.Policy, error) {
	out := rotation.Policy{Algorithm: string(p.Algorithm), RSAKeySize: keys.DefaultRSABits}
	if out.Algorithm == "" {
		out.Algorithm = keys.ES256
	}
	if p.RSAKeySize != nil {
		out.RSAKeySize = int(*p.RSAKeySize)
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
		v := d.value
		if v == "" {
			v = d.fallback
		}
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
	}
	return out, nil
}

// issuer is the spec's issuer or the default under the public base URL.
func issuer(ti *identityv1alpha1.TenantIdentity, publicBaseURL string) string {
	return cmp.Or(ti.Spec.Issuer, identityv1alpha1.DefaultIssuer(publicBaseURL, ti.Spec.Org, ti.Spec.SiteID))
}

// jwksURI is where the server publishes ti's JWKS.
func jwksURI(ti *identityv1alpha1.TenantIdentity, publicBaseURL string) string {
	return identityv1alpha1.DefaultIssuer(publicBaseURL, ti.Spec.Org, ti.Spec.SiteID) + "/.well-known/jwks.json"
}
