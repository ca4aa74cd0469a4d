package tenancy

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// Ownership of an org/site is decided by the controller and re-derived by
// every server replica from facts no tenant can forge: namespace labels
// (set by the cluster admin), UIDs and creation times (set by the API
// server), and the claim records signet keeps in its own namespace, where
// no tenant writes. A TenantIdentity's status is not among them: under a
// broad role a tenant may write it.

// Claim is signet's record of the TenantIdentity that owns an org/site.
type Claim struct {
	Namespace, Name string
	UID             types.UID
}

// Of is the claim of ti.
func Of(ti *identityv1alpha1.TenantIdentity) Claim {
	return Claim{Namespace: ti.Namespace, Name: ti.Name, UID: ti.UID}
}

// Bound reports whether ti's namespace is bound to ti's org: with binding
// on, its label identity.signet.dev/org (set by the cluster admin) names
// the org; with binding off, always.
func Bound(ti *identityv1alpha1.TenantIdentity, namespaceLabels map[string]string, bindingOn bool) bool {
	return !bindingOn || namespaceLabels[identityv1alpha1.LabelOrg] == ti.Spec.Org
}

// NamespaceLabels returns the labels of a namespace by name, nil when the
// namespace is not known.
type NamespaceLabels func(namespace string) map[string]string

// Owner is the TenantIdentity that owns an org/site among the claims on it
// (every TenantIdentity naming it, in any namespace):
//
//   - the one the claim record names, while it still stands: it exists with
//     the recorded UID, is not being deleted and is bound. Ownership is
//     sticky: a claim bound later never displaces a published owner, even
//     an older one;
//   - otherwise (no record yet, or its owner was deleted or unbound by the
//     admin) the oldest bound claim (Winner), which the controller then
//     records.
//
// nil when no claim is bound.
func Owner(record *Claim, claims []identityv1alpha1.TenantIdentity, labels NamespaceLabels, bindingOn bool) *identityv1alpha1.TenantIdentity {
	bound := make([]identityv1alpha1.TenantIdentity, 0, len(claims))
	for i := range claims {
		if Bound(&claims[i], labels(claims[i].Namespace), bindingOn) && claims[i].DeletionTimestamp == nil {
			bound = append(bound, claims[i])
		}
	}
	if record != nil {
		for i := range bound {
			if Of(&bound[i]) == *record {
				return &bound[i]
			}
		}
	}
	return Winner(bound)
}

// Labels and data of a claim record, a ConfigMap in signet's namespace.
const (
	// ComponentClaim is the identity.signet.dev/component of claim records.
	ComponentClaim = "claim"
	// LabelOwnerNamespace is the namespace of the recorded owner, so that
	// the records naming a deleted TenantIdentity can be found.
	LabelOwnerNamespace = "identity.signet.dev/owner-namespace"

	claimDataNamespace = "namespace"
	claimDataName      = "name"
	claimDataUID       = "uid"
)

// ClaimName is the name of the claim record of an org/site: a valid
// object name for any org (a DNS label) and siteID (a UUID).
func ClaimName(org, siteID string) string { return "claim-" + org + "-" + siteID }

// ClaimRecord is the ConfigMap recording c as the owner of org/site, in
// namespace (signet's own).
func ClaimRecord(namespace, org, siteID string, c Claim) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ClaimName(org, siteID),
			Namespace: namespace,
			Labels: map[string]string{
				identityv1alpha1.LabelComponent:      ComponentClaim,
				identityv1alpha1.LabelOrg:            org,
				identityv1alpha1.LabelSite:           siteID,
				identityv1alpha1.LabelTenantIdentity: c.Name,
				LabelOwnerNamespace:                  c.Namespace,
				"app.kubernetes.io/managed-by":       "signet",
			},
		},
		Data: map[string]string{claimDataNamespace: c.Namespace, claimDataName: c.Name, claimDataUID: string(c.UID)},
	}
}

// ClaimOf reads a claim record; false when cm is nil or is not one for
// org/site (say, a ConfigMap of that name someone else made, in a
// namespace signet does not own: callers read only signet's namespace).
func ClaimOf(cm *corev1.ConfigMap, org, siteID string) (Claim, bool) {
	if cm == nil || cm.Labels[identityv1alpha1.LabelComponent] != ComponentClaim ||
		cm.Labels[identityv1alpha1.LabelOrg] != org || cm.Labels[identityv1alpha1.LabelSite] != siteID {
		return Claim{}, false
	}
	c := Claim{Namespace: cm.Data[claimDataNamespace], Name: cm.Data[claimDataName], UID: types.UID(cm.Data[claimDataUID])}
	return c, c.Namespace != "" && c.Name != "" && c.UID != ""
}
