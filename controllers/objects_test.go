package controllers

import (
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
)

func sameRecord(a, b rotation.Key) bool {
	return a.KID == b.KID && a.Algorithm == b.Algorithm && a.State == b.State && a.Trigger == b.Trigger &&
		a.PublishedAt.Equal(b.PublishedAt) && a.ActivatesAt.Equal(b.ActivatesAt) && a.RotatesAt.Equal(b.RotatesAt) &&
		a.RetiredAt.Equal(b.RetiredAt) && a.RemovesAt.Equal(b.RemovesAt)
}

func TestRecordAnnotationsRoundTrip(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	cases := []struct {
		name    string
		rec     rotation.Key
		present []string
		absent  []string
	}{
		{"Active with nanoseconds", recActive, []string{annPublishedAt, annActivatesAt, annRotatesAt}, []string{annRetiredAt, annRemovesAt, annTrigger}},
		{"Next with a trigger", func() rotation.Key { k := recNext; k.Trigger = "rotate-now"; return k }(), []string{annTrigger}, []string{annRotatesAt, annRetiredAt}},
		{"Retired", recRetired, []string{annRetiredAt, annRemovesAt}, []string{annTrigger}},
		{"one nanosecond", rotation.Key{KID: "k", Algorithm: "EdDSA", State: rotation.Retired, RemovesAt: time.Unix(0, 1)}, []string{annRemovesAt}, []string{annPublishedAt}},
		{"another time zone", rotation.Key{KID: "k", Algorithm: "ES512", State: rotation.Next, PublishedAt: time.Date(2026, 3, 2, 10, 30, 0, 999999999, paris)}, []string{annPublishedAt}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ann := recordAnnotations(tc.rec)
			for _, a := range tc.present {
				if _, ok := ann[a]; !ok {
					t.Errorf("no %s in %v", a, ann)
				}
			}
			for _, a := range tc.absent {
				if _, ok := ann[a]; ok {
					t.Errorf("%s set for a zero value: %v", a, ann)
				}
			}
			for a, v := range ann {
				if strings.HasSuffix(a, "-at") && !strings.HasSuffix(v, "Z") {
					t.Errorf("%s = %q is not UTC", a, v)
				}
			}
			got, err := recordFromSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: ann}})
			if err != nil {
				t.Fatal(err)
			}
			if !sameRecord(got, tc.rec) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.rec)
			}
		})
	}
}

func TestRecordFromSecretErrors(t *testing.T) {
	valid := recordAnnotations(recRetired)
	with := func(edit func(map[string]string)) map[string]string {
		a := maps.Clone(valid)
		edit(a)
		return a
	}
	cases := []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"no annotations", nil, "no kid or algorithm"},
		{"no kid", with(func(a map[string]string) { delete(a, annKID) }), "no kid or algorithm"},
		{"no algorithm", with(func(a map[string]string) { a[annAlgorithm] = "" }), "no kid or algorithm"},
		{"no state", with(func(a map[string]string) { delete(a, annState) }), `unknown state ""`},
		{"unknown state", with(func(a map[string]string) { a[annState] = "Revoked" }), `unknown state "Revoked"`},
		{"lower-case state", with(func(a map[string]string) { a[annState] = "active" }), `unknown state "active"`},
		{"bad time", with(func(a map[string]string) { a[annRemovesAt] = "tomorrow" }), annRemovesAt},
		{"time without zone", with(func(a map[string]string) { a[annPublishedAt] = "2026-03-02T09:30:00" }), annPublishedAt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recordFromSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-dc1-0123456789", Annotations: tc.ann}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "acme-dc1-0123456789") {
				t.Errorf("error %v, want one naming the Secret and %q", err, tc.want)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	ti := tenant("ns", tiName, t0)
	m, err := keys.Generate(keys.ES256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.Generate(keys.ES256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := recActive
	rec.KID = m.KID
	s, err := keySecret(&ti, m, rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadKey(secretOf(s))
	if err != nil || !sameRecord(got.rec, rec) || got.material == nil || got.material.KID != m.KID {
		t.Fatalf("loadKey: %v %+v", err, got.rec)
	}
	// From the cache (metadata only): the record, no key.
	meta, err := loadKey(secret{ObjectMeta: s.ObjectMeta})
	if err != nil || !sameRecord(meta.rec, rec) || meta.material != nil {
		t.Fatalf("loadKey of metadata: %v %+v", err, meta)
	}

	swapped := s.DeepCopy()
	swapped.Data[dataKeyPEM] = other.PrivatePEM
	if _, err := loadKey(secretOf(swapped)); err == nil || !strings.Contains(err.Error(), "annotated") {
		t.Errorf("a Secret holding another key than its record: %v", err)
	}
	wrongAlg := s.DeepCopy()
	wrongAlg.Annotations[annAlgorithm] = keys.RS256
	if _, err := loadKey(secretOf(wrongAlg)); err == nil {
		t.Error("an EC key recorded as RS256 was read")
	}
	garbage := s.DeepCopy()
	garbage.Data[dataKeyPEM] = []byte("garbage")
	if _, err := loadKey(secretOf(garbage)); err == nil || !strings.Contains(err.Error(), s.Name) {
		t.Errorf("garbage key: %v", err)
	}
}

func TestKeySecretName(t *testing.T) {
	m, err := keys.Generate(keys.ES256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, _ := keys.ShortKID(m.KID)
	long := tenant("ns", strings.Repeat("a", 253), t0)
	name, err := keySecretName(&long, m.KID)
	if err != nil || len(name) != 253 || !strings.HasSuffix(name, "-"+short) {
		t.Errorf("name for a 253-character TenantIdentity: %q (%d), %v", name, len(name), err)
	}
	ti := tenant("ns", tiName, t0)
	if name, _ := keySecretName(&ti, m.KID); name != tiName+"-"+short {
		t.Errorf("name %q", name)
	}
	if _, err := keySecretName(&ti, "not a kid!"); err == nil {
		t.Error("a malformed kid made a name")
	}
}

func TestDesiredConfigMap(t *testing.T) {
	ti := tenant("ns", tiName, t0)
	jwks := map[string][]byte{"a": []byte(`{"kid":"a"}`), "b": []byte(`{"kid":"b"}`)}
	seq := func(cm *corev1.ConfigMap) string { return cm.Annotations[identityv1alpha1.AnnotationSequence] }
	at := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	first := desiredConfigMap(&ti, nil, []string{"b", "a", "missing"}, jwks, t0)
	if got := first.Annotations[identityv1alpha1.AnnotationKeyOrder]; got != "b,a" {
		t.Errorf("key-order %q, want b,a (a kid without a public key is left out)", got)
	}
	if seq(first) != at(0) || len(first.Data) != 2 {
		t.Errorf("first ConfigMap %+v, want sequence %s", first, at(0))
	}
	same := desiredConfigMap(&ti, first, []string{"b", "a"}, jwks, t0.Add(time.Hour))
	if seq(same) != at(0) {
		t.Errorf("sequence moved without a change: %s", seq(same))
	}
	reordered := desiredConfigMap(&ti, same, []string{"a", "b"}, jwks, t0)
	if seq(reordered) != at(time.Second) {
		t.Errorf("sequence after a reorder in the same second: %s, want %s", seq(reordered), at(time.Second))
	}
	fewer := desiredConfigMap(&ti, reordered, []string{"a"}, jwks, t0.Add(time.Minute))
	if seq(fewer) != at(time.Minute) || len(fewer.Data) != 1 {
		t.Errorf("after a removal a minute later: %+v, want sequence %s", fewer, at(time.Minute))
	}
	// Deleted and recreated later: the sequence still grows.
	if recreated := desiredConfigMap(&ti, nil, []string{"a"}, jwks, t0.Add(2*time.Minute)); seq(recreated) <= seq(fewer) {
		t.Errorf("recreated ConfigMap's sequence %s does not exceed %s", seq(recreated), seq(fewer))
	}
	// Annotations of other tools survive.
	foreign := fewer.DeepCopy()
	foreign.Annotations["example.com/note"] = "kept"
	if got := desiredConfigMap(&ti, foreign, []string{"a", "b"}, jwks, t0.Add(time.Hour)); got.Annotations["example.com/note"] != "kept" {
		t.Errorf("a foreign annotation was dropped: %v", got.Annotations)
	}
	if fewer.Labels[identityv1alpha1.LabelOrg] != "acme" || fewer.Labels[identityv1alpha1.LabelSite] != ti.Spec.SiteID {
		t.Errorf("labels %v", fewer.Labels)
	}
	cm := &corev1.ConfigMap{Data: map[string]string{"a.json": "{}", "notes": "x", "b.json": "{}"}}
	got := kidsOfConfigMap(cm)
	if len(got) != 2 || !strings.Contains(strings.Join(got, ","), "a") || !strings.Contains(strings.Join(got, ","), "b") {
		t.Errorf("kids %q", got)
	}
	if kidsOfConfigMap(nil) != nil {
		t.Error("kids of no ConfigMap")
	}
}
