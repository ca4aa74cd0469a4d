package cacheopts

import (
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// The decoders give every object its own copy of every string. Most of
// the strings signet's objects hold are the same in all of them: label
// and annotation keys, namespaces, orgs, component names, owner kinds.
// At 10,000 tenants those copies are about a kilobyte a tenant in every
// replica, so the transforms keep one copy of each. Strings of one object
// alone (names, UIDs, kids, times, keys) are left as they are.
//
// The copies are held here, strongly: unique.Make's table holds its
// values weakly, so a copy it hands out is forgotten at the next
// collection and every object decoded after it gets a copy of its own.
// A tenant can make objects with new orgs or label keys, so the table is
// bounded: signet's own constants are in it from the start, and at most
// maxInterned strings found in objects join them; past that, strings are
// kept as decoded (not shared, and the table does not grow).
const maxInterned = 1 << 14

var interned = struct {
	sync.RWMutex
	m map[string]string
}{m: seedInterned()}

// seedInterned is signet's own constants, shared whatever the table holds.
func seedInterned() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		identityv1alpha1.LabelTenantIdentity, identityv1alpha1.LabelKID, identityv1alpha1.LabelOrg,
		identityv1alpha1.LabelSite, identityv1alpha1.LabelComponent, tenancy.LabelOwnerNamespace,
		identityv1alpha1.AnnotationKID, identityv1alpha1.AnnotationKeyState, identityv1alpha1.AnnotationAlgorithm,
		identityv1alpha1.AnnotationKeyOrder, identityv1alpha1.AnnotationSequence,
		identityv1alpha1.ComponentKey, identityv1alpha1.ComponentSigningKey, identityv1alpha1.ComponentJWKS, tenancy.ComponentClaim,
		identityv1alpha1.ConditionReady, identityv1alpha1.ConditionPublished,
		string(metav1.ConditionTrue), string(metav1.ConditionFalse), string(metav1.ConditionUnknown),
		string(identityv1alpha1.KeyStateNext), string(identityv1alpha1.KeyStateActive), string(identityv1alpha1.KeyStateRetired),
		identityv1alpha1.GroupVersion.String(), "TenantIdentity", "app.kubernetes.io/managed-by", "signet",
	} {
		m[s] = s
	}
	return m
}

// intern is the one shared copy of s, or s when the table is full.
func intern(s string) string {
	if s == "" {
		return s
	}
	interned.RLock()
	c, ok := interned.m[s]
	n := len(interned.m)
	interned.RUnlock()
	switch {
	case ok:
		return c
	case n >= maxInterned:
		return s
	}
	interned.Lock()
	defer interned.Unlock()
	if c, ok := interned.m[s]; ok {
		return c
	}
	if len(interned.m) >= maxInterned {
		return s
	}
	c = strings.Clone(s) // not a slice of a larger decoded buffer
	interned.m[c] = c
	return c
}

// sharedValues are the labels and annotations whose values repeat across
// objects (an org, a component, a key's state or algorithm); the others
// (names, sites, kids, times) are one object's own.
var sharedValues = map[string]bool{
	identityv1alpha1.LabelComponent:      true,
	identityv1alpha1.LabelOrg:            true,
	tenancy.LabelOwnerNamespace:          true,
	"app.kubernetes.io/managed-by":       true,
	identityv1alpha1.AnnotationKeyState:  true,
	identityv1alpha1.AnnotationAlgorithm: true,
}

// internMap is m with shared keys (and the values of sharedValues), in a
// new map of exactly its size; keep says which entries stay (nil: all).
func internMap(m map[string]string, keep func(string) bool) map[string]string {
	n := 0
	for k := range m {
		if keep == nil || keep(k) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(map[string]string, n)
	for k, v := range m {
		if keep != nil && !keep(k) {
			continue
		}
		if sharedValues[k] {
			v = intern(v)
		}
		out[intern(k)] = v
	}
	return out
}

// isSignetKey: an annotation of signet's own (no
// last-applied-configuration, no tenant's notes).
func isSignetKey(k string) bool { return strings.HasPrefix(k, "identity.signet.dev/") }

// internMeta shares the namespace, the label keys and repeating values,
// and the owner references' API version and kind; it keeps only signet's
// own annotations, shared likewise.
func internMeta(m *metav1.ObjectMeta) {
	m.Namespace = intern(m.Namespace)
	m.Labels = internMap(m.Labels, nil)
	m.Annotations = internMap(m.Annotations, isSignetKey)
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind = intern(r.APIVersion), intern(r.Kind)
	}
}

// internTenantIdentity shares what repeats across TenantIdentities: the
// metadata as internMeta does, the org, the policy's values (mostly the
// defaults), and the status's condition types, statuses and reasons and
// its keys' algorithms and states.
func internTenantIdentity(ti *identityv1alpha1.TenantIdentity) {
	internMeta(&ti.ObjectMeta)
	ti.Spec.Org = intern(ti.Spec.Org)
	k := &ti.Spec.Keys
	k.Algorithm = identityv1alpha1.Algorithm(intern(string(k.Algorithm)))
	k.RotationPeriod, k.PrePublish, k.Overlap, k.TokenTTL = intern(k.RotationPeriod), intern(k.PrePublish), intern(k.Overlap), intern(k.TokenTTL)
	for i := range ti.Status.Conditions {
		c := &ti.Status.Conditions[i]
		c.Type, c.Reason = intern(c.Type), intern(c.Reason)
		c.Status = metav1.ConditionStatus(intern(string(c.Status)))
	}
	for i := range ti.Status.Keys {
		ks := &ti.Status.Keys[i]
		ks.Algorithm = identityv1alpha1.Algorithm(intern(string(ks.Algorithm)))
		ks.State = identityv1alpha1.KeyState(intern(string(ks.State)))
	}
}
