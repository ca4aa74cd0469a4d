package cacheopts

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

func managedFields(manager string) []metav1.ManagedFieldsEntry {
	return []metav1.ManagedFieldsEntry{{Manager: manager, FieldsV1: metav1.NewFieldsV1(`{"f:data":{"f:k.json":{}}}`)}}
}

func jwksConfigMap(name, owner string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "tenant",
			Labels:      map[string]string{identityv1alpha1.LabelComponent: identityv1alpha1.ComponentJWKS},
			Annotations: map[string]string{identityv1alpha1.AnnotationKeyOrder: "k", "kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1000)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: identityv1alpha1.GroupVersion.String(), Kind: "TenantIdentity", Name: owner, UID: "u", Controller: ptr.To(true),
			}},
			ManagedFields: managedFields("signet"),
		},
		Data: data,
	}
}

func TestTrimConfigMap(t *testing.T) {
	small := map[string]string{"k.json": "{}"}
	big := map[string]string{"junk": strings.Repeat("x", 900<<10)}
	cases := []struct {
		name         string
		cm           *corev1.ConfigMap
		wantData     bool
		wantOversize bool
		wantManaged  bool
	}{
		{"a TenantIdentity's own JWKS ConfigMap keeps its data (signet alone wrote it: no managed fields)", jwksConfigMap("acme-jwks", "acme", small), true, false, false},
		{"... and a mark of a foreign writer", func() *corev1.ConfigMap {
			cm := jwksConfigMap("acme-jwks", "acme", small)
			cm.ManagedFields = append(cm.ManagedFields, managedFields("kubectl-edit")...)
			return cm
		}(), true, false, true},
		{"junk carrying the label: metadata only", jwksConfigMap("junk", "acme", big), false, false, false},
		{"named like another TenantIdentity's: metadata only", jwksConfigMap("globex-jwks", "acme", big), false, false, false},
		{"no controller: metadata only", func() *corev1.ConfigMap {
			cm := jwksConfigMap("acme-jwks", "acme", big)
			cm.OwnerReferences = nil
			return cm
		}(), false, false, false},
		{"a controller of another kind: metadata only", func() *corev1.ConfigMap {
			cm := jwksConfigMap("acme-jwks", "acme", big)
			cm.OwnerReferences[0].Kind = "Deployment"
			return cm
		}(), false, false, false},
		{"its own, but oversized: a marker the server refuses", jwksConfigMap("acme-jwks", "acme", big), false, true, false},
		{"a claim record keeps its data", func() *corev1.ConfigMap {
			return tenancy.ClaimRecord("signet-system", "acme", "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f", tenancy.Claim{Namespace: "n", Name: "x", UID: "u"})
		}(), true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := TrimConfigMap(false)(tc.cm.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			cm := out.(*corev1.ConfigMap)
			_, oversized := cm.Data[OversizedEntry]
			if got := len(cm.Data) > 0 && !oversized; got != tc.wantData {
				t.Errorf("data kept %v, want %v", got, tc.wantData)
			}
			if oversized != tc.wantOversize {
				t.Errorf("oversized marker %v, want %v", oversized, tc.wantOversize)
			}
			if got := cm.ManagedFields != nil; got != tc.wantManaged {
				t.Errorf("managed fields kept %v, want %v", got, tc.wantManaged)
			}
			server, _ := TrimConfigMap(true)(tc.cm.DeepCopy())
			scm := server.(*corev1.ConfigMap)
			if scm.ManagedFields != nil || len(scm.Labels) > 3 || (len(cm.Data) > 0) != (len(scm.Data) > 0) {
				t.Errorf("the server-only cache kept %d managed fields, labels %v, data %v", len(scm.ManagedFields), scm.Labels, len(scm.Data))
			}
			if got, want := metav1.GetControllerOf(scm), metav1.GetControllerOf(cm); (got == nil) != (want == nil) || (got != nil && got.UID != want.UID) {
				t.Errorf("the server-only cache's controller %v, want %v", got, want)
			}
			for k := range cm.Annotations {
				if !strings.HasPrefix(k, "identity.signet.dev/") {
					t.Errorf("annotation %s kept", k)
				}
			}
		})
	}
}

func TestTrimSecret(t *testing.T) {
	meta := func(component string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: "s", Labels: map[string]string{identityv1alpha1.LabelComponent: component},
			Annotations:   map[string]string{identityv1alpha1.AnnotationKID: "k", "note": "x"},
			ManagedFields: managedFields("kubectl-edit"),
		}
	}
	key := &metav1.PartialObjectMetadata{ObjectMeta: meta(identityv1alpha1.ComponentKey)}
	_, _ = TrimSecret(key)
	if key.ManagedFields != nil || key.Annotations["note"] != "" || key.Annotations[identityv1alpha1.AnnotationKID] != "k" {
		t.Errorf("key Secret metadata: %+v", key.ObjectMeta)
	}
	signing := &metav1.PartialObjectMetadata{ObjectMeta: meta(identityv1alpha1.ComponentSigningKey)}
	_, _ = TrimSecret(signing)
	if signing.ManagedFields == nil {
		t.Error("the mark of the signing Secret's foreign writer was dropped: the controller reads from it whether anyone else wrote its data")
	}
	typed := &corev1.Secret{ObjectMeta: meta(identityv1alpha1.ComponentKey), Data: map[string][]byte{"key.pem": []byte("PRIVATE")}, StringData: map[string]string{"a": "b"}}
	_, _ = TrimSecret(typed)
	if typed.Data != nil || typed.StringData != nil {
		t.Error("a typed Secret kept its data in the cache")
	}
}

func TestTrimTenantIdentity(t *testing.T) {
	ti := func() *identityv1alpha1.TenantIdentity {
		return &identityv1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{"a": strings.Repeat("x", 1000)}, ManagedFields: managedFields("kubectl")},
			Spec:       identityv1alpha1.TenantIdentitySpec{Org: "acme", Tokens: &identityv1alpha1.TokenPolicy{AllowedAudiences: []string{"a"}}},
			Status: identityv1alpha1.TenantIdentityStatus{
				Keys: []identityv1alpha1.KeyStatus{{KID: "k"}},
				Conditions: []metav1.Condition{
					{Type: identityv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Message: "ok"},
					{Type: "Forged", Status: metav1.ConditionTrue, Message: strings.Repeat("m", 32<<10)},
				},
			},
		}
	}
	full, _ := TrimTenantIdentity(false)(ti())
	got := full.(*identityv1alpha1.TenantIdentity)
	if got.Annotations != nil || got.ManagedFields != nil || len(got.Status.Keys) != 1 || got.Spec.Tokens == nil {
		t.Errorf("controller's view: %+v", got)
	}
	if len(got.Status.Conditions[1].Message) > maxConditionMessage || got.Status.Conditions[0].Message != "ok" {
		t.Errorf("condition messages: %d and %q", len(got.Status.Conditions[1].Message), got.Status.Conditions[0].Message)
	}
	// The server's view: what ownership, the issuer and max-age need, and
	// only the Published condition's status.
	published := ti()
	published.Status.Conditions = append(published.Status.Conditions, metav1.Condition{Type: identityv1alpha1.ConditionPublished, Status: metav1.ConditionFalse, Message: "x"})
	published.Spec.Issuer, published.Spec.Keys.PrePublish, published.UID = "https://i.example", "2m", "u"
	server, _ := TrimTenantIdentity(true)(published)
	got = server.(*identityv1alpha1.TenantIdentity)
	want := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Name: "x", UID: "u"},
		Spec: identityv1alpha1.TenantIdentitySpec{Org: "acme", Issuer: "https://i.example",
			Keys: identityv1alpha1.KeyPolicy{PrePublish: "2m"}},
		Status: identityv1alpha1.TenantIdentityStatus{Conditions: []metav1.Condition{{Type: identityv1alpha1.ConditionPublished, Status: metav1.ConditionFalse}}},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("server's view:\n got %+v\nwant %+v", got, want)
	}
}

func TestOptions(t *testing.T) {
	o := Options(Config{SystemNamespace: "signet-system"})
	for obj, by := range o.ByObject {
		switch obj.(type) {
		case *corev1.ConfigMap:
			tenants, system := by.Namespaces[""], by.Namespaces["signet-system"]
			if tenants.LabelSelector.String() != "identity.signet.dev/component in (jwks)" ||
				!system.LabelSelector.Matches(labels.Set{identityv1alpha1.LabelComponent: tenancy.ComponentClaim}) {
				t.Errorf("ConfigMap selectors: tenants %v, system %v", tenants.LabelSelector, system.LabelSelector)
			}
		case *metav1.PartialObjectMetadata:
			if by.Label.String() != identityv1alpha1.LabelTenantIdentity {
				t.Errorf("Secret metadata selector %v", by.Label)
			}
		}
	}
	same := Options(Config{WatchNamespace: "signet-system", SystemNamespace: "signet-system"})
	for obj, by := range same.ByObject {
		if _, ok := obj.(*corev1.ConfigMap); ok && len(by.Namespaces) != 1 {
			t.Errorf("watch namespace = system namespace: %v", by.Namespaces)
		}
	}
}
