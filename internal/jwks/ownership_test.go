package jwks

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
)

// The status may only withhold publication: an explicit Published=False,
// and nothing else, keeps a TenantIdentity from being served.
func TestWithheld(t *testing.T) {
	for _, tt := range []struct {
		status metav1.ConditionStatus
		want   bool
	}{{metav1.ConditionTrue, false}, {metav1.ConditionFalse, true}, {metav1.ConditionUnknown, false}, {"", false}} {
		if got := withheld(newTI("ns", "x", "acme", siteA, epoch, tt.status)); got != tt.want {
			t.Errorf("Published=%q: withheld() = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestDistrust(t *testing.T) {
	ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
	other := newTI("other", "x", "acme", siteA, epoch, metav1.ConditionTrue)
	k := genKey(t, "ES256", 0)
	tests := []struct {
		name   string
		mutate func(cm *corev1.ConfigMap)
		want   bool // trusted
	}{
		{"as the controller writes it", func(*corev1.ConfigMap) {}, true},
		{"no owner", func(cm *corev1.ConfigMap) { cm.OwnerReferences = nil }, false},
		{"owner but not controller", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].Controller = nil }, false},
		{"wrong owner UID", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].UID = "forged" }, false},
		{"owner is the same-named TI of another namespace", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].UID = other.UID }, false},
		{"owner of another kind", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].Kind = "Deployment" }, false},
		{"owner of another group", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].APIVersion = "evil.example/v1alpha1" }, false},
		{"org label differs", func(cm *corev1.ConfigMap) { cm.Labels[v1alpha1.LabelOrg] = "evil" }, false},
		{"site label differs", func(cm *corev1.ConfigMap) { cm.Labels[v1alpha1.LabelSite] = siteB }, false},
		{"site label missing", func(cm *corev1.ConfigMap) { delete(cm.Labels, v1alpha1.LabelSite) }, false},
		{"component label missing", func(cm *corev1.ConfigMap) { delete(cm.Labels, v1alpha1.LabelComponent) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := jwksConfigMap(ti, "1", k)
			tt.mutate(cm)
			why := distrust(cm, ti)
			if (why == "") != tt.want {
				t.Errorf("distrust() = %q, want trusted=%v", why, tt.want)
			}
		})
	}
}

func TestIssuerOf(t *testing.T) {
	const base = "https://jwks.example"
	tests := []struct {
		name         string
		status, spec string
		want         string
	}{
		{"default", "", "", base + "/v2/org/acme/nico/site/" + siteA},
		{"spec", "", "https://issuer.example/a", "https://issuer.example/a"},
		{"the status is tenant-writable: ignored", "https://issuer.example/s", "https://issuer.example/a", "https://issuer.example/a"},
		{"the status cannot set one either", base + "/v2/org/globex/nico/site/" + siteA, "", base + "/v2/org/acme/nico/site/" + siteA},
		{"under the server's URL, the tenant's own path", "", base + "/v2/org/acme/nico/site/" + siteA + "/x", base + "/v2/org/acme/nico/site/" + siteA + "/x"},
		{"another tenant's issuer: the default instead", "", base + "/v2/org/globex/nico/site/" + siteA, base + "/v2/org/acme/nico/site/" + siteA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
			ti.Status.Issuer, ti.Spec.Issuer = tt.status, tt.spec
			if got := issuerOf(ti, base); got != tt.want {
				t.Errorf("issuer = %q, want %q", got, tt.want)
			}
		})
	}
}
