// Package index holds the cache indexes that the controller and the JWKS
// server share, so both can register them without tripping over each other.
package index

import (
	"context"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// OrgSiteField indexes TenantIdentities by "<org>/<siteID>": every claim on
// one org/site, without listing all TenantIdentities.
const OrgSiteField = "spec.orgSite"

// OrgSite is the index value of an org/site.
func OrgSite(org, siteID string) string { return org + "/" + siteID }

// RegisterOrgSite adds the org/site index. It is idempotent: the controller
// and the server each register it, and the second registration is a no-op.
func RegisterOrgSite(ctx context.Context, indexer client.FieldIndexer) error {
	err := indexer.IndexField(ctx, &identityv1alpha1.TenantIdentity{}, OrgSiteField, func(o client.Object) []string {
		ti := o.(*identityv1alpha1.TenantIdentity)
		return []string{OrgSite(ti.Spec.Org, ti.Spec.SiteID)}
	})
	if err != nil && strings.Contains(err.Error(), "indexer conflict") {
		return nil
	}
	return err
}
