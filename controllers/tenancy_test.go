package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// expectNothingStored: a refused TenantIdentity has no keys, no signing
// Secret and no ConfigMap.
func expectNothingStored(t testing.TB, s *snapshot) {
	t.Helper()
	if len(s.keys) != 0 || s.signing != nil || s.cm != nil {
		t.Errorf("refused, yet stored: %d keys, signing Secret %v, ConfigMap %v", len(s.keys), s.signing != nil, s.cm != nil)
	}
	if s.ti.Status.ActiveKeyID != "" || len(s.ti.Status.Keys) != 0 {
		t.Errorf("refused, yet the status lists keys: %+v", s.ti.Status)
	}
}

func TestConflictOlderClaimWins(t *testing.T) {
	t.Parallel()
	nsOld, nsNew := env.Namespace(t, acme), env.Namespace(t, acme)
	// The older claim's namespace sorts after the newer one's, so that only
	// the age can make it win (ties are broken by namespace).
	if nsOld < nsNew {
		nsOld, nsNew = nsNew, nsOld
	}
	site := newSiteID(t)
	onSite := func(s *identityv1alpha1.TenantIdentitySpec) { s.SiteID = site }
	older, newer := newHarnessIn(t, nsOld), newHarnessIn(t, nsNew)
	created := older.create(onSite)
	// creationTimestamp has a second's precision.
	time.Sleep(time.Until(created.CreationTimestamp.Add(1100 * time.Millisecond)))
	newer.create(onSite)

	res := newer.reconcile()
	if res.RequeueAfter != 0 {
		t.Errorf("refused TenantIdentity requeued after %s", res.RequeueAfter)
	}
	s := newer.snap()
	ready := expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonConflict)
	expectCondition(t, s, identityv1alpha1.ConditionPublished, metav1.ConditionFalse, identityv1alpha1.ReasonConflict)
	if ready != nil && !strings.Contains(ready.Message, nsOld+"/"+tiName) {
		t.Errorf("Conflict message %q does not name the older claim %s/%s", ready.Message, nsOld, tiName)
	}
	expectNothingStored(t, s)
	ev := newer.expectEvents("conflict", "Warning Conflict")
	if len(ev) == 1 && !strings.Contains(ev[0].Note, nsOld+"/"+tiName) {
		t.Errorf("Conflict event %q does not name the older claim", ev[0].Note)
	}

	// The older one publishes, whatever the newer one did.
	older.reconcileAt(0, period-prePublish)
	older.expectEvents("winner", "Normal KeyCreated")
	expectCondition(t, older.snap(), identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	newer.reconcile()
	expectNothingStored(t, newer.snap())
	newer.expectEvents("conflict again: settled, nothing new to say")

	// The winner is deleted: the other takes over on its next reconcile.
	older.deleteTI()
	newer.at(time.Minute)
	newer.reconcileAt(time.Minute, period-prePublish)
	newer.expectEvents("takeover", "Normal KeyCreated")
	s = newer.snap()
	expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	expectCondition(t, s, identityv1alpha1.ConditionPublished, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	if len(s.keys) != 1 || s.cm == nil || s.signing == nil {
		t.Errorf("after takeover: %d keys, ConfigMap %v, signing Secret %v", len(s.keys), s.cm != nil, s.signing != nil)
	}
}

func TestOrgBinding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		nsLabels   map[string]string
		binding    bool
		wantReady  bool
		wantInNote []string
	}{
		{"namespace without the label", nil, true, false, []string{identityv1alpha1.LabelOrg, `"acme"`}},
		{"namespace bound to another org", map[string]string{identityv1alpha1.LabelOrg: "globex"}, true, false,
			[]string{identityv1alpha1.LabelOrg, `"globex"`, `"acme"`}},
		{"namespace with an empty label", map[string]string{identityv1alpha1.LabelOrg: ""}, true, false,
			[]string{identityv1alpha1.LabelOrg, `"acme"`}},
		{"namespace bound to acme", acme, true, true, nil},
		{"binding off, namespace without the label", nil, false, true, nil},
		{"binding off, namespace bound to another org", map[string]string{identityv1alpha1.LabelOrg: "globex"}, false, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessIn(t, env.Namespace(t, tc.nsLabels))
			h.r.OrgBinding = tc.binding
			h.create(nil)
			res := h.reconcile()
			s := h.snap()
			if tc.wantReady {
				expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
				h.expectEvents("bound", "Normal KeyCreated")
				if len(s.keys) != 1 {
					t.Errorf("%d keys, want 1", len(s.keys))
				}
				return
			}
			if res.RequeueAfter != 0 {
				t.Errorf("refused TenantIdentity requeued after %s", res.RequeueAfter)
			}
			ready := expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
			expectCondition(t, s, identityv1alpha1.ConditionPublished, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
			expectNothingStored(t, s)
			ev := h.expectEvents("refused", "Warning OrgNotBound")
			for _, want := range tc.wantInNote {
				if ready != nil && !strings.Contains(ready.Message, want) {
					t.Errorf("Ready message %q does not name %s", ready.Message, want)
				}
				if len(ev) == 1 && !strings.Contains(ev[0].Note, want) {
					t.Errorf("event %q does not name %s", ev[0].Note, want)
				}
			}

			// The cluster admin binds the namespace: keys are published.
			var ns corev1.Namespace
			if err := h.c.Get(h.ctx, keyOf("", h.ns), &ns); err != nil {
				t.Fatal(err)
			}
			ns.Labels = map[string]string{identityv1alpha1.LabelOrg: "acme"}
			if err := h.c.Update(h.ctx, &ns); err != nil {
				t.Fatal(err)
			}
			h.reconcileAt(time.Minute, period-prePublish)
			h.expectEvents("bound", "Normal KeyCreated")
			expectCondition(t, h.snap(), identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
		})
	}
}

// TestRefusalKeepsPublishedKeys: a namespace unbound after its keys were
// published refuses the TenantIdentity, but loses no key.
func TestRefusalKeepsPublishedKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	h.reconcile()
	before := h.snap()
	var ns corev1.Namespace
	if err := h.c.Get(h.ctx, keyOf("", h.ns), &ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[identityv1alpha1.LabelOrg] = "globex"
	if err := h.c.Update(h.ctx, &ns); err != nil {
		t.Fatal(err)
	}
	h.at(time.Hour) // past every scheduled change
	h.reconcile()
	after := h.snap()
	expectCondition(t, after, identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
	expectCondition(t, after, identityv1alpha1.ConditionPublished, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
	if len(after.keys) != 1 || after.cm == nil || after.signing == nil {
		t.Errorf("a refusal removed keys or documents")
	}
	for k, rv := range before.resourceVersions() {
		if after.resourceVersions()[k] != rv {
			t.Errorf("%s written while refused", k)
		}
	}
}

// An older claim in a namespace not bound to the org (a squatter) does not
// compete: the bound claim publishes.
func TestUnboundOlderClaimDoesNotBlock(t *testing.T) {
	t.Parallel()
	nsSquat, nsOwner := env.Namespace(t, nil), env.Namespace(t, acme)
	site := newSiteID(t)
	onSite := func(s *identityv1alpha1.TenantIdentitySpec) { s.SiteID = site }
	squatter, owner := newHarnessIn(t, nsSquat), newHarnessIn(t, nsOwner)
	created := squatter.create(onSite)
	time.Sleep(time.Until(created.CreationTimestamp.Add(1100 * time.Millisecond)))
	owner.create(onSite)

	squatter.reconcile()
	expectCondition(t, squatter.snap(), identityv1alpha1.ConditionReady, metav1.ConditionFalse, identityv1alpha1.ReasonOrgNotBound)
	owner.reconcile()
	s := owner.snap()
	expectCondition(t, s, identityv1alpha1.ConditionReady, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	expectCondition(t, s, identityv1alpha1.ConditionPublished, metav1.ConditionTrue, identityv1alpha1.ReasonKeysPublished)
	if len(s.keys) != 1 || s.cm == nil {
		t.Errorf("the bound claim did not publish: %d keys, ConfigMap %v", len(s.keys), s.cm != nil)
	}
}
