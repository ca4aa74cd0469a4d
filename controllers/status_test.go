package controllers

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

var testPolicy = rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: period, PrePublish: prePublish, Overlap: overlap, TokenTTL: tokenTTL}

// Records of a tenant just after a rotation at t0+10m, with a Next key
// already published and an orphan (a kid whose Secret was deleted).
var (
	recActive  = rotation.Key{KID: "kidActiveAAAAAAAAAAA", Algorithm: "ES256", State: rotation.Active, PublishedAt: t0, ActivatesAt: t0.Add(10 * time.Minute), RotatesAt: t0.Add(20 * time.Minute)}
	recNext    = rotation.Key{KID: "kidNextAAAAAAAAAAAAA", Algorithm: "ES256", State: rotation.Next, PublishedAt: t0.Add(11 * time.Minute), ActivatesAt: t0.Add(12 * time.Minute)}
	recRetired = rotation.Key{KID: "kidRetiredAAAAAAAAAA", Algorithm: "ES256", State: rotation.Retired, PublishedAt: t0, ActivatesAt: t0, RotatesAt: t0.Add(10 * time.Minute), RetiredAt: t0.Add(10 * time.Minute), RemovesAt: t0.Add(13 * time.Minute)}
	recOrphan  = rotation.Key{KID: "kidOrphanAAAAAAAAAAA", Algorithm: "ES384", State: rotation.Retired, RetiredAt: t0.Add(5 * time.Minute), RemovesAt: t0.Add(8 * time.Minute)}
)

func planOf(keys []rotation.Key, orphans []rotation.Key) rotation.Plan {
	p := rotation.Plan{Keys: keys, Orphans: orphans}
	for _, k := range keys {
		p.Published = append(p.Published, k.KID)
		if k.State == rotation.Active {
			p.ActiveKID = k.KID
		}
	}
	for _, o := range orphans {
		p.Published = append(p.Published, o.KID)
	}
	return p
}

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

func TestKeyStatuses(t *testing.T) {
	ti := tenant("ns", "dc1", t0)
	ti.Name = tiName
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	type want struct {
		kid                                    string
		state                                  identityv1alpha1.KeyState
		published, activates, retires, removes *time.Time
		secret                                 bool
	}
	cases := []struct {
		name string
		plan rotation.Plan
		want []want
	}{{
		name: "Active alone: retires at its rotation",
		plan: planOf([]rotation.Key{recActive}, nil),
		want: []want{{recActive.KID, identityv1alpha1.KeyStateActive, at(0), at(10 * time.Minute), at(20 * time.Minute), at(23 * time.Minute), true}},
	}, {
		name: "Active, Next, Retired and an orphan",
		plan: planOf([]rotation.Key{recActive, recNext, recRetired}, []rotation.Key{recOrphan}),
		want: []want{
			// The Active key retires when the Next one may take over:
			// published at 11m, it is eligible at 13m, not its planned 12m.
			{recActive.KID, identityv1alpha1.KeyStateActive, at(0), at(10 * time.Minute), at(13 * time.Minute), at(16 * time.Minute), true},
			{recNext.KID, identityv1alpha1.KeyStateNext, at(11 * time.Minute), at(13 * time.Minute), nil, nil, true},
			{recRetired.KID, identityv1alpha1.KeyStateRetired, at(0), at(0), at(10 * time.Minute), at(13 * time.Minute), true},
			{recOrphan.KID, identityv1alpha1.KeyStateRetired, nil, nil, at(5 * time.Minute), at(8 * time.Minute), false},
		},
	}, {
		name: "Next activating later than its pre-publication",
		plan: planOf([]rotation.Key{recActive, func() rotation.Key {
			k := recNext
			k.ActivatesAt = t0.Add(20 * time.Minute)
			return k
		}()}, nil),
		want: []want{
			{recActive.KID, identityv1alpha1.KeyStateActive, at(0), at(10 * time.Minute), at(20 * time.Minute), at(23 * time.Minute), true},
			{recNext.KID, identityv1alpha1.KeyStateNext, at(11 * time.Minute), at(20 * time.Minute), nil, nil, true},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := keyStatuses(&ti, testPolicy, tc.plan)
			if len(got) != len(tc.want) {
				t.Fatalf("%d statuses, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.KID != w.kid || g.State != w.state {
					t.Errorf("%d: %s %s, want %s %s", i, g.KID, g.State, w.kid, w.state)
				}
				wantSecret := ""
				if w.secret {
					wantSecret, _ = keySecretName(&ti, w.kid)
				}
				if g.SecretName != wantSecret {
					t.Errorf("%d: secretName %q, want %q", i, g.SecretName, wantSecret)
				}
				for _, f := range []struct {
					name string
					got  *metav1.Time
					want *time.Time
				}{{"publishedAt", g.PublishedAt, w.published}, {"activatesAt", g.ActivatesAt, w.activates}, {"retiresAt", g.RetiresAt, w.retires}} {
					switch {
					case f.want == nil && f.got != nil:
						t.Errorf("%d: %s %s, want none", i, f.name, f.got)
					case f.want != nil && (f.got == nil || !f.got.Time.Equal(f.want.Truncate(time.Second))):
						t.Errorf("%d: %s %v, want %s (in whole seconds, as stored)", i, f.name, f.got, *f.want)
					}
				}
				// Removal times are rounded up to the second: the status
				// keeps whole seconds, and an orphan's removal is read back
				// from it.
				switch {
				case w.removes == nil && g.RemovesAt != nil:
					t.Errorf("%d: removesAt %s, want none", i, g.RemovesAt)
				case w.removes != nil && (g.RemovesAt == nil || !g.RemovesAt.Time.Equal(ceilSecond(*w.removes))):
					t.Errorf("%d: removesAt %v, want %s", i, g.RemovesAt, ceilSecond(*w.removes))
				}
			}
		})
	}
}

func TestRemovalRoundsUp(t *testing.T) {
	whole := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	cases := []struct{ in, want time.Time }{
		{whole, whole},
		{whole.Add(time.Nanosecond), whole.Add(time.Second)},
		{whole.Add(999 * time.Millisecond), whole.Add(time.Second)},
		{whole.Add(-time.Nanosecond), whole},
	}
	for _, tc := range cases {
		got := removalOrNil(tc.in)
		if got == nil || !got.Time.Equal(tc.want) {
			t.Errorf("removal of %s: %v, want %s", tc.in.Format(time.RFC3339Nano), got, tc.want)
			continue
		}
		// What the API server keeps (whole seconds) is not earlier.
		if got.Rfc3339Copy().Time.Before(tc.in) {
			t.Errorf("removal of %s stored as %s, earlier", tc.in.Format(time.RFC3339Nano), got.Rfc3339Copy())
		}
	}
	if removalOrNil(time.Time{}) != nil {
		t.Error("zero removal time is not nil")
	}
}

func TestPlannedStatus(t *testing.T) {
	in := rotation.Input{Policy: testPolicy}
	cases := []struct {
		name          string
		plan          rotation.Plan
		ready         metav1.ConditionStatus
		readyReason   string
		readyMsg      []string
		published     metav1.ConditionStatus
		pubReason     string
		nextRotation  *time.Time
		lastTrigger   string
		activeKID     string
		previousNextT bool // the previous status had a nextRotationTime
	}{{
		name: "keys published",
		plan: func() rotation.Plan {
			p := planOf([]rotation.Key{recActive, recRetired}, nil)
			p.HandledTrigger = "t1"
			return p
		}(),
		ready: metav1.ConditionTrue, readyReason: identityv1alpha1.ReasonKeysPublished, readyMsg: []string{"2 key(s)", recActive.KID},
		published: metav1.ConditionTrue, pubReason: identityv1alpha1.ReasonKeysPublished,
		nextRotation: ptrTime(t0.Add(20 * time.Minute)), lastTrigger: "t1", activeKID: recActive.KID,
	}, {
		name:  "a Next key: the next rotation is its activation",
		plan:  planOf([]rotation.Key{recActive, recNext}, nil),
		ready: metav1.ConditionTrue, readyReason: identityv1alpha1.ReasonKeysPublished,
		published: metav1.ConditionTrue, pubReason: identityv1alpha1.ReasonKeysPublished,
		nextRotation: ptrTime(t0.Add(13 * time.Minute)), activeKID: recActive.KID,
	}, {
		name: "suspended with pending revocations",
		plan: func() rotation.Plan {
			p := planOf([]rotation.Key{recActive, recRetired}, nil)
			p.Suspended, p.PendingRevocations, p.HandledTrigger = true, []string{recRetired.KID}, "old"
			return p
		}(),
		ready: metav1.ConditionTrue, readyReason: identityv1alpha1.ReasonSuspended, readyMsg: []string{"suspended", recRetired.KID},
		published: metav1.ConditionTrue, pubReason: identityv1alpha1.ReasonKeysPublished,
		lastTrigger: "old", activeKID: recActive.KID, previousNextT: true,
	}, {
		name:  "nothing to publish",
		plan:  rotation.Plan{Suspended: true},
		ready: metav1.ConditionTrue, readyReason: identityv1alpha1.ReasonSuspended,
		published: metav1.ConditionFalse, pubReason: identityv1alpha1.ReasonNoKeys,
		previousNextT: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ti := tenant("ns", tiName, t0)
			ti.Generation = 7
			ti.Status.Conditions = []metav1.Condition{{Type: "Unrelated", Status: metav1.ConditionTrue, Reason: "Kept", LastTransitionTime: metav1.NewTime(t0)}}
			if tc.previousNextT {
				ti.Status.NextRotationTime = &metav1.Time{Time: t0}
			}
			st := plannedStatus(&ti, in, tc.plan, publicBaseURL)
			if st.ObservedGeneration != 7 || st.Issuer != issuer(&ti, publicBaseURL) || st.JWKSURI != jwksURI(&ti, publicBaseURL) {
				t.Errorf("status %+v", st)
			}
			for _, c := range []struct {
				typ    string
				status metav1.ConditionStatus
				reason string
				msg    []string
			}{{identityv1alpha1.ConditionReady, tc.ready, tc.readyReason, tc.readyMsg}, {identityv1alpha1.ConditionPublished, tc.published, tc.pubReason, nil}} {
				got := meta.FindStatusCondition(st.Conditions, c.typ)
				if got == nil || got.Status != c.status || got.Reason != c.reason || got.ObservedGeneration != 7 {
					t.Errorf("%s = %+v, want %s/%s at generation 7", c.typ, got, c.status, c.reason)
					continue
				}
				for _, m := range c.msg {
					if !strings.Contains(got.Message, m) {
						t.Errorf("%s message %q lacks %q", c.typ, got.Message, m)
					}
				}
			}
			if meta.FindStatusCondition(st.Conditions, "Unrelated") == nil {
				t.Error("an unrelated condition was dropped")
			}
			switch {
			case tc.nextRotation == nil && st.NextRotationTime != nil:
				t.Errorf("nextRotationTime %s, want none", st.NextRotationTime)
			case tc.nextRotation != nil && (st.NextRotationTime == nil || !st.NextRotationTime.Time.Equal(tc.nextRotation.Truncate(time.Second))):
				t.Errorf("nextRotationTime %v, want %s", st.NextRotationTime, *tc.nextRotation)
			}
			if st.LastRotationTrigger != tc.lastTrigger || st.ActiveKeyID != tc.activeKID {
				t.Errorf("lastRotationTrigger %q activeKeyID %q, want %q %q", st.LastRotationTrigger, st.ActiveKeyID, tc.lastTrigger, tc.activeKID)
			}
			if len(st.Keys) != len(tc.plan.Keys)+len(tc.plan.Orphans) {
				t.Errorf("%d key statuses for %d keys", len(st.Keys), len(tc.plan.Keys)+len(tc.plan.Orphans))
			}
		})
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// TestConditionTransitionTime: a condition that does not change keeps its
// lastTransitionTime; one that changes gets a new one.
func TestConditionTransitionTime(t *testing.T) {
	ti := tenant("ns", tiName, t0)
	st := plannedStatus(&ti, rotation.Input{Policy: testPolicy}, planOf([]rotation.Key{recActive}, nil), publicBaseURL)
	ready := meta.FindStatusCondition(st.Conditions, identityv1alpha1.ConditionReady)
	ready.LastTransitionTime = metav1.NewTime(t0)
	ti.Status = st
	again := plannedStatus(&ti, rotation.Input{Policy: testPolicy}, planOf([]rotation.Key{recActive, recNext}, nil), publicBaseURL)
	if got := meta.FindStatusCondition(again.Conditions, identityv1alpha1.ConditionReady); !got.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("Ready stayed True, yet its lastTransitionTime moved to %s", got.LastTransitionTime)
	}
	ti.Status = again
	refused := refusedStatus(&ti, &refusal{identityv1alpha1.ReasonConflict, "taken"}, publicBaseURL)
	if got := meta.FindStatusCondition(refused.Conditions, identityv1alpha1.ConditionReady); got.LastTransitionTime.Time.Equal(t0) {
		t.Error("Ready became False, yet its lastTransitionTime did not move")
	}
}

func TestRefusedAndInvalidStatusKeepKeys(t *testing.T) {
	ti := tenant("ns", tiName, t0)
	ti.Generation = 3
	ti.Status = plannedStatus(&ti, rotation.Input{Policy: testPolicy}, planOf([]rotation.Key{recActive, recRetired}, nil), publicBaseURL)
	ti.Generation = 4

	refused := refusedStatus(&ti, &refusal{identityv1alpha1.ReasonOrgNotBound, "bind it"}, publicBaseURL)
	invalid := invalidSpecStatus(&ti, errors.New("keys.overlap 1m is shorter than keys.tokenTTL 1h"), publicBaseURL)
	for _, c := range []struct {
		name                   string
		st                     identityv1alpha1.TenantIdentityStatus
		readyReason, pubReason string
		pubStatus              metav1.ConditionStatus
		readyMsg               string
	}{
		{"refused", refused, identityv1alpha1.ReasonOrgNotBound, identityv1alpha1.ReasonOrgNotBound, metav1.ConditionFalse, "bind it"},
		// A bad edit loses nothing already published: Published stays True.
		{"invalid spec", invalid, identityv1alpha1.ReasonInvalidSpec, identityv1alpha1.ReasonKeysPublished, metav1.ConditionTrue, "keys.overlap"},
	} {
		if c.st.ObservedGeneration != 4 || c.st.ActiveKeyID != recActive.KID || len(c.st.Keys) != 2 {
			t.Errorf("%s: status %+v, want the keys kept at generation 4", c.name, c.st)
		}
		ready := meta.FindStatusCondition(c.st.Conditions, identityv1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != c.readyReason ||
			!strings.Contains(ready.Message, c.readyMsg) || ready.ObservedGeneration != 4 {
			t.Errorf("%s: Ready %+v", c.name, ready)
		}
		pub := meta.FindStatusCondition(c.st.Conditions, identityv1alpha1.ConditionPublished)
		if pub == nil || pub.Status != c.pubStatus || pub.Reason != c.pubReason {
			t.Errorf("%s: Published %+v", c.name, pub)
		}
	}
}

// The status a reconcile computes is the status the API server stores and
// gives back (metav1.Time keeps whole seconds): a reconcile that changes
// nothing finds them equal, and writes nothing.
func TestStatusSurvivesTheRoundTrip(t *testing.T) {
	ti := tenant("ns", tiName, t0)
	ti.Generation = 3
	plan := planOf([]rotation.Key{recActive, recNext, recRetired}, []rotation.Key{{KID: "O", State: rotation.Retired, RemovesAt: t0.Add(time.Hour + 123*time.Millisecond)}})
	st := plannedStatus(&ti, rotation.Input{Policy: testPolicy}, plan, publicBaseURL)
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back identityv1alpha1.TenantIdentityStatus
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !statusEqual(back, st) {
		t.Fatalf("the stored status differs from the computed one:\n stored %+v\ncomputed %+v", back, st)
	}
}
