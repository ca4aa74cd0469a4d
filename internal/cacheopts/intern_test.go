package cacheopts

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// decoded is a string in its own allocation, as a decoder makes them.
func decoded(s string) string { return strings.Clone(s) }

func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Two objects decoded apart hold, once trimmed, one copy of what they
// share, and still their own copy of what is theirs alone.
func TestTransformsShareRepeatedStrings(t *testing.T) {
	keySecret := func(name string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: decoded(name), Namespace: decoded("tenant-acme"),
			Labels: map[string]string{
				decoded(identityv1alpha1.LabelComponent): decoded(identityv1alpha1.ComponentKey),
				decoded(identityv1alpha1.LabelSite):      decoded(name),
			},
			Annotations: map[string]string{
				decoded(identityv1alpha1.AnnotationKeyState): decoded("Active"),
				decoded(identityv1alpha1.AnnotationKID):      decoded(name),
				decoded("note"):                              decoded("a tenant's"),
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: decoded(identityv1alpha1.GroupVersion.String()), Kind: decoded("TenantIdentity"), Name: decoded(name)}},
		}}
	}
	trim := func(name string) metav1.ObjectMeta {
		out, err := TrimSecret(keySecret(name))
		if err != nil {
			t.Fatal(err)
		}
		return out.(*metav1.PartialObjectMetadata).ObjectMeta
	}
	a := trim("a")
	runtime.GC() // the shared copies outlive a collection
	runtime.GC()
	b := trim("b")
	key := func(m map[string]string, k string) string {
		for got := range m {
			if got == k {
				return got
			}
		}
		t.Fatalf("no %s in %v", k, m)
		return ""
	}
	shared := map[string][2]string{
		"namespace":               {a.Namespace, b.Namespace},
		"a label key":             {key(a.Labels, identityv1alpha1.LabelComponent), key(b.Labels, identityv1alpha1.LabelComponent)},
		"a repeating label value": {a.Labels[identityv1alpha1.LabelComponent], b.Labels[identityv1alpha1.LabelComponent]},
		"an annotation key":       {key(a.Annotations, identityv1alpha1.AnnotationKID), key(b.Annotations, identityv1alpha1.AnnotationKID)},
		"a repeating annotation":  {a.Annotations[identityv1alpha1.AnnotationKeyState], b.Annotations[identityv1alpha1.AnnotationKeyState]},
		"the owner's kind":        {a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind},
		"the owner's API version": {a.OwnerReferences[0].APIVersion, b.OwnerReferences[0].APIVersion},
	}
	for what, p := range shared {
		if !same(p[0], p[1]) {
			t.Errorf("%s: two copies of %q", what, p[0])
		}
	}
	if _, ok := a.Annotations["note"]; ok {
		t.Errorf("a foreign annotation is kept: %v", a.Annotations)
	}
	// Values of one object alone are not interned: the same value decoded
	// twice stays two strings (interning them would only grow the table).
	x, y := trim("c"), trim("c")
	if same(x.Annotations[identityv1alpha1.AnnotationKID], y.Annotations[identityv1alpha1.AnnotationKID]) {
		t.Errorf("a kid was interned")
	}
}

func TestTenantIdentitiesSharePolicyAndConditionStrings(t *testing.T) {
	ti := func() *identityv1alpha1.TenantIdentity {
		return &identityv1alpha1.TenantIdentity{
			ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: decoded("ns")},
			Spec: identityv1alpha1.TenantIdentitySpec{Org: decoded("acme"), Keys: identityv1alpha1.KeyPolicy{
				Algorithm: identityv1alpha1.Algorithm(decoded("ES256")), RotationPeriod: decoded("720h"), PrePublish: decoded("1h"),
			}},
			Status: identityv1alpha1.TenantIdentityStatus{Conditions: []metav1.Condition{{
				Type: decoded(identityv1alpha1.ConditionPublished), Status: metav1.ConditionStatus(decoded("True")), Reason: decoded("KeysPublished"), Message: decoded("m"),
			}}},
		}
	}
	for _, serverOnly := range []bool{false, true} {
		trim := TrimTenantIdentity(serverOnly)
		oa, _ := trim(ti())
		runtime.GC()
		ob, _ := trim(ti())
		a, b := oa.(*identityv1alpha1.TenantIdentity), ob.(*identityv1alpha1.TenantIdentity)
		pairs := [][2]string{{a.Namespace, b.Namespace}, {a.Spec.Org, b.Spec.Org}, {a.Status.Conditions[0].Type, b.Status.Conditions[0].Type},
			{string(a.Status.Conditions[0].Status), string(b.Status.Conditions[0].Status)}}
		if !serverOnly {
			pairs = append(pairs, [2]string{string(a.Spec.Keys.Algorithm), string(b.Spec.Keys.Algorithm)}, [2]string{a.Spec.Keys.RotationPeriod, b.Spec.Keys.RotationPeriod},
				[2]string{a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason})
		}
		for _, p := range pairs {
			if !same(p[0], p[1]) {
				t.Errorf("serverOnly=%v: two copies of %q", serverOnly, p[0])
			}
		}
	}
}

// A tenant's objects can carry any number of new label keys or orgs: the
// table stops growing at its bound, and signet's own strings stay shared.
func TestInternTableIsBounded(t *testing.T) {
	interned.Lock()
	saved := interned.m
	interned.m = seedInterned()
	interned.Unlock()
	t.Cleanup(func() { // the other tests start from a table with room
		interned.Lock()
		interned.m = saved
		interned.Unlock()
	})
	for i := range maxInterned + 100 {
		intern(fmt.Sprintf("tenant-label-%d", i))
	}
	interned.RLock()
	n := len(interned.m)
	interned.RUnlock()
	if n > maxInterned {
		t.Fatalf("%d strings interned, bound %d", n, maxInterned)
	}
	if s := decoded("beyond-the-bound"); !same(intern(s), s) {
		t.Error("a string past the bound was copied into the table")
	}
	if a, b := intern(decoded(identityv1alpha1.LabelOrg)), intern(decoded(identityv1alpha1.LabelOrg)); !same(a, b) {
		t.Error("a constant of signet's is not shared once the table is full")
	}
}
