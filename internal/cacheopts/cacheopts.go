// Package cacheopts says what the manager's informers hold: signet's own
// objects, trimmed to the fields signet reads. Anything a tenant can make
// carry signet's labels (a ConfigMap, a Secret) is cut down before it is
// stored, so that junk cannot grow every replica's memory, and no Secret's
// data is ever cached: private keys are read live by the reconcile that
// needs them and leave memory with it.
package cacheopts

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/managedfields"
	"github.com/signet-dev/signet/internal/tenancy"
)

// Config is what the cache must cover.
type Config struct {
	// WatchNamespace restricts the tenants' objects to one namespace; "" for all.
	WatchNamespace string
	// SystemNamespace is signet's own namespace, where the claim records live.
	SystemNamespace string
	// ServerOnly: the cache serves the JWKS server alone (no controller),
	// which reads less of a TenantIdentity.
	ServerOnly bool
}

// maxConfigMapData bounds the data of a JWKS ConfigMap the cache keeps:
// ten RSA-4096 keys with certificates take about 30 KiB. Beyond it the
// ConfigMap is junk under a TenantIdentity's name; the cache keeps a
// marker entry instead, which the server refuses (502 for that tenant
// alone) and the controller rewrites.
const maxConfigMapData = 128 << 10

// OversizedEntry is the data entry that replaces an oversized ConfigMap's.
const OversizedEntry = "signet.oversized"

// Options is the manager's cache configuration.
func Options(c Config) cache.Options {
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&identityv1alpha1.TenantIdentity{}: {Transform: TrimTenantIdentity(c.ServerOnly)},
		&corev1.ConfigMap{}:                {Namespaces: configMapNamespaces(c)},
		SecretMetadata():                   {Label: managed(), Transform: TrimSecret},
		&corev1.Namespace{}:                {Transform: TrimNamespace},
	}}
	if c.WatchNamespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{c.WatchNamespace: {}}
	}
	return opts
}

// SecretMetadata is the key of the Secret informer: signet watches
// Secrets as metadata only.
func SecretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// configMapNamespaces: in tenants' namespaces the JWKS ConfigMaps; in
// signet's own, the claim records too.
func configMapNamespaces(c Config) map[string]cache.Config {
	tenants := cmp(c.WatchNamespace, cache.AllNamespaces)
	out := map[string]cache.Config{}
	if tenants != c.SystemNamespace {
		out[tenants] = cache.Config{LabelSelector: component(identityv1alpha1.ComponentJWKS), Transform: TrimConfigMap(c.ServerOnly)}
	}
	if c.SystemNamespace != "" {
		out[c.SystemNamespace] = cache.Config{
			LabelSelector: component(identityv1alpha1.ComponentJWKS, tenancy.ComponentClaim),
			Transform:     TrimConfigMap(c.ServerOnly),
		}
	}
	return out
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func component(values ...string) labels.Selector {
	r, err := labels.NewRequirement(identityv1alpha1.LabelComponent, selection.In, values)
	if err != nil {
		panic(err) // constant values
	}
	return labels.NewSelector().Add(*r)
}

func managed() labels.Selector {
	r, err := labels.NewRequirement(identityv1alpha1.LabelTenantIdentity, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*r)
}

// TrimConfigMap keeps the data of a TenantIdentity's own JWKS ConfigMap
// (up to maxConfigMapData) and of a claim record, and of nothing else: a
// ConfigMap that merely carries the label is held as metadata. With
// serverOnly no managed fields are kept at all (the server does not ask
// who wrote what).
func TrimConfigMap(serverOnly bool) func(any) (any, error) {
	return func(in any) (any, error) {
		cm, ok := in.(*corev1.ConfigMap)
		if !ok {
			return in, nil
		}
		switch cm.Labels[identityv1alpha1.LabelComponent] {
		case identityv1alpha1.ComponentJWKS:
			if !ownJWKS(cm) {
				dropData(cm)
				cm.ManagedFields = nil
			} else if dataSize(cm) > maxConfigMapData {
				cm.Data, cm.BinaryData = map[string]string{OversizedEntry: ""}, nil
			}
			// Which manager wrote which entry tells the controller whether
			// an entry is signet's own: kept for the own ones, compacted to
			// just that (internal/managedfields).
			managedfields.Compact(&cm.ObjectMeta)
		case tenancy.ComponentClaim:
			cm.ManagedFields = nil
		default:
			dropData(cm)
			cm.ManagedFields = nil
		}
		internMeta(&cm.ObjectMeta)
		if cm.Labels[identityv1alpha1.LabelComponent] == tenancy.ComponentClaim {
			cm.Data = internMap(cm.Data, nil) // the same three keys in every record
		}
		if serverOnly {
			return serverConfigMap(cm), nil
		}
		return cm, nil
	}
}

// ownJWKS: cm is named after the TenantIdentity that controls it.
func ownJWKS(cm *corev1.ConfigMap) bool {
	owner := metav1.GetControllerOfNoCopy(cm)
	return owner != nil && owner.Kind == "TenantIdentity" &&
		strings.HasPrefix(owner.APIVersion, identityv1alpha1.GroupVersion.Group+"/") &&
		cm.Name == identityv1alpha1.JWKSConfigMapName(owner.Name)
}

func dropData(cm *corev1.ConfigMap) { cm.Data, cm.BinaryData = nil, nil }

func dataSize(cm *corev1.ConfigMap) int {
	n := 0
	for k, v := range cm.Data {
		n += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		n += len(k) + len(v)
	}
	return n
}

// TrimSecret keeps a Secret's metadata only: signet's annotations (the
// key records), labels, owner references, and the managed fields of a
// signing Secret (which tell whether anyone but signet wrote its data). A
// typed Secret, should anything ever start such an informer, loses its
// data all the same.
func TrimSecret(in any) (any, error) {
	switch s := in.(type) {
	case *metav1.PartialObjectMetadata:
		trimSecretMeta(&s.ObjectMeta)
	case *corev1.Secret:
		s.Data, s.StringData = nil, nil
		trimSecretMeta(&s.ObjectMeta)
	}
	return in, nil
}

func trimSecretMeta(m *metav1.ObjectMeta) {
	internMeta(m)
	if m.Labels[identityv1alpha1.LabelComponent] != identityv1alpha1.ComponentSigningKey {
		m.ManagedFields = nil
		return
	}
	managedfields.Compact(m)
}

// maxConditionMessage: signet's own messages are capped at about 1 KiB;
// a longer one was written by someone else, and is cut in the cache (the
// controller then finds the status differs, and rewrites it).
const maxConditionMessage = 2 << 10

// TrimTenantIdentity drops what no reader of the cache uses: managed
// fields, annotations, and oversized condition messages. With serverOnly,
// the JWKS server's cache also drops the status but its conditions' types
// and statuses (the server reads only whether Published is False).
func TrimTenantIdentity(serverOnly bool) func(any) (any, error) {
	return func(in any) (any, error) {
		ti, ok := in.(*identityv1alpha1.TenantIdentity)
		if !ok {
			return in, nil
		}
		ti.ManagedFields, ti.Annotations = nil, nil
		internTenantIdentity(ti)
		for i := range ti.Status.Conditions {
			if c := &ti.Status.Conditions[i]; len(c.Message) > maxConditionMessage {
				c.Message = c.Message[:maxConditionMessage]
			}
		}
		if serverOnly {
			return serverTenantIdentity(ti), nil
		}
		return ti, nil
	}
}

// serverTenantIdentity is what the JWKS server reads of a TenantIdentity
// (ownership, the issuer, max-age, whether its status withholds
// publication), in a new object, so that nothing else of the decoded one
// stays reachable.
func serverTenantIdentity(ti *identityv1alpha1.TenantIdentity) *identityv1alpha1.TenantIdentity {
	out := &identityv1alpha1.TenantIdentity{
		TypeMeta: ti.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: ti.Name, Namespace: ti.Namespace, UID: ti.UID, ResourceVersion: ti.ResourceVersion,
			CreationTimestamp: ti.CreationTimestamp, DeletionTimestamp: ti.DeletionTimestamp,
		},
		Spec: identityv1alpha1.TenantIdentitySpec{
			Org: ti.Spec.Org, SiteID: ti.Spec.SiteID, Issuer: ti.Spec.Issuer,
			Keys: identityv1alpha1.KeyPolicy{PrePublish: ti.Spec.Keys.PrePublish},
		},
	}
	for _, c := range ti.Status.Conditions {
		if c.Type == identityv1alpha1.ConditionPublished {
			out.Status.Conditions = []metav1.Condition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out
}

// serverConfigMap is what the JWKS server reads of a JWKS ConfigMap or a
// claim record, in a new object.
func serverConfigMap(cm *corev1.ConfigMap) *corev1.ConfigMap {
	out := &corev1.ConfigMap{
		TypeMeta: cm.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: cm.Name, Namespace: cm.Namespace, UID: cm.UID, ResourceVersion: cm.ResourceVersion,
			Annotations: cm.Annotations,
		},
		Data: cm.Data,
	}
	out.Labels = make(map[string]string, 3)
	for _, l := range []string{identityv1alpha1.LabelComponent, identityv1alpha1.LabelOrg, identityv1alpha1.LabelSite} {
		if v, ok := cm.Labels[l]; ok {
			out.Labels[l] = v
		}
	}
	if owner := metav1.GetControllerOfNoCopy(cm); owner != nil {
		out.OwnerReferences = []metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID, Controller: owner.Controller}}
	}
	return out
}

// TrimNamespace keeps what org binding reads: the name and the labels.
func TrimNamespace(in any) (any, error) {
	ns, ok := in.(*corev1.Namespace)
	if !ok {
		return in, nil
	}
	return &corev1.Namespace{
		TypeMeta: ns.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: intern(ns.Name), UID: ns.UID, ResourceVersion: ns.ResourceVersion,
			Labels: internMap(ns.Labels, nil), DeletionTimestamp: ns.DeletionTimestamp,
		},
	}, nil
}
