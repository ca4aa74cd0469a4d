package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

// A tenant asks for keys as fast as the CRD lets it: a 40 ms period with
// the longest overlap allowed. Over 20 s (of the fake clock) signet holds
// at most MaxKeys keys at once and makes no more keys than the tenant's
// generation budget pays for (a burst of 20 EC keys, then one per 2 s);
// while the budget is spent the status says so, and nothing is lost.
func TestKeyFloodIsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.inv = newInvariants(t, 20*time.Millisecond, 320*time.Millisecond)
	h.create(func(s *identityv1alpha1.TenantIdentitySpec) {
		s.Keys = identityv1alpha1.KeyPolicy{RotationPeriod: "40ms", PrePublish: "20ms", Overlap: "320ms", TokenTTL: "10ms"}
	})
	const span = 20 * time.Second
	made, throttled := map[string]bool{}, false
	for i := 0; h.clk.Now().Before(t0.Add(span)); i++ {
		res := h.reconcile()
		s := h.snap()
		if len(s.keys) > rotation.MaxKeys || len(s.published()) > rotation.MaxKeys {
			t.Fatalf("at t0+%s: %d key Secrets, %d keys published", h.clk.Now().Sub(t0), len(s.keys), len(s.published()))
		}
		for kid := range s.keys {
			made[kid] = true
		}
		if c := s.condition(identityv1alpha1.ConditionReady); c != nil && c.Reason == identityv1alpha1.ReasonKeyGenerationThrottled {
			throttled = true
			if c.Status != metav1.ConditionFalse {
				t.Errorf("throttled, yet Ready=%s", c.Status)
			}
		}
		if i > 2000 {
			t.Fatal("too many reconciles")
		}
		h.clk.Step(max(res.RequeueAfter, 10*time.Millisecond))
	}
	h.events.take()
	if limit := 20 + int(span/(2*time.Second)) + 1; len(made) > limit {
		t.Errorf("%d keys made in %s, more than the budget's %d", len(made), span, limit)
	}
	if !throttled {
		t.Error("the budget never bound: the flood was not throttled")
	}
	t.Logf("%d keys made in %s of flooding", len(made), span)
}
