package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
)

// loadedKeys are the stored keys of a TenantIdentity, by kid.
type loadedKeys struct {
	material map[string]*keys.Material
	secret   map[string]*corev1.Secret
}

// rotationInput turns what gather read into the policy's input. A key
// Secret that cannot be read is left out (as if lost) with a Warning: the
// policy then treats its kid like any lost key.
func (r *TenantIdentityReconciler) rotationInput(ctx context.Context, obs *observed, now time.Time) (rotation.Input, *loadedKeys, error) {
	ti := obs.ti
	policy, err := policyFromSpec(ti.Spec.Keys)
	if err != nil {
		return rotation.Input{}, nil, err
	}
	in := rotation.Input{
		Now: now, Policy: policy, Suspend: ti.Spec.Suspend,
		Trigger: ti.Spec.RotationTrigger, LastTrigger: ti.Status.LastRotationTrigger,
		Revoked:       ti.Spec.RevokedKeyIDs,
		PublishedKIDs: kidsOfConfigMap(obs.configMap),
	}
	if obs.signing != nil {
		in.SigningKID = string(obs.signing.Data[dataKID])
	}
	loaded := &loadedKeys{material: map[string]*keys.Material{}, secret: map[string]*corev1.Secret{}}
	for i := range obs.keySecrets {
		s := &obs.keySecrets[i]
		rec, m, err := readKeySecret(s)
		if err != nil {
			r.Recorder.Eventf(ti, nil, corev1.EventTypeWarning, "KeySecretUnreadable", "Read", "%s; treated as lost", err.Error())
			continue
		}
		in.Keys = append(in.Keys, rec)
		loaded.material[rec.KID], loaded.secret[rec.KID] = m, s
	}
	in.Orphans = r.orphans(obs, loaded)
	return in, loaded, nil
}

// readKeySecret reads a key Secret's record and key, and checks they agree.
func readKeySecret(s *corev1.Secret) (rotation.Key, *keys.Material, error) {
	rec, err := recordFromSecret(s)
	if err != nil {
		return rec, nil, err
	}
	m, err := materialFromSecret(s, rec.Algorithm)
	if err != nil {
		return rec, nil, fmt.Errorf("secret %s: %w", s.Name, err)
	}
	if m.KID != rec.KID {
		return rec, nil, fmt.Errorf("secret %s holds kid %s but is annotated %s", s.Name, m.KID, rec.KID)
	}
	return rec, m, nil
}

// orphans are published kids whose key Secret is gone. Only kids the status
// knows are kept (as Retired, for their overlap): an entry someone added to
// the ConfigMap by hand is not signet's key and is dropped.
func (r *TenantIdentityReconciler) orphans(obs *observed, loaded *loadedKeys) []rotation.Key {
	known := map[string]identityv1alpha1.KeyStatus{}
	for _, ks := range obs.ti.Status.Keys {
		known[ks.KID] = ks
	}
	var out []rotation.Key
	for _, kid := range kidsOfConfigMap(obs.configMap) {
		if _, stored := loaded.material[kid]; stored {
			continue
		}
		ks, ok := known[kid]
		if !ok && obs.ti.Spec.Suspend {
			continue // suspended: the documents stay as they are, this entry too
		}
		if !ok {
			r.Recorder.Eventf(obs.ti, nil, corev1.EventTypeWarning, "UnknownKeyDropped", "Repair",
				"the JWKS ConfigMap lists kid %s, which signet never published; it is removed", kid)
			continue
		}
		o := rotation.Key{KID: kid, Algorithm: string(ks.Algorithm), State: rotation.Retired}
		if ks.State == identityv1alpha1.KeyStateRetired && ks.RemovesAt != nil {
			o.RemovesAt = ks.RemovesAt.Time
			if ks.RetiresAt != nil {
				o.RetiredAt = ks.RetiresAt.Time
			}
		}
		out = append(out, o)
	}
	return out
}

// createKey generates the key the plan asks for and stores it, record
// included, before anything refers to it.
func (r *TenantIdentityReconciler) createKey(ctx context.Context, obs *observed, in rotation.Input, nk *rotation.NewKey, loaded *loadedKeys) (rotation.Input, error) {
	ti := obs.ti
	var cert *keys.CertOptions
	if ti.Spec.Keys.Certificate.Enabled {
		p := in.Policy
		cert = &keys.CertOptions{
			CommonName: issuer(ti, r.PublicBaseURL),
			NotBefore:  in.Now.Add(-time.Minute),
			// Outlive the key's planned life (publication, signing, overlap) with a period to spare.
			NotAfter: in.Now.Add(p.PrePublish + 2*p.RotationPeriod + p.Overlap),
		}
	}
	m, err := r.Generate(nk.Algorithm, nk.RSAKeySize, cert)
	if err != nil {
		return in, fmt.Errorf("generate %s key: %w", nk.Algorithm, err)
	}
	rec := nk.Record
	rec.KID, rec.Algorithm = m.KID, m.Algorithm
	s, err := keySecret(ti, m, rec)
	if err != nil {
		return in, err
	}
	if err := r.Create(ctx, s); err != nil {
		return in, fmt.Errorf("store new key %s: %w", m.KID, err)
	}
	loaded.material[m.KID], loaded.secret[m.KID] = m, s
	in.Keys = append(slices.Clone(in.Keys), rec)
	return in, nil
}

// apply writes the plan in the order that keeps every crash safe: key
// records, then deletions, then the published documents, then the signing
// Secret. A key is recorded before it is published, published before it
// signs, and the policy repairs whatever a crash between two writes leaves.
func (r *TenantIdentityReconciler) apply(ctx context.Context, obs *observed, plan rotation.Plan, loaded *loadedKeys) error {
	for _, k := range plan.Keys {
		if err := r.writeRecord(ctx, loaded.secret[k.KID], k); err != nil {
			return err
		}
	}
	for _, kid := range plan.Delete {
		if s, ok := loaded.secret[kid]; ok {
			if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete key %s: %w", kid, err)
			}
		}
	}
	if err := r.writeConfigMap(ctx, obs, plan, loaded); err != nil {
		return err
	}
	if plan.ActiveKID == "" {
		return nil
	}
	if plan.Suspended && loaded.material[plan.ActiveKID] == nil {
		return nil // suspended: the signing Secret stays as it is, even when its key's Secret is gone
	}
	return r.writeSigningSecret(ctx, obs, loaded.material[plan.ActiveKID])
}

// writeRecord updates a key Secret's record annotations when they changed.
func (r *TenantIdentityReconciler) writeRecord(ctx context.Context, s *corev1.Secret, k rotation.Key) error {
	if s == nil {
		return fmt.Errorf("no stored secret for key %s", k.KID)
	}
	want := recordAnnotations(k)
	if maps.Equal(storedRecord(s.Annotations), want) {
		return nil
	}
	patch := client.MergeFrom(s.DeepCopy())
	maps.DeleteFunc(s.Annotations, func(name, _ string) bool { return isRecordAnnotation(name) })
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Annotations, want)
	if err := r.Patch(ctx, s, patch); err != nil {
		return fmt.Errorf("record timeline of key %s: %w", k.KID, err)
	}
	return nil
}

// writeConfigMap publishes the public halves of the plan's keys. Orphans
// keep the public key the ConfigMap already had, if it is still sound.
func (r *TenantIdentityReconciler) writeConfigMap(ctx context.Context, obs *observed, plan rotation.Plan, loaded *loadedKeys) error {
	public := map[string][]byte{}
	for _, kid := range plan.Published {
		if m, ok := loaded.material[kid]; ok {
			jwk, err := m.PublicJWK()
			if err != nil {
				return fmt.Errorf("public JWK of %s: %w", kid, err)
			}
			public[kid] = jwk
			continue
		}
		if obs.configMap == nil {
			continue
		}
		if jwk := []byte(obs.configMap.Data[configMapKey(kid)]); keys.CheckPublic(jwk) == nil {
			public[kid] = jwk
		}
	}
	want := desiredConfigMap(obs.ti, obs.configMap, plan.Published, public, r.Clock.Now())
	if obs.configMap == nil {
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("create JWKS ConfigMap: %w", err)
		}
		return nil
	}
	cm := obs.configMap
	if maps.Equal(cm.Data, want.Data) && maps.Equal(cm.Annotations, want.Annotations) && labelsHave(cm.Labels, want.Labels) {
		return nil
	}
	cm.Data, cm.Annotations = want.Data, want.Annotations
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	maps.Copy(cm.Labels, want.Labels)
	if err := r.Update(ctx, cm); err != nil {
		return fmt.Errorf("update JWKS ConfigMap: %w", err)
	}
	return nil
}

// writeSigningSecret points the signing Secret at the Active key, and
// repairs it if it was edited or deleted.
func (r *TenantIdentityReconciler) writeSigningSecret(ctx context.Context, obs *observed, active *keys.Material) error {
	if active == nil {
		return fmt.Errorf("the Active key is not loaded")
	}
	data, err := signingSecretData(active)
	if err != nil {
		return err
	}
	meta := ownedMeta(obs.ti, identityv1alpha1.SigningSecretName(obs.ti.Name), identityv1alpha1.ComponentSigningKey)
	if obs.signing == nil {
		s := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, Data: data}
		if err := r.Create(ctx, s); err != nil {
			return fmt.Errorf("create signing secret: %w", err)
		}
		return nil
	}
	s := obs.signing
	// The labels matter too: without them the cache, which selects by
	// label, no longer sees the Secret.
	if secretDataEqual(s.Data, data) && len(s.StringData) == 0 && labelsHave(s.Labels, meta.Labels) {
		return nil
	}
	s.Data, s.StringData = data, nil
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	maps.Copy(s.Labels, meta.Labels)
	if err := r.Update(ctx, s); err != nil {
		if apierrors.IsInvalid(err) {
			return fmt.Errorf("signing secret %s cannot be updated (made immutable by hand?): %w", s.Name, err)
		}
		return fmt.Errorf("update signing secret: %w", err)
	}
	return nil
}

func secretDataEqual(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func labelsHave(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
