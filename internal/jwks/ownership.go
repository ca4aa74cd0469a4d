package jwks

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// Who may publish an org/site, re-derived by the server itself from facts
// a tenant cannot forge (tenancy.Owner): namespace labels set by the
// cluster admin, UIDs and creation times set by the API server, and the
// claim records signet keeps in its own namespace. A TenantIdentity's
// status, which a tenant may be able to write, can only withhold
// publication (Published=False), never grant it. These are pure functions
// of what a view returned; nothing here reads the cluster.

// facts is what the ownership of one org/site is decided from.
type facts struct {
	claims  []v1alpha1.TenantIdentity // every TenantIdentity naming the org/site
	record  *tenancy.Claim            // signet's claim record, nil when none
	labels  tenancy.NamespaceLabels   // namespace labels, for org binding
	binding bool                      // org binding on
}

// owner is the TenantIdentity whose documents org/site k serves, nil for
// none: the owner tenancy.Owner picks, unless its status withholds
// publication.
func owner(f facts) *v1alpha1.TenantIdentity {
	o := tenancy.Owner(f.record, f.claims, f.labels, f.binding)
	if o == nil || withheld(o) {
		return nil
	}
	return o
}

// withheld: the controller said this TenantIdentity must not be served.
// Only an explicit False counts: the status is tenant-writable, so it may
// take publication away (from the tenant itself) but not give it.
func withheld(ti *v1alpha1.TenantIdentity) bool {
	return meta.IsStatusConditionFalse(ti.Status.Conditions, v1alpha1.ConditionPublished)
}

// distrust returns why cm may not publish ti's keys, or "" when it may.
// The caller found cm by ti's namespace and JWKSConfigMapName, so the
// same-namespace rule holds already; what is left is that ti controls it
// (a copied ownerReference from another TenantIdentity has another UID)
// and that its labels claim the org/site ti owns.
func distrust(cm *corev1.ConfigMap, ti *v1alpha1.TenantIdentity) string {
	owner := metav1.GetControllerOfNoCopy(cm)
	switch {
	case owner == nil:
		return "no controller ownerReference"
	case owner.UID != ti.UID || owner.Name != ti.Name || owner.Kind != "TenantIdentity" ||
		!strings.HasPrefix(owner.APIVersion, v1alpha1.GroupVersion.Group+"/"):
		return "controlled by another object"
	case cm.Labels[v1alpha1.LabelComponent] != v1alpha1.ComponentJWKS:
		return "missing label " + v1alpha1.LabelComponent + "=" + v1alpha1.ComponentJWKS
	case cm.Labels[v1alpha1.LabelOrg] != ti.Spec.Org || cm.Labels[v1alpha1.LabelSite] != ti.Spec.SiteID:
		return "org/site labels differ from the TenantIdentity's spec"
	}
	return ""
}

// issuerOf is the issuer the documents of ti name: its spec's, unless that
// one lies under the server's public URL outside ti's own path (it would
// pose as another tenant's issuer; the controller reports it), else the
// default. Never the status's: a tenant may write that.
func issuerOf(ti *v1alpha1.TenantIdentity, baseURL string) string {
	if ti.Spec.Issuer != "" && tenancy.IssuerError(ti.Spec.Issuer, baseURL, ti.Spec.Org, ti.Spec.SiteID) == nil {
		return ti.Spec.Issuer
	}
	return v1alpha1.DefaultIssuer(baseURL, ti.Spec.Org, ti.Spec.SiteID)
}
