package controllers

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
)

// The objects signet makes for a TenantIdentity, and how they encode what
// they hold. A key Secret stores its key in data (immutable) and its record
// in annotations (mutable, and watched as metadata), so that a lost status
// never loses a timeline and a reconcile that changes nothing reads no
// private key.
const (
	dataKeyPEM  = "key.pem"
	dataCertPEM = "cert.pem"
	dataKeyJWK  = "key.jwk"
	dataKID     = "kid"
	dataAlg     = "alg"

	annKID         = identityv1alpha1.AnnotationKID
	annAlgorithm   = identityv1alpha1.AnnotationAlgorithm
	annState       = identityv1alpha1.AnnotationKeyState
	annPublishedAt = "identity.signet.dev/published-at"
	annActivatesAt = "identity.signet.dev/activates-at"
	annRotatesAt   = "identity.signet.dev/rotates-at"
	annRetiredAt   = "identity.signet.dev/retired-at"
	annRemovesAt   = "identity.signet.dev/removes-at"
	annTrigger     = "identity.signet.dev/trigger"

	// secretTypeKey marks signet's key Secrets for humans and tools.
	secretTypeKey corev1.SecretType = "identity.signet.dev/signing-key"
)

var recordTimes = []struct {
	annotation string
	field      func(*rotation.Key) *time.Time
}{
	{annPublishedAt, func(k *rotation.Key) *time.Time { return &k.PublishedAt }},
	{annActivatesAt, func(k *rotation.Key) *time.Time { return &k.ActivatesAt }},
	{annRotatesAt, func(k *rotation.Key) *time.Time { return &k.RotatesAt }},
	{annRetiredAt, func(k *rotation.Key) *time.Time { return &k.RetiredAt }},
	{annRemovesAt, func(k *rotation.Key) *time.Time { return &k.RemovesAt }},
}

// isRecordAnnotation says whether an annotation belongs to a key's record.
func isRecordAnnotation(name string) bool {
	switch name {
	case annKID, annAlgorithm, annState, annTrigger:
		return true
	}
	for _, rt := range recordTimes {
		if rt.annotation == name {
			return true
		}
	}
	return false
}

// storedRecord is the record part of a Secret's annotations, as stored.
func storedRecord(annotations map[string]string) map[string]string {
	out := map[string]string{}
	for name, v := range annotations {
		if isRecordAnnotation(name) {
			out[name] = v
		}
	}
	return out
}

// recordAnnotations encodes a key's record. Times keep nanoseconds so that
// a record read back equals the one written.
func recordAnnotations(k rotation.Key) map[string]string {
	ann := map[string]string{
		annKID:       k.KID,
		annAlgorithm: k.Algorithm,
		annState:     string(k.State),
	}
	for _, rt := range recordTimes {
		if t := *rt.field(&k); !t.IsZero() {
			ann[rt.annotation] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	if k.Trigger != "" {
		ann[annTrigger] = k.Trigger
	}
	return ann
}

// recordFromSecret decodes a key Secret's record from its metadata.
func recordFromSecret(s metav1.Object) (rotation.Key, error) {
	ann := s.GetAnnotations()
	k := rotation.Key{
		KID:       ann[annKID],
		Algorithm: ann[annAlgorithm],
		State:     rotation.State(ann[annState]),
		Trigger:   ann[annTrigger],
	}
	if k.KID == "" || k.Algorithm == "" {
		return k, fmt.Errorf("secret %s has no kid or algorithm annotation", s.GetName())
	}
	switch k.State {
	case rotation.Next, rotation.Active, rotation.Retired:
	default:
		return k, fmt.Errorf("secret %s has an unknown state %q", s.GetName(), k.State)
	}
	for _, rt := range recordTimes {
		v, ok := ann[rt.annotation]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return k, fmt.Errorf("secret %s: annotation %s: %w", s.GetName(), rt.annotation, err)
		}
		*rt.field(&k) = t
	}
	return k, nil
}

// keySecretName is <name>-<short kid>: stable, and short enough for any
// TenantIdentity name Kubernetes accepts.
func keySecretName(ti *identityv1alpha1.TenantIdentity, kid string) (string, error) {
	short, err := keys.ShortKID(kid)
	if err != nil {
		return "", err
	}
	name := ti.Name
	if len(name) > 253-len(short)-1 {
		name = name[:253-len(short)-1]
	}
	return name + "-" + short, nil
}

// ownedMeta is the metadata of every object the controller creates for ti.
func ownedMeta(ti *identityv1alpha1.TenantIdentity, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       ti.Namespace,
		Labels:          ownedLabels(ti, component),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ti, identityv1alpha1.GroupVersion.WithKind("TenantIdentity"))},
	}
}

// ownedLabels are the labels of every object the controller creates for
// ti: the caches select signet's objects by them.
func ownedLabels(ti *identityv1alpha1.TenantIdentity, component string) map[string]string {
	return map[string]string{
		identityv1alpha1.LabelTenantIdentity: ti.Name,
		identityv1alpha1.LabelComponent:      component,
		"app.kubernetes.io/managed-by":       "signet",
	}
}

// keySecretLabels are the labels of the Secret of key kid.
func keySecretLabels(ti *identityv1alpha1.TenantIdentity, kid string) map[string]string {
	l := ownedLabels(ti, identityv1alpha1.ComponentKey)
	short, _ := keys.ShortKID(kid)
	l[identityv1alpha1.LabelKID] = short
	return l
}

// jwksLabels are the labels of ti's JWKS ConfigMap: the server finds the
// org/site a ConfigMap may serve by them.
func jwksLabels(ti *identityv1alpha1.TenantIdentity) map[string]string {
	l := ownedLabels(ti, identityv1alpha1.ComponentJWKS)
	l[identityv1alpha1.LabelOrg] = ti.Spec.Org
	l[identityv1alpha1.LabelSite] = ti.Spec.SiteID
	return l
}

// keySecret is the immutable Secret of one new key with its record.
func keySecret(ti *identityv1alpha1.TenantIdentity, m *keys.Material, rec rotation.Key) (*corev1.Secret, error) {
	name, err := keySecretName(ti, m.KID)
	if err != nil {
		return nil, err
	}
	meta := ownedMeta(ti, name, identityv1alpha1.ComponentKey)
	meta.Labels = keySecretLabels(ti, m.KID)
	meta.Annotations = recordAnnotations(rec)
	data := map[string][]byte{dataKeyPEM: m.PrivatePEM}
	if len(m.CertPEM) > 0 {
		data[dataCertPEM] = m.CertPEM
	}
	immutable := true
	return &corev1.Secret{ObjectMeta: meta, Type: secretTypeKey, Immutable: &immutable, Data: data}, nil
}

// signingSecret is the Secret a signing workload mounts, holding m (the
// Active key) only. Its kid is also an annotation, so that a reconcile can
// tell which key it holds from its metadata alone.
func signingSecret(ti *identityv1alpha1.TenantIdentity, m *keys.Material) (*corev1.Secret, error) {
	data, err := signingSecretData(m)
	if err != nil {
		return nil, err
	}
	meta := ownedMeta(ti, identityv1alpha1.SigningSecretName(ti.Name), identityv1alpha1.ComponentSigningKey)
	meta.Annotations = map[string]string{annKID: m.KID}
	return &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data}, nil
}

// signingSecretData is what a signing workload mounts: the Active key only.
func signingSecretData(m *keys.Material) (map[string][]byte, error) {
	jwk, err := m.PrivateJWK()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		dataKeyPEM: m.PrivatePEM,
		dataKeyJWK: jwk,
		dataKID:    []byte(m.KID),
		dataAlg:    []byte(m.Algorithm),
	}, nil
}

// jwksConfigMapData is the ConfigMap's data for the published kids, in
// order, with its key-order annotation value.
func jwksConfigMapData(published []string, publicJWKs map[string][]byte) (map[string]string, string) {
	data := make(map[string]string, len(published))
	order := make([]string, 0, len(published))
	for _, kid := range published {
		jwk, ok := publicJWKs[kid]
		if !ok {
			continue
		}
		data[configMapKey(kid)] = string(jwk)
		order = append(order, kid)
	}
	return data, strings.Join(order, ",")
}

// configMapKey is the data key of a kid's public JWK.
func configMapKey(kid string) string { return kid + ".json" }

// kidsOfConfigMap lists the kids a JWKS ConfigMap publishes.
func kidsOfConfigMap(cm *corev1.ConfigMap) []string {
	if cm == nil {
		return nil
	}
	kids := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		if kid, ok := strings.CutSuffix(k, ".json"); ok {
			kids = append(kids, kid)
		}
	}
	return kids
}

// desiredConfigMap is the JWKS ConfigMap for the published kids, as of now.
// Its sequence (published as spiffe_sequence) is the Unix second of the last
// change of its keys, one more than before when two changes share a second:
// it only grows, even across a deleted and recreated ConfigMap.
func desiredConfigMap(ti *identityv1alpha1.TenantIdentity, current *corev1.ConfigMap, published []string, publicJWKs map[string][]byte, now time.Time) *corev1.ConfigMap {
	data, order := jwksConfigMapData(published, publicJWKs)
	seq := now.Unix()
	annotations := map[string]string{}
	if current != nil {
		maps.Copy(annotations, current.Annotations) // other tools' annotations stay
		prev, _ := strconv.ParseInt(current.Annotations[identityv1alpha1.AnnotationSequence], 10, 64)
		seq = max(prev+1, seq)
		if maps.Equal(current.Data, data) && current.Annotations[identityv1alpha1.AnnotationKeyOrder] == order {
			seq = prev
		}
	}
	meta := ownedMeta(ti, identityv1alpha1.JWKSConfigMapName(ti.Name), identityv1alpha1.ComponentJWKS)
	meta.Labels = jwksLabels(ti)
	annotations[identityv1alpha1.AnnotationKeyOrder] = order
	annotations[identityv1alpha1.AnnotationSequence] = strconv.FormatInt(seq, 10)
	meta.Annotations = annotations
	return &corev1.ConfigMap{ObjectMeta: meta, Data: data}
}
