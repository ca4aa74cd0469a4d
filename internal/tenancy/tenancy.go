// Package tenancy holds the rules on org/site claims that the controller
// and the JWKS server must apply alike: the cache index that finds every
// claim on an org/site, and which claim wins.
package tenancy

import (
	"cmp"

	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// OrgSiteField indexes TenantIdentities by "<org>/<siteID>": every claim on
// one org/site, without listing all TenantIdentities (the index is added by
// cacheopts.IndexOrgSite).
const OrgSiteField = "spec.orgSite"

// OrgSite is the index value of an org/site.
func OrgSite(org, siteID string) string { return org + "/" + siteID }

// OrgSiteValues is the index's extractor.
func OrgSiteValues(o client.Object) []string {
	ti, ok := o.(*identityv1alpha1.TenantIdentity)
	if !ok || ti.Spec.Org == "" || ti.Spec.SiteID == "" {
		return nil
	}
	return []string{OrgSite(ti.Spec.Org, ti.Spec.SiteID)}
}

// Winner is the TenantIdentity that owns an org/site among its claimants:
// the oldest, ties broken by namespace then name, so that every replica, the
// controller and the server pick the same one. A claim being deleted does not
// count. nil when no claim counts.
func Winner(claimants []identityv1alpha1.TenantIdentity) *identityv1alpha1.TenantIdentity {
	var winner *identityv1alpha1.TenantIdentity
	for i := range claimants {
		c := &claimants[i]
		if c.DeletionTimestamp != nil {
			continue
		}
		if winner == nil || compareClaims(c, winner) < 0 {
			winner = c
		}
	}
	return winner
}

// compareClaims orders claims: oldest first, then namespace, then name.
func compareClaims(a, b *identityv1alpha1.TenantIdentity) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}
