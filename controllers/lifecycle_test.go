package controllers

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
)

// expectTime: status times are stored with second precision, so a time
// may differ from the record's by less than a second.
func expectTime(t testing.TB, what string, got *metav1.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: unset, want %s", what, want)
		return
	}
	if d := got.Sub(want); d <= -time.Second || d >= time.Second {
		t.Errorf("%s = %s, want %s", what, got.UTC(), want)
	}
}

// expectRemoval: a removal time may be rounded up, never down.
func expectRemoval(t testing.TB, what string, got *metav1.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: unset, want %s", what, want)
		return
	}
	if d := got.Sub(want); d < 0 || d >= time.Second {
		t.Errorf("%s = %s, want %s (or up to a second later, never earlier)", what, got.UTC(), want)
	}
}

func expectOwnedBy(t testing.TB, what string, o metav1.Object, ti *identityv1alpha1.TenantIdentity) {
	t.Helper()
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.UID != ti.UID || ref.Kind != "TenantIdentity" || ref.Name != ti.Name ||
		ref.APIVersion != identityv1alpha1.GroupVersion.String() {
		t.Errorf("%s: controller reference %+v, want the TenantIdentity %s (%s)", what, ref, ti.Name, ti.UID)
	}
}

func expectLabels(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: label %s = %q, want %q (labels %v)", what, k, got[k], v, got)
		}
	}
}

func TestCreateMakesOneActiveKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	created := h.create(nil)
	res := h.reconcile()
	if res.RequeueAfter != period-prePublish {
		t.Errorf("RequeueAfter = %s, want %s (when the successor is due)", res.RequeueAfter, period-prePublish)
	}
	h.expectEvents("create", "Normal KeyCreated")
	s := h.snap()
	ti := &s.ti
	if ti.UID != created.UID {
		t.Fatal("the TenantIdentity was replaced")
	}

	// Exactly one key, Active.
	if len(s.keys) != 1 {
		t.Fatalf("%d key Secrets, want 1", len(s.keys))
	}
	kid := s.only(t, rotation.Active)
	k := s.keys[kid]
	rec := k.rec
	if rec.Algorithm != keys.ES256 || !rec.PublishedAt.Equal(t0) || !rec.ActivatesAt.Equal(t0) || !rec.RotatesAt.Equal(t0.Add(period)) {
		t.Errorf("record %+v, want ES256 published and activated at t0, rotating at t0+%s", rec, period)
	}

	// Its key Secret.
	short, err := keys.ShortKID(kid)
	if err != nil {
		t.Fatal(err)
	}
	sec := k.secret
	if sec.Name != tiName+"-"+short {
		t.Errorf("key Secret name %s, want %s-%s", sec.Name, tiName, short)
	}
	if sec.Immutable == nil || !*sec.Immutable {
		t.Error("key Secret is not immutable")
	}
	expectLabels(t, "key Secret", sec.Labels, map[string]string{
		identityv1alpha1.LabelTenantIdentity: tiName,
		identityv1alpha1.LabelKID:            short,
		identityv1alpha1.LabelComponent:      identityv1alpha1.ComponentKey,
	})
	expectOwnedBy(t, "key Secret", &sec, ti)
	block, rest := pem.Decode(sec.Data[dataKeyPEM])
	if block == nil || block.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("key Secret %s is not one PKCS#8 PEM block", dataKeyPEM)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("key Secret: %v", err)
	}
	signer := priv.(crypto.Signer)
	if got, _ := keys.KID(signer.Public()); got != kid {
		t.Errorf("key Secret holds kid %s, recorded %s", got, kid)
	}

	// The signing Secret: the Active key, with a private JWK under its kid.
	if s.signing == nil {
		t.Fatal("no signing Secret")
	}
	if s.signing.Name != tiName+"-signing-key" {
		t.Errorf("signing Secret %s", s.signing.Name)
	}
	expectOwnedBy(t, "signing Secret", s.signing, ti)
	expectLabels(t, "signing Secret", s.signing.Labels, map[string]string{
		identityv1alpha1.LabelTenantIdentity: tiName,
		identityv1alpha1.LabelComponent:      identityv1alpha1.ComponentSigningKey,
	})
	if got := slices.Sorted(maps.Keys(s.signing.Data)); !slices.Equal(got, []string{"alg", "key.jwk", "key.pem", "kid"}) {
		t.Errorf("signing Secret data keys %q", got)
	}
	if string(s.signing.Data["kid"]) != kid || string(s.signing.Data["alg"]) != keys.ES256 ||
		string(s.signing.Data["key.pem"]) != string(sec.Data[dataKeyPEM]) {
		t.Error("signing Secret does not hold the Active key")
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(s.signing.Data["key.jwk"], &jwk); err != nil {
		t.Fatalf("signing Secret key.jwk: %v", err)
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if jwk.IsPublic() || !jwk.Valid() || jwk.KeyID != kid || jwk.Algorithm != keys.ES256 ||
		base64.RawURLEncoding.EncodeToString(thumb) != kid {
		t.Errorf("key.jwk: public=%v valid=%v kid=%s alg=%s, want the private Active key %s", jwk.IsPublic(), jwk.Valid(), jwk.KeyID, jwk.Algorithm, kid)
	}

	// The ConfigMap publishes exactly the Active key's public half.
	cm := s.cm
	if cm == nil {
		t.Fatal("no JWKS ConfigMap")
	}
	if cm.Name != tiName+"-jwks" {
		t.Errorf("ConfigMap %s", cm.Name)
	}
	expectOwnedBy(t, "ConfigMap", cm, ti)
	expectLabels(t, "ConfigMap", cm.Labels, map[string]string{
		identityv1alpha1.LabelOrg:            "acme",
		identityv1alpha1.LabelSite:           ti.Spec.SiteID,
		identityv1alpha1.LabelTenantIdentity: tiName,
		identityv1alpha1.LabelComponent:      identityv1alpha1.ComponentJWKS,
	})
	if got := slices.Collect(maps.Keys(cm.Data)); !slices.Equal(got, []string{kid + ".json"}) {
		t.Errorf("ConfigMap entries %q, want [%s.json]", got, kid)
	}
	if err := keys.CheckPublic([]byte(cm.Data[kid+".json"])); err != nil {
		t.Error(err)
	}
	var pub jose.JSONWebKey
	if err := json.Unmarshal([]byte(cm.Data[kid+".json"]), &pub); err != nil {
		t.Fatal(err)
	}
	if !pub.IsPublic() || pub.KeyID != kid || !pub.Valid() {
		t.Errorf("published JWK: public=%v kid=%s", pub.IsPublic(), pub.KeyID)
	}
	if got := cm.Annotations[identityv1alpha1.AnnotationKeyOrder]; got != kid {
		t.Errorf("key-order %q, want %q", got, kid)
	}

	// Status.
	st := ti.Status
	if st.ObservedGeneration != ti.Generation {
		t.Errorf("observedGeneration %d, want %d", st.ObservedGeneration, ti.Generation)
	}
	expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	expectCondition(t, s, identityv1alpha1.ConditionPublished, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	base := "https://signet.test/v2/org/acme/nico/site/" + ti.Spec.SiteID
	if st.Issuer != base {
		t.Errorf("issuer %q, want %q", st.Issuer, base)
	}
	if st.JWKSURI != base+"/.well-known/jwks.json" {
		t.Errorf("jwksURI %q", st.JWKSURI)
	}
	if st.ActiveKeyID != kid {
		t.Errorf("activeKeyID %q, want %q", st.ActiveKeyID, kid)
	}
	expectTime(t, "nextRotationTime", st.NextRotationTime, t0.Add(period))
	if len(st.Keys) != 1 {
		t.Fatalf("status keys %+v", st.Keys)
	}
	ks := st.Keys[0]
	if ks.KID != kid || ks.Algorithm != keys.ES256 || ks.State != identityv1alpha1.KeyStateActive || ks.SecretName != sec.Name {
		t.Errorf("status key %+v", ks)
	}
	expectTime(t, "publishedAt", ks.PublishedAt, t0)
	expectTime(t, "activatesAt", ks.ActivatesAt, t0)
	expectTime(t, "retiresAt", ks.RetiresAt, t0.Add(period))
	expectRemoval(t, "removesAt", ks.RemovesAt, t0.Add(period+overlap))

	// A second reconcile at the same instant changes nothing.
	before := s.resourceVersions()
	h.reconcile()
	h.expectEvents("second reconcile")
	if after := h.snap().resourceVersions(); !maps.Equal(before, after) {
		t.Errorf("a second reconcile wrote objects: %v -> %v", before, after)
	}
}

func TestCustomIssuer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(func(s *identityv1alpha1.TenantIdentitySpec) { s.Issuer = "https://id.acme.example/dc1" })
	h.reconcile()
	s := h.snap()
	if s.ti.Status.Issuer != "https://id.acme.example/dc1" {
		t.Errorf("issuer %q", s.ti.Status.Issuer)
	}
	if want := "https://signet.test/v2/org/acme/nico/site/" + s.ti.Spec.SiteID + "/.well-known/jwks.json"; s.ti.Status.JWKSURI != want {
		t.Errorf("jwksURI %q, want %q: keys are served by signet whatever the issuer", s.ti.Status.JWKSURI, want)
	}
}

// keyNames names keys A, B, C... in the order they appear, for readable
// tables.
type keyNames struct {
	byKID  map[string]string
	byName map[string]string
}

func newKeyNames() *keyNames {
	return &keyNames{byKID: map[string]string{}, byName: map[string]string{}}
}

func (n *keyNames) learn(t testing.TB, s *snapshot) {
	t.Helper()
	var fresh []string
	for _, kid := range slices.Concat(s.kids(), s.published()) {
		if _, ok := n.byKID[kid]; !ok && !slices.Contains(fresh, kid) {
			fresh = append(fresh, kid)
		}
	}
	if len(fresh) > 1 {
		t.Fatalf("%d new keys in one step: %q", len(fresh), fresh)
	}
	for _, kid := range fresh {
		name := string(rune('A' + len(n.byKID)))
		n.byKID[kid], n.byName[name] = name, kid
	}
}

func (n *keyNames) kid(t testing.TB, name string) string {
	t.Helper()
	kid, ok := n.byName[name]
	if !ok {
		t.Fatalf("no key %s yet", name)
	}
	return kid
}

func (n *keyNames) names(kids []string) string {
	var out []string
	for _, kid := range kids {
		out = append(out, n.byKID[kid])
	}
	return strings.Join(out, ",")
}

// state is a compact view of what is stored: "Active=B Next= Retired=A
// published=B,A signing=B", published in document order.
func (n *keyNames) state(s *snapshot) string {
	var order []string
	if s.cm != nil && len(s.cm.Data) > 0 {
		order = strings.Split(s.cm.Annotations[identityv1alpha1.AnnotationKeyOrder], ",")
	}
	return "Active=" + n.names(s.inState(rotation.Active)) +
		" Next=" + n.names(s.inState(rotation.Next)) +
		" Retired=" + n.names(s.inState(rotation.Retired)) +
		" published=" + n.names(order) +
		" signing=" + n.byKID[s.signingKID()]
}

// step is one instant of a scripted lifecycle.
type step struct {
	at      time.Duration
	requeue time.Duration
	events  []string
	state   string
}

// run plays steps, checking after each reconcile the stored state, the
// events and RequeueAfter (the invariants are checked by the harness).
func (h *harness) run(names *keyNames, steps []step) {
	h.t.Helper()
	for _, st := range steps {
		h.at(st.at)
		res := h.reconcile()
		s := h.snap()
		names.learn(h.t, s)
		when := "t0+" + st.at.String()
		h.expectEvents(when, st.events...)
		if got := names.state(s); got != st.state {
			h.t.Errorf("%s: %s\n  want %s", when, got, st.state)
		}
		if res.RequeueAfter != st.requeue {
			h.t.Errorf("%s: RequeueAfter %s, want %s", when, res.RequeueAfter, st.requeue)
		}
	}
}

func TestScheduledRotations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	const ns = time.Nanosecond
	h.run(names, []step{
		{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
		{8*time.Minute - ns, ns, nil, "Active=A Next= Retired= published=A signing=A"},
		// The successor is published prePublish before the period ends, not signing yet.
		{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
		{10*time.Minute - ns, ns, nil, "Active=A Next=B Retired= published=A,B signing=A"},
		// Activation at rotatesAt: the signing Secret switches, A is Retired.
		{10 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"},
		{13*time.Minute - ns, ns, nil, "Active=B Next= Retired=A published=B,A signing=B"},
		// Removal after overlap.
		{13 * time.Minute, 5 * time.Minute, []string{"Normal KeyRemoved"}, "Active=B Next= Retired= published=B signing=B"},
		{18 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=B Next=C Retired= published=B,C signing=B"},
		{20*time.Minute - ns, ns, nil, "Active=B Next=C Retired= published=B,C signing=B"},
		{20 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=C Next= Retired=B published=C,B signing=C"},
		{23 * time.Minute, 5 * time.Minute, []string{"Normal KeyRemoved"}, "Active=C Next= Retired= published=C signing=C"},
	})

	// The records and status of the last rotation.
	s := h.snap()
	c := names.kid(t, "C")
	rec := s.keys[c].rec
	if !rec.PublishedAt.Equal(t0.Add(18*time.Minute)) || !rec.ActivatesAt.Equal(t0.Add(20*time.Minute)) || !rec.RotatesAt.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("record of C: %+v", rec)
	}
	expectTime(t, "nextRotationTime", s.ti.Status.NextRotationTime, t0.Add(30*time.Minute))
	// Removed keys' Secrets are gone, not only unpublished.
	for _, name := range []string{"A", "B"} {
		if _, ok := s.keys[names.kid(t, name)]; ok {
			t.Errorf("key %s still stored after its removal", name)
		}
	}
	// The activations happened when the policy says, and each key was
	// published for prePublish first (the first key aside).
	var got []string
	for _, a := range h.inv.check.Activations() {
		got = append(got, names.byKID[a.KID]+"@"+a.At.Sub(t0).String())
	}
	if want := []string{"A@0s", "B@10m0s", "C@20m0s"}; !slices.Equal(got, want) {
		t.Errorf("signing keys %q, want %q", got, want)
	}
}

// TestStatusDuringRotation checks the status at the interesting instants
// of one rotation.
func TestStatusDuringRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.reconcileAt(0, 8*time.Minute)
	names.learn(t, h.snap())
	h.reconcileAt(8*time.Minute, 2*time.Minute)
	s := h.snap()
	names.learn(t, s)
	a, b := names.kid(t, "A"), names.kid(t, "B")
	if s.ti.Status.ActiveKeyID != a || len(s.ti.Status.Keys) != 2 ||
		s.ti.Status.Keys[0].KID != a || s.ti.Status.Keys[1].KID != b {
		t.Fatalf("status %+v", s.ti.Status)
	}
	ka, kb := s.ti.Status.Keys[0], s.ti.Status.Keys[1]
	if ka.State != identityv1alpha1.KeyStateActive || kb.State != identityv1alpha1.KeyStateNext {
		t.Errorf("states %s, %s", ka.State, kb.State)
	}
	expectTime(t, "A retiresAt", ka.RetiresAt, t0.Add(period))
	expectRemoval(t, "A removesAt", ka.RemovesAt, t0.Add(period+overlap))
	expectTime(t, "B publishedAt", kb.PublishedAt, t0.Add(8*time.Minute))
	expectTime(t, "B activatesAt", kb.ActivatesAt, t0.Add(period))
	expectTime(t, "nextRotationTime", s.ti.Status.NextRotationTime, t0.Add(period))
	if kb.RetiresAt != nil || kb.RemovesAt != nil {
		t.Errorf("Next key has retiresAt/removesAt: %+v", kb)
	}

	h.reconcileAt(10*time.Minute, 3*time.Minute)
	s = h.snap()
	if s.ti.Status.ActiveKeyID != b || s.ti.Status.Keys[0].KID != b || s.ti.Status.Keys[1].KID != a {
		t.Fatalf("status after activation %+v", s.ti.Status)
	}
	ka, kb = s.ti.Status.Keys[1], s.ti.Status.Keys[0]
	if ka.State != identityv1alpha1.KeyStateRetired || kb.State != identityv1alpha1.KeyStateActive {
		t.Errorf("states %s, %s", ka.State, kb.State)
	}
	expectTime(t, "A retiresAt", ka.RetiresAt, t0.Add(period))
	expectRemoval(t, "A removesAt", ka.RemovesAt, t0.Add(period+overlap))
	expectTime(t, "B activatesAt", kb.ActivatesAt, t0.Add(period))
	expectTime(t, "nextRotationTime", s.ti.Status.NextRotationTime, t0.Add(2*period))
	// The last change of the keys (B's activation) sets the sequence.
	if seq := s.cm.Annotations[identityv1alpha1.AnnotationSequence]; seq != strconv.FormatInt(t0.Add(period).Unix(), 10) {
		t.Errorf("sequence %q, want the Unix second of the last change %d", seq, t0.Add(period).Unix())
	}
}

func TestRotationTrigger(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, []step{{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"}})

	h.at(time.Minute)
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "r1" })
	h.run(names, []step{
		// A successor is published now, and activates prePublish later.
		{time.Minute, 2 * time.Minute, []string{"Normal RotationTriggered", "Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
		// Re-reconciling does not create another.
		{time.Minute, 2 * time.Minute, nil, "Active=A Next=B Retired= published=A,B signing=A"},
		{2 * time.Minute, time.Minute, nil, "Active=A Next=B Retired= published=A,B signing=A"},
		{3 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"},
	})
	s := h.snap()
	b := names.kid(t, "B")
	if s.ti.Status.LastRotationTrigger != "r1" {
		t.Errorf("lastRotationTrigger %q, want r1", s.ti.Status.LastRotationTrigger)
	}
	if rec := s.keys[b].rec; rec.Trigger != "r1" || !rec.PublishedAt.Equal(t0.Add(time.Minute)) || !rec.RotatesAt.Equal(t0.Add(3*time.Minute+period)) {
		t.Errorf("record of B %+v", rec)
	}

	// A lost status does not make the same value rotate again: the key
	// records it too.
	h.at(4 * time.Minute)
	ti := h.get()
	patch := ti.DeepCopy()
	patch.Status.LastRotationTrigger = ""
	if err := h.c.Status().Update(h.ctx, patch); err != nil {
		t.Fatal(err)
	}
	h.run(names, []step{
		{4 * time.Minute, 2 * time.Minute, nil, "Active=B Next= Retired=A published=B,A signing=B"},
	})
	if got := h.snap().ti.Status.LastRotationTrigger; got != "r1" {
		t.Errorf("lastRotationTrigger %q after a lost status, want r1", got)
	}

	// A new value rotates again; removal goes on as planned meanwhile.
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "r2" })
	h.run(names, []step{
		{5 * time.Minute, time.Minute, []string{"Normal RotationTriggered", "Normal KeyPublished"}, "Active=B Next=C Retired=A published=B,C,A signing=B"},
		{6 * time.Minute, time.Minute, []string{"Normal KeyRemoved"}, "Active=B Next=C Retired= published=B,C signing=B"},
		{7 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=C Next= Retired=B published=C,B signing=C"},
	})
	if got := h.snap().ti.Status.LastRotationTrigger; got != "r2" {
		t.Errorf("lastRotationTrigger %q, want r2", got)
	}
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	revoke := func(name string) func(*harness, *keyNames) {
		return func(h *harness, names *keyNames) {
			kid := names.kid(h.t, name)
			h.update(func(ti *identityv1alpha1.TenantIdentity) {
				ti.Spec.RevokedKeyIDs = append(ti.Spec.RevokedKeyIDs, kid)
			})
		}
	}
	cases := []struct {
		name    string
		before  []step
		revokeA time.Duration
		revoke  string
		after   step
	}{{
		name:   "Active key, no Next: a new key signs at once",
		before: []step{{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"}},
		revoke: "A", revokeA: time.Minute,
		after: step{time.Minute, 8 * time.Minute,
			[]string{"Warning KeyRevoked", "Warning RevokedActiveKey", "Normal KeyCreated"},
			"Active=B Next= Retired= published=B signing=B"},
	}, {
		name: "Active key with a Next one: the Next key signs at once",
		before: []step{
			{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
			{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
		},
		revoke: "A", revokeA: 9 * time.Minute,
		after: step{9 * time.Minute, 8 * time.Minute,
			[]string{"Warning KeyRevoked", "Warning RevokedActiveKey", "Normal KeyActivated"},
			"Active=B Next= Retired= published=B signing=B"},
	}, {
		name: "Next key: unpublished, and a new successor is published",
		before: []step{
			{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
			{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
		},
		revoke: "B", revokeA: 9 * time.Minute,
		after: step{9 * time.Minute, 2 * time.Minute,
			[]string{"Warning KeyRevoked", "Normal KeyPublished"},
			"Active=A Next=C Retired= published=A,C signing=A"},
	}, {
		name: "Retired key: unpublished before its overlap ends",
		before: []step{
			{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
			{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
			{10 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"},
		},
		revoke: "A", revokeA: 11 * time.Minute,
		after: step{11 * time.Minute, 7 * time.Minute,
			[]string{"Warning KeyRevoked"},
			"Active=B Next= Retired= published=B signing=B"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.create(nil)
			names := newKeyNames()
			h.run(names, tc.before)
			h.at(tc.revokeA)
			revoked := names.kid(t, tc.revoke)
			revokedSecret := h.snap().keys[revoked].secret.Name
			revoke(tc.revoke)(h, names)
			h.run(names, []step{tc.after})
			s := h.snap()
			if s.publishes(revoked) {
				t.Errorf("revoked %s is still published", tc.revoke)
			}
			var sec corev1.Secret
			if err := h.c.Get(h.ctx, keyOf(h.ns, revokedSecret), &sec); err == nil {
				t.Errorf("the Secret of revoked %s still exists", tc.revoke)
			}
			for _, ks := range s.ti.Status.Keys {
				if ks.KID == revoked {
					t.Errorf("status still lists revoked %s", tc.revoke)
				}
			}
			// Nothing more happens on the next reconcile.
			before := s.resourceVersions()
			h.run(names, []step{{tc.after.at, tc.after.requeue, nil, tc.after.state}})
			if after := h.snap().resourceVersions(); !maps.Equal(before, after) {
				t.Errorf("a second reconcile wrote objects: %v -> %v", before, after)
			}
			// And the lifecycle goes on.
			h.drive(45 * time.Minute)
		})
	}
}

func TestSuspend(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, []step{
		{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
		{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
		{10 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"},
	})
	h.at(11 * time.Minute)
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = true })
	frozen := "Active=B Next= Retired=A published=B,A signing=B"
	h.run(names, []step{{11 * time.Minute, 0, nil, frozen}})
	before := h.snap()
	expectCondition(t, before, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonSuspended)
	expectCondition(t, before, identityv1alpha1.ConditionPublished, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	if before.ti.Status.NextRotationTime != nil {
		t.Errorf("suspended, yet nextRotationTime %s", before.ti.Status.NextRotationTime)
	}

	// Far past A's removal and B's rotation: nothing changes, not even a
	// revocation.
	h.at(2 * time.Hour)
	h.update(func(ti *identityv1alpha1.TenantIdentity) {
		ti.Spec.RotationTrigger = "while-suspended"
		ti.Spec.RevokedKeyIDs = []string{names.kid(t, "A")}
	})
	h.run(names, []step{{2 * time.Hour, 0, nil, frozen}, {5 * time.Hour, 0, nil, frozen}})
	after := h.snap()
	if !maps.Equal(before.resourceVersions(), after.resourceVersions()) {
		t.Errorf("objects written while suspended: %v -> %v", before.resourceVersions(), after.resourceVersions())
	}
	ready := expectCondition(t, after, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonSuspended)
	if ready != nil && !strings.Contains(ready.Message, names.kid(t, "A")) {
		t.Errorf("Ready message %q does not name the pending revocation", ready.Message)
	}
	if after.ti.Status.LastRotationTrigger != "" {
		t.Errorf("trigger recorded as handled while suspended: %q", after.ti.Status.LastRotationTrigger)
	}

	// Resumed: A's revocation applies; B's period is long over, so its
	// successor is published now and still waits its full prePublish.
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = false })
	h.run(names, []step{
		{5 * time.Hour, 2 * time.Minute, []string{"Warning KeyRevoked", "Normal RotationTriggered", "Normal KeyPublished"}, "Active=B Next=C Retired= published=B,C signing=B"},
		{5*time.Hour + 2*time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=C Next= Retired=B published=C,B signing=C"},
	})
	expectCondition(t, h.snap(), identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
}

// TestSuspendCatchesUpWithoutRevocation: resuming after a long suspension
// removes what is due and publishes the successor, never activating early.
func TestSuspendCatchesUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, []step{
		{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
		{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
	})
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = true })
	h.run(names, []step{{9 * time.Minute, 0, nil, "Active=A Next=B Retired= published=A,B signing=A"}})
	h.at(time.Hour)
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = false })
	h.run(names, []step{
		// B was published long enough: it activates now; A is Retired for
		// a full overlap from now.
		{time.Hour, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"},
		{time.Hour + 3*time.Minute, 5 * time.Minute, []string{"Normal KeyRemoved"}, "Active=B Next= Retired= published=B signing=B"},
	})
}

// TestSuspendWithLostSigningKey: a suspended TenantIdentity whose signing
// key's Secret is deleted stays suspended (nothing changes, the status
// says Suspended) rather than failing every reconcile.
func TestSuspendWithLostSigningKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, []step{{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"}})
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = true })
	h.run(names, []step{{time.Minute, 0, nil, "Active=A Next= Retired= published=A signing=A"}})
	a := names.kid(t, "A")
	h.deleteKeySecret(a)
	h.at(2 * time.Minute)
	res, err := h.r.Reconcile(h.ctx, reqFor(h.ns, h.name))
	if err != nil {
		t.Fatalf("suspended reconcile failed: %v", err)
	}
	if res.RequeueAfter != 0 {
		t.Errorf("RequeueAfter %s while suspended", res.RequeueAfter)
	}
	s := h.snap()
	expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonSuspended)
	if !s.publishes(a) || s.signingKID() != a {
		t.Errorf("suspended: %s", names.state(s))
	}
	h.events.take()

	// Resumed: the lost key is replaced at once, and stays published for
	// its overlap.
	h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.Suspend = false })
	h.run(names, []step{{3 * time.Minute, 3 * time.Minute,
		[]string{"Warning KeySecretLost", "Warning ActiveKeySecretLost", "Normal KeyCreated"},
		"Active=B Next= Retired= published=B,A signing=B"}})
}
