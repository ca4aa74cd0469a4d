package controllers

import (
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// untilNext: A Active, B Next (published at t0+8m, activates at t0+10m).
var untilNext = []step{
	{0, 8 * time.Minute, []string{"Normal KeyCreated"}, "Active=A Next= Retired= published=A signing=A"},
	{8 * time.Minute, 2 * time.Minute, []string{"Normal KeyPublished"}, "Active=A Next=B Retired= published=A,B signing=A"},
}

// untilRetired: B Active since t0+10m, A Retired until t0+13m.
var untilRetired = append(untilNext[:2:2],
	step{10 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"}, "Active=B Next= Retired=A published=B,A signing=B"})

func TestDriftConfigMap(t *testing.T) {
	t.Parallel()
	foreign, err := keys.Generate(keys.ES256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreignJWK, err := foreign.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		edit    func(h *harness, names *keyNames, cm *corev1.ConfigMap) error
		requeue time.Duration
		events  []string
	}{{
		name: "deleted",
		edit: func(h *harness, _ *keyNames, cm *corev1.ConfigMap) error { return h.c.Delete(h.ctx, cm) },
		// B was unpublished with the ConfigMap: its pre-publication starts again.
		requeue: 2 * time.Minute,
	}, {
		name: "entry altered, foreign entries added, label removed",
		edit: func(h *harness, names *keyNames, cm *corev1.ConfigMap) error {
			a := names.kid(h.t, "A")
			cm.Data[a+".json"] = strings.Replace(cm.Data[a+".json"], `"x":"`, `"x":"AAAA`, 1)
			cm.Data[foreign.KID+".json"] = string(foreignJWK)
			cm.Data["notes"] = "hand-written"
			delete(cm.Labels, identityv1alpha1.LabelSite)
			cm.Annotations[identityv1alpha1.AnnotationKeyOrder] = foreign.KID
			return h.c.Update(h.ctx, cm)
		},
		requeue: time.Minute,
		events:  []string{"Warning UnknownKeyDropped"},
	}, {
		name: "emptied",
		edit: func(h *harness, _ *keyNames, cm *corev1.ConfigMap) error {
			cm.Data = nil
			return h.c.Update(h.ctx, cm)
		},
		requeue: 2 * time.Minute,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.create(nil)
			names := newKeyNames()
			h.run(names, untilNext)
			before := h.snap()
			h.at(9 * time.Minute)
			h.edit(func() error { return tc.edit(h, names, before.cm.DeepCopy()) })
			h.reconcileAt(9*time.Minute, tc.requeue)
			h.expectEvents("repair", tc.events...)
			after := h.snap()
			if !maps.Equal(after.cm.Data, before.cm.Data) {
				t.Errorf("ConfigMap data not restored:\n got %v\nwant %v", after.cm.Data, before.cm.Data)
			}
			if got, want := after.cm.Annotations[identityv1alpha1.AnnotationKeyOrder], before.cm.Annotations[identityv1alpha1.AnnotationKeyOrder]; got != want {
				t.Errorf("key-order %q, want %q", got, want)
			}
			expectLabels(t, "ConfigMap", after.cm.Labels, before.cm.Labels)
			expectOwnedBy(t, "ConfigMap", after.cm, &after.ti)
			if names.state(after) != names.state(before) {
				t.Errorf("keys changed: %s -> %s", names.state(before), names.state(after))
			}
			// The rotation goes on, B activating once it has been
			// published for prePublish again.
			h.drive(30 * time.Minute)
		})
	}
}

func TestDriftSigningSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(h *harness, names *keyNames, s *corev1.Secret) error
	}{
		{"deleted", func(h *harness, _ *keyNames, s *corev1.Secret) error { return h.c.Delete(h.ctx, s) }},
		{"pointed at the Next key", func(h *harness, names *keyNames, s *corev1.Secret) error {
			b := h.snap().keys[names.kid(h.t, "B")]
			s.Data["key.pem"] = b.secret.Data[dataKeyPEM]
			s.Data["kid"] = []byte(b.rec.KID)
			delete(s.Data, "key.jwk")
			return h.c.Update(h.ctx, s)
		}},
		{"another key under the Active kid", func(h *harness, names *keyNames, s *corev1.Secret) error {
			s.Data["key.pem"] = h.snap().keys[names.kid(h.t, "B")].secret.Data[dataKeyPEM]
			s.Data["alg"] = []byte("RS256")
			return h.c.Update(h.ctx, s)
		}},
		{"garbage and an extra entry", func(h *harness, _ *keyNames, s *corev1.Secret) error {
			s.Data["key.pem"] = []byte("not a key")
			s.Data["kid"] = []byte("nonsense")
			s.Data["extra"] = []byte("x")
			return h.c.Update(h.ctx, s)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.create(nil)
			names := newKeyNames()
			h.run(names, untilNext)
			before := h.snap()
			h.at(9 * time.Minute)
			h.edit(func() error { return tc.edit(h, names, before.signing.DeepCopy()) })
			h.reconcileAt(9*time.Minute, time.Minute)
			h.expectEvents("repair")
			after := h.snap()
			if after.signing == nil || !secretDataEqual(after.signing.Data, before.signing.Data) {
				t.Fatalf("signing Secret not restored to the Active key A")
			}
			expectOwnedBy(t, "signing Secret", after.signing, &after.ti)
			if names.state(after) != names.state(before) {
				t.Errorf("keys changed: %s -> %s", names.state(before), names.state(after))
			}
			// B still activates as planned.
			h.run(names, []step{{10 * time.Minute, 3 * time.Minute, []string{"Normal KeyActivated", "Normal KeyRetired"},
				"Active=B Next= Retired=A published=B,A signing=B"}})
		})
	}
}

func TestDriftKeySecretLost(t *testing.T) {
	t.Parallel()
	const ns = time.Nanosecond
	cases := []struct {
		name   string
		before []step
		lose   string
		at     time.Duration
		after  step
		// removesAt is when the lost key must leave the documents, not before.
		removesAt time.Duration
	}{{
		name:   "Active key: a new key signs at once",
		before: untilNext[:1],
		lose:   "A", at: time.Minute,
		after: step{time.Minute, 3 * time.Minute,
			[]string{"Warning KeySecretLost", "Warning ActiveKeySecretLost", "Normal KeyCreated"},
			"Active=B Next= Retired= published=B,A signing=B"},
		removesAt: 4 * time.Minute,
	}, {
		name:   "Active key with a Next one: the Next key signs at once",
		before: untilNext,
		lose:   "A", at: 9 * time.Minute,
		after: step{9 * time.Minute, 3 * time.Minute,
			[]string{"Warning KeySecretLost", "Warning ActiveKeySecretLost", "Normal KeyActivated"},
			"Active=B Next= Retired= published=B,A signing=B"},
		removesAt: 12 * time.Minute,
	}, {
		name:   "Retired key: published until its removal time",
		before: untilRetired,
		lose:   "A", at: 11 * time.Minute,
		after: step{11 * time.Minute, 2*time.Minute + time.Second - 123456789*ns, nil,
			"Active=B Next= Retired= published=B,A signing=B"},
		removesAt: 13 * time.Minute,
	}, {
		name:   "Next key: published for an overlap, a new successor published",
		before: untilNext,
		lose:   "B", at: 9 * time.Minute,
		after: step{9 * time.Minute, 2 * time.Minute,
			[]string{"Warning KeySecretLost", "Normal KeyPublished"},
			"Active=A Next=C Retired= published=A,C,B signing=A"},
		removesAt: 12 * time.Minute,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.create(nil)
			names := newKeyNames()
			h.run(names, tc.before)
			h.at(tc.at)
			lost := names.kid(t, tc.lose)
			published := h.snap().cm.Data[lost+".json"]
			h.deleteKeySecret(lost)
			h.run(names, []step{tc.after})

			s := h.snap()
			if s.cm.Data[lost+".json"] != published {
				t.Errorf("the lost key's public JWK changed")
			}
			ks := s.statusKey(lost)
			if ks == nil || ks.State != identityv1alpha1.KeyStateRetired || ks.SecretName != "" {
				t.Errorf("status of the lost key: %+v, want Retired with no Secret", ks)
			} else {
				expectRemoval(t, "removesAt of the lost key", ks.RemovesAt, t0.Add(tc.removesAt))
			}

			// Still published until its removal time, gone right after.
			h.at(tc.removesAt - ns)
			h.reconcile()
			if !h.snap().publishes(lost) {
				t.Errorf("lost key %s unpublished before its removal time", tc.lose)
			}
			for _, e := range h.events.take() {
				if e.Reason == "KeyRemoved" {
					t.Errorf("before its removal time: %s", e)
				}
			}
			h.at(tc.removesAt + time.Second)
			h.reconcile()
			if h.snap().publishes(lost) {
				t.Errorf("lost key %s still published after its removal time", tc.lose)
			}
			h.expectEvents("removal", "Normal KeyRemoved")
			if h.snap().statusKey(lost) != nil {
				t.Errorf("status still lists the removed key")
			}
			h.drive(40 * time.Minute)
		})
	}
}

// TestNotOurs: an object with the name signet needs, not controlled by
// the TenantIdentity, is never overwritten; the status says why.
func TestNotOurs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ti := h.create(nil)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: identityv1alpha1.JWKSConfigMapName(ti.Name)},
		Data:       map[string]string{"mine": "yes"},
	}
	if err := h.c.Create(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	res, err := h.r.Reconcile(h.ctx, reqFor(h.ns, h.name))
	// No error (it is not signet's to fix), but a later look: the object is
	// not owned by the TenantIdentity, so no watch signals its removal.
	if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > 5*time.Minute {
		t.Fatalf("reconcile: %v, %+v; want a condition and a retry within minutes", err, res)
	}
	s := h.snap()
	ready := expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonKeyError)
	if ready != nil && !strings.Contains(ready.Message, cm.Name) {
		t.Errorf("message %q does not name %s", ready.Message, cm.Name)
	}
	h.expectEvents("not ours", "Warning KeyError")
	if s.signing != nil || len(s.keys) != 0 {
		t.Errorf("keys created though the ConfigMap is not ours")
	}
	var got corev1.ConfigMap
	if err := h.c.Get(h.ctx, keyOf(h.ns, cm.Name), &got); err != nil || !maps.Equal(got.Data, cm.Data) {
		t.Errorf("someone else's ConfigMap was changed: %v %v", err, got.Data)
	}

	// Once it is moved, keys are published.
	if err := h.c.Delete(h.ctx, &got); err != nil {
		t.Fatal(err)
	}
	h.reconcileAt(time.Minute, period-prePublish)
	h.expectEvents("moved", "Normal KeyCreated")
}
