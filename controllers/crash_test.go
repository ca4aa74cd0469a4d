package controllers

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

// crashMoment is a reconcile worth interrupting: the steps that lead to
// it, what the test does just before it, and what a completed reconcile
// at that instant leaves.
type crashMoment struct {
	name    string
	before  []step
	prepare func(h *harness, names *keyNames)
	at      time.Duration
	want    step
	created int // keys a completed reconcile creates at that instant
}

func revokeKey(name string) func(h *harness, names *keyNames) {
	return func(h *harness, names *keyNames) {
		kid := names.kid(h.t, name)
		h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RevokedKeyIDs = append(ti.Spec.RevokedKeyIDs, kid) })
	}
}

var crashMoments = []crashMoment{{
	name: "first key",
	at:   0, created: 1,
	want: step{0, 8 * time.Minute, nil, "Active=A Next= Retired= published=A signing=A"},
}, {
	name:   "successor publication",
	before: untilNext[:1],
	at:     8 * time.Minute, created: 1,
	want: untilNext[1],
}, {
	name:   "activation",
	before: untilNext,
	at:     10 * time.Minute,
	want:   untilRetired[2],
}, {
	name:   "removal",
	before: untilRetired,
	// A second after A's removal time: a removal the status remembers is
	// rounded up to the second (it is never early), so a reconcile healing
	// a crash between the Secret's deletion and the ConfigMap's update
	// removes A at once only from then on.
	at:   13*time.Minute + time.Second,
	want: step{13*time.Minute + time.Second, 5*time.Minute - time.Second, nil, "Active=B Next= Retired= published=B signing=B"},
}, {
	name:   "rotation trigger",
	before: untilNext[:1],
	prepare: func(h *harness, _ *keyNames) {
		h.update(func(ti *identityv1alpha1.TenantIdentity) { ti.Spec.RotationTrigger = "now" })
	},
	at: time.Minute, created: 1,
	want: step{time.Minute, 2 * time.Minute, nil, "Active=A Next=B Retired= published=A,B signing=A"},
}, {
	name:    "revocation of the only key",
	before:  untilNext[:1],
	prepare: revokeKey("A"),
	at:      time.Minute, created: 1,
	want: step{time.Minute, 8 * time.Minute, nil, "Active=B Next= Retired= published=B signing=B"},
}, {
	name:    "revocation of the Active key with a Next one",
	before:  untilNext,
	prepare: revokeKey("A"),
	at:      9 * time.Minute,
	want:    step{9 * time.Minute, 8 * time.Minute, nil, "Active=B Next= Retired= published=B signing=B"},
}}

// TestCrashSafety interrupts each interesting reconcile at each of its
// writes, in three ways, then lets a healthy reconcile heal it and the
// lifecycle go on, checking the invariants at every step (see invariants).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	for _, m := range crashMoments {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			// A run with no failure counts the writes of the moment.
			clean := &faults{mode: failOne, n: math.MaxInt}
			m.play(t, clean)
			if clean.hit() || len(clean.writes) == 0 {
				t.Fatalf("clean run: %d writes, injected %v", len(clean.writes), clean.hit())
			}
			t.Logf("writes: %q", clean.writes)
			for _, mode := range []faultMode{failOne, stopAfter} {
				for n := 1; n <= len(clean.writes); n++ {
					t.Run(fmt.Sprintf("%s at write %d", mode, n), func(t *testing.T) {
						t.Parallel()
						f := &faults{mode: mode, n: n}
						m.play(t, f)
						if !f.hit() {
							t.Fatalf("write %d was never made (writes %q)", n, f.writes)
						}
						if mode != failOne {
							return
						}
						// When the reconcile stops at the failed write, every
						// later write failing too (the process stopped) is the
						// same run; otherwise play that variant as well.
						if len(f.writes) == n {
							t.Logf("the reconcile stopped at the failed write: %s is the same run", stopBefore)
							return
						}
						t.Run(stopBefore.String(), func(t *testing.T) {
							f := &faults{mode: stopBefore, n: n}
							m.play(t, f)
							if !f.hit() {
								t.Fatalf("write %d was never made (writes %q)", n, f.writes)
							}
						})
					})
				}
			}
		})
	}
}

// play leads a fresh TenantIdentity to the moment, runs its reconcile
// through f, heals with a healthy reconcile at the same instant, and goes
// on for two rotation periods.
func (m crashMoment) play(t *testing.T, f *faults) {
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, m.before)
	h.at(m.at)
	if m.prepare != nil {
		m.prepare(h, names)
	}
	known := len(names.byKID)
	before := h.snap()

	res, err := h.reconciler(f.client(h.c)).Reconcile(h.ctx, reqFor(h.ns, h.name))
	switch {
	case f.hit() && err == nil:
		t.Errorf("reconcile swallowed the failure of write %d of %q", f.n, f.writes)
	case !f.hit() && err != nil:
		t.Fatalf("reconcile with no injected failure: %v", err)
	}
	s := h.snap()
	h.inv.observe(h.clk.Now(), s, afterFault)
	names.learn(t, s)
	if !f.hit() {
		if res.RequeueAfter != m.want.requeue {
			t.Errorf("RequeueAfter %s, want %s", res.RequeueAfter, m.want.requeue)
		}
	} else {
		// Heal at the same instant: a completed reconcile leaves what an
		// uninterrupted one would have.
		res = h.reconcile()
		if res.RequeueAfter != m.want.requeue {
			t.Errorf("after healing: RequeueAfter %s, want %s", res.RequeueAfter, m.want.requeue)
		}
		s = h.snap()
		names.learn(t, s)
	}
	h.events.take()
	if got := names.state(s); got != m.want.state {
		t.Errorf("after the moment: %s\n  want %s", got, m.want.state)
	}
	if created := len(names.byKID) - known; created != m.created {
		t.Errorf("%d keys created for this step, want %d", created, m.created)
	}
	if n := len(s.inState(rotation.Active)); n != 1 {
		t.Errorf("%d keys recorded Active", n)
	}
	for kid, k := range before.keys {
		_, kept := s.keys[kid]
		due := k.rec.State == rotation.Retired && !h.clk.Now().Before(k.rec.RemovesAt)
		if !kept && !due && !slices.Contains(s.ti.Spec.RevokedKeyIDs, kid) {
			t.Errorf("key %s lost", names.byKID[kid])
		}
	}
	// Then later times: the lifecycle goes on through the next rotation.
	h.clk.Step(res.RequeueAfter)
	h.drive(m.at + period + overlap)
}
