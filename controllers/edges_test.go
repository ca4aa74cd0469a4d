package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/apiclock"
)

// The lifecycle's edge cases: the moments the other suites do not create,
// each named by the invariant it protects.

// Invariant 3, for a workload that mounts the signing Secret: kubelet
// refreshes the mount a minute or two after the Secret changes, and until
// then the workload signs with the key signet has just replaced. With
// overlap == tokenTTL, a token signed in that window would outlive the
// key's publication; so the overlap counts from when the workload can have
// stopped signing, the switch plus the propagation margin.
func TestInvariant3SigningSecretPropagation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const margin = 2 * time.Minute
	h.r.SigningPropagation = margin
	h.create(nil)
	names := newKeyNames()
	h.run(names, untilNext)
	// B activates at t0+10m; A is retired, published until 10m + margin + overlap.
	h.run(names, []step{{10 * time.Minute, 3*time.Minute + margin, []string{"Normal KeyActivated", "Normal KeyRetired"},
		"Active=B Next= Retired=A published=B,A signing=B"}})
	a := names.kid(t, "A")
	removes := t0.Add(10*time.Minute + margin + overlap)
	expectRemoval(t, "status.keys[A].removesAt", h.snap().statusKey(a).RemovesAt, removes)
	if got := h.snap().keys[a].rec.RemovesAt; !got.Equal(removes) {
		t.Errorf("A's record removes at t0+%s, want t0+%s", got.Sub(t0), removes.Sub(t0))
	}
	// While B is Active its own removal time already counts the margin.
	if got := h.snap().statusKey(names.kid(t, "B")).RemovesAt; got == nil || got.Before(&metav1.Time{Time: t0.Add(20*time.Minute + margin + overlap - time.Second)}) {
		t.Errorf("the Active key's status removesAt %v does not count the margin", got)
	}
	// A mounting workload may sign with A until 10m + margin; its last
	// token lives tokenTTL: A is still published just before the end.
	h.at(10*time.Minute + margin + overlap - time.Nanosecond)
	h.reconcile()
	if !h.snap().publishes(a) {
		t.Fatalf("A unpublished before 10m + margin + overlap")
	}
	// Removed at 15m; B's successor is due at 18m.
	h.run(names, []step{{10*time.Minute + margin + overlap, 3 * time.Minute, []string{"Normal KeyRemoved"},
		"Active=B Next= Retired= published=B signing=B"}})
}

// skewedClock is a replica's own clock, ahead of the true (fake) time.
type skewedClock struct {
	clock.PassiveClock
	by time.Duration
}

func (c skewedClock) Now() time.Time                  { return c.PassiveClock.Now().Add(c.by) }
func (c skewedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Invariant 2 across a failover to a leader whose clock runs ten minutes
// ahead: records are written on the old leader's clock and acted on with
// the new one's. The new leader keeps time by the API server's clock
// (internal/apiclock, fed here with the API server's Date headers as the
// fake clock says them), so it activates the Next key no earlier than the
// old leader would have. On its own clock it would activate it at once.
func TestInvariant2ClockSkewAcrossFailover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, untilNext) // the first leader: A Active, B published at 8m, activates at 10m

	local := skewedClock{PassiveClock: h.clk, by: 10 * time.Minute}
	serverClock := apiclock.New(local)
	next := h.reconciler(h.c)
	next.Clock = serverClock
	// observe is one response of the API server, its Date on the true clock.
	observe := func() {
		date := h.clk.Now().Truncate(time.Second)
		serverClock.Observe(date, local.Now(), local.Now())
	}
	reconcileAs := func(at time.Duration) {
		t.Helper()
		h.at(at)
		observe()
		if _, err := next.Reconcile(h.ctx, reqFor(h.ns, h.name)); err != nil {
			t.Fatal(err)
		}
		h.inv.observe(h.clk.Now(), h.snap(), afterReconcile)
	}
	// True time 9m: the new leader's own clock says 19m, past B's activation.
	reconcileAs(9 * time.Minute)
	if s := h.snap(); names.state(s) != "Active=A Next=B Retired= published=A,B signing=A" {
		t.Fatalf("the skewed leader changed the keys at 9m: %s", names.state(s))
	}
	// Within the tolerance (half a second) of the activation, nothing yet.
	reconcileAs(10*time.Minute - time.Second)
	if got := h.snap().signingKID(); got != names.kid(t, "A") {
		t.Fatalf("B signs a second before its activation")
	}
	reconcileAs(10*time.Minute + time.Second)
	if got := h.snap().signingKID(); got != names.kid(t, "B") {
		t.Fatalf("B does not sign after its activation: %s", names.state(h.snap()))
	}
	h.events.take()
}

// Invariant 3 with a status that does not list a published kid (a crash
// before the status write, or a status read from a stale cache): the kid
// signs (it is the signing Secret's), or signet's own write put it in the
// ConfigMap, so it is not dropped as "unknown" but stays published for a
// full overlap. Only a kid signet provably never published is dropped.
func TestInvariant3StaleStatusKeepsPublishedKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		lose string // the key whose Secret is deleted after the crash
	}{
		{"the signing key, missing from the status", "A"},
		{"a Next key signet published, missing from the status", "B"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.create(nil)
			names := newKeyNames()
			h.run(names, untilNext[:1])
			// The reconcile that publishes B stops before its status write
			// (its last): the status does not list B.
			h.at(8 * time.Minute)
			f := &faults{mode: stopBefore, n: countWrites(t, h, 8*time.Minute)}
			r := h.reconciler(f.client(h.c))
			if _, err := r.Reconcile(h.ctx, reqFor(h.ns, h.name)); err == nil {
				t.Fatal("the status write did not fail")
			}
			h.events.take()
			s := h.snap()
			names.learn(t, s)
			b := names.kid(t, "B")
			if !s.publishes(b) || s.statusKey(b) != nil {
				t.Fatalf("setup: B published %v, in status %v", s.publishes(b), s.statusKey(b) != nil)
			}
			if tc.lose == "A" {
				// And the status loses A too, as a stale copy would.
				h.edit(func() error {
					ti := h.get()
					ti.Status.Keys = slices.DeleteFunc(ti.Status.Keys, func(k identityv1alpha1.KeyStatus) bool { return k.KID == names.kid(t, "A") })
					return h.c.Status().Update(h.ctx, ti)
				})
				waitCached(t, h.key(), h.get().ResourceVersion)
			}
			lost := names.kid(t, tc.lose)
			h.deleteKeySecret(lost)
			h.at(8*time.Minute + time.Second)
			h.reconcile()
			after := h.snap()
			if !after.publishes(lost) {
				t.Fatalf("%s (%s) was dropped although signet published it", tc.lose, lost)
			}
			if ks := after.statusKey(lost); ks == nil || ks.RemovesAt == nil || ks.RemovesAt.Time.Before(t0.Add(8*time.Minute+time.Second+overlap)) {
				t.Fatalf("%s is kept, but not for a full overlap: %+v", tc.lose, ks)
			}
			for _, e := range h.events.take() {
				if e.Reason == ReasonUnknownKeyDropped {
					t.Errorf("dropped as unknown: %s", e)
				}
			}
		})
	}
}

// countWrites runs, on a copy of the world, the reconcile at d and returns
// how many writes it makes; the last one is its status write.
func countWrites(t *testing.T, h *harness, d time.Duration) int {
	t.Helper()
	probe := newHarness(t)
	probe.create(nil)
	probe.run(newKeyNames(), untilNext[:1])
	probe.at(d)
	f := &faults{mode: failOne, n: 1 << 30}
	if _, err := probe.reconciler(f.client(probe.c)).Reconcile(probe.ctx, reqFor(probe.ns, probe.name)); err != nil {
		t.Fatal(err)
	}
	probe.events.take()
	return len(f.writes)
}

// Invariant 5 with a key Secret whose labels were stripped: it looks
// lost, but signet finds it by its controller reference, gives the labels
// back, and goes on with it. No new key, no private key left untracked.
func TestInvariant5StrayKeySecrets(t *testing.T) {
	t.Parallel()
	t.Run("the Active key's labels stripped", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.create(nil)
		names := newKeyNames()
		h.run(names, untilNext[:1])
		a := names.kid(t, "A")
		stripLabels(t, h, a)
		h.at(time.Minute)
		h.reconcile()
		h.expectEvents("adopt", "Warning "+ReasonStrayKeyAdopted)
		s := h.snap()
		if len(s.keys) != 1 || s.signingKID() != a || names.state(s) != "Active=A Next= Retired= published=A signing=A" {
			t.Fatalf("after the labels were stripped: %s, %d key Secrets found by label", names.state(s), len(s.keys))
		}
	})
	t.Run("a key nothing names yet, stored just before a crash, then its labels stripped", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.create(nil)
		names := newKeyNames()
		h.run(names, untilNext[:1])
		// The reconcile at 8m stores B's Secret, then the process dies.
		h.at(8 * time.Minute)
		f := &faults{mode: stopAfter, n: 1}
		if _, err := h.reconciler(f.client(h.c)).Reconcile(h.ctx, reqFor(h.ns, h.name)); err == nil {
			t.Fatal("no crash")
		}
		h.events.take() // the crash's ApplyFailed
		strays := allKeySecrets(t, h)
		if len(strays) != 2 {
			t.Fatalf("setup: %d key Secrets", len(strays))
		}
		var b string
		for _, s := range strays {
			if kid := s.Annotations[annKID]; kid != names.kid(t, "A") {
				b = kid
			}
		}
		before := keyMetadata(t, h, b) // as the cache holds it, labels and all
		stripLabels(t, h, b)
		// The cache sees B leave it (its labels no longer select it): the
		// informer's delete event notes B for its owner.
		q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
		defer q.ShutDown()
		h.r.noteLeft(h.ctx, event.DeleteEvent{Object: before}, q)
		if q.Len() != 1 {
			t.Fatalf("the owner was not queued")
		}
		h.at(8*time.Minute + time.Second)
		h.reconcile()
		h.expectEvents("adopt", "Warning "+ReasonStrayKeyAdopted)
		s := h.snap()
		if got := allKeySecrets(t, h); len(got) != 2 || len(s.keys) != 2 {
			t.Fatalf("%d key Secrets, %d of them tracked: want A and B, both tracked, and no key made beside B", len(got), len(s.keys))
		}
		h.drive(30 * time.Minute) // B publishes, activates, the lifecycle goes on
		h.events.take()
	})
	t.Run("an unusable key Secret of this TenantIdentity without labels", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.create(nil)
		names := newKeyNames()
		h.run(names, untilNext[:1])
		ti := h.get()
		junk := &corev1.Secret{
			ObjectMeta: ownedMeta(ti, ti.Name+"-junkjunk00", identityv1alpha1.ComponentKey),
			Type:       secretTypeKey,
			Data:       map[string][]byte{dataKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")},
		}
		junk.Labels = nil
		h.edit(func() error { return h.c.Create(h.ctx, junk) })
		// It lost its labels while no manager ran: the scan when the
		// controller starts finds it.
		found := make(chan event.GenericEvent, maxStrayNotes)
		if err := (&strayScan{r: h.r, reader: h.c, namespace: h.ns, found: found}).Start(h.ctx); err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 {
			t.Fatalf("the scan queued %d TenantIdentities, want the owner", len(found))
		}
		if e := <-found; e.Object.GetNamespace() != h.ns || e.Object.GetName() != h.name {
			t.Fatalf("the scan queued %s/%s", e.Object.GetNamespace(), e.Object.GetName())
		}
		h.at(time.Minute)
		h.reconcile()
		h.expectEvents("scan", "Warning "+ReasonStrayKeyDestroyed)
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(junk), &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the unusable stray key Secret is still there: %v", err)
		}
	})
}

// keyMetadata is the metadata of kid's key Secret, as the cache holds it.
func keyMetadata(t *testing.T, h *harness, kid string) *metav1.PartialObjectMetadata {
	t.Helper()
	for _, s := range allKeySecrets(t, h) {
		if s.Annotations[annKID] == kid {
			return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: s.ObjectMeta}
		}
	}
	t.Fatalf("no key Secret holds %s", kid)
	return nil
}

func stripLabels(t *testing.T, h *harness, kid string) {
	t.Helper()
	for _, s := range allKeySecrets(t, h) {
		if s.Annotations[annKID] != kid {
			continue
		}
		h.edit(func() error {
			s.Labels = map[string]string{"team": "whoever"}
			return h.c.Update(h.ctx, &s)
		})
		return
	}
	t.Fatalf("no key Secret holds %s", kid)
}

// allKeySecrets lists every Secret of the namespace that holds a key of
// the harness's TenantIdentity, labelled or not.
func allKeySecrets(t *testing.T, h *harness) []corev1.Secret {
	t.Helper()
	var list corev1.SecretList
	if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
		t.Fatal(err)
	}
	ti := h.get()
	var out []corev1.Secret
	for _, s := range list.Items {
		if s.Type == secretTypeKey && metav1.IsControlledBy(&s, ti) {
			out = append(out, s)
		}
	}
	return out
}

// Invariant 5: a delete carries a UID precondition, so a Secret recreated
// under the same name between the read and the delete is not destroyed.
func TestDeletesCarryUIDPrecondition(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(nil)
	names := newKeyNames()
	h.run(names, untilRetired)
	a := names.kid(t, "A")
	var replaced *corev1.Secret
	// Just before A's removal is sent, someone replaces A's Secret with one
	// of the same name (a new UID).
	racing := interceptor.NewClient(h.c, interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if replaced == nil && obj.GetName() == h.snap().keys[a].secret.Name {
				old := h.snap().keys[a].secret
				if err := c.Delete(ctx, &old); err != nil {
					return err
				}
				replaced = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: old.Namespace, Name: old.Name, Labels: map[string]string{"replaced": "yes"}}}
				if err := c.Create(ctx, replaced); err != nil {
					return err
				}
			}
			return c.Delete(ctx, obj, opts...)
		},
	})
	h.at(13 * time.Minute)
	_, _ = h.reconciler(racing).Reconcile(h.ctx, reqFor(h.ns, h.name))
	if replaced == nil {
		t.Fatal("A's removal was never sent")
	}
	var got corev1.Secret
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(replaced), &got); err != nil || got.UID != replaced.UID {
		t.Fatalf("the Secret recreated under A's name was deleted: %v", err)
	}
	h.events.take()
}

// The notes of stray key Secrets are a bounded set: a tenant toggling the
// labels of many Secrets controlled by its TenantIdentity cannot grow them.
func TestStrayNotesAreABoundedSet(t *testing.T) {
	tenant := types.NamespacedName{Namespace: "ns", Name: "ti"}
	cases := []struct {
		name  string
		notes [][]string
		want  int
	}{
		{"one name noted again and again", [][]string{{"a"}, {"a"}, {"a", "a"}}, 1},
		{"a few names", [][]string{{"a", "b"}, {"c"}}, 3},
		{"more names than the bound", [][]string{manyNames(3 * maxStrayNotes)}, maxStrayNotes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n strayNotes
			for _, names := range c.notes {
				n.note(tenant, names)
			}
			if got := len(n.of(tenant)); got != c.want {
				t.Errorf("%d names noted, want %d", got, c.want)
			}
			n.done(tenant)
			if got := len(n.of(tenant)); got != 0 {
				t.Errorf("%d names after done", got)
			}
		})
	}
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%d", i)
	}
	return out
}

// A Secret leaving the cache, or relabelled out of its owner's index, is
// noted only for a TenantIdentity this instance reconciles; and a
// reconcile that leaves a TenantIdentity alone clears its notes.
func TestStrayNotesOnlyForReconciledTenants(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ti := h.create(nil)
	h.reconcile()
	h.events.take()
	secretOf := func(owner string, labels map[string]string) *metav1.PartialObjectMetadata {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: owner + "-0123456789", Labels: labels}}
		ref := metav1.NewControllerRef(ti, identityv1alpha1.GroupVersion.WithKind("TenantIdentity"))
		ref.Name = owner
		m.OwnerReferences = []metav1.OwnerReference{*ref}
		return m
	}
	keyLabels := keySecretLabels(ti, "")
	other := maps.Clone(keyLabels)
	other[identityv1alpha1.LabelComponent] = "something-else"
	selectNone := labels.SelectorFromSet(labels.Set{"shard": "none"})
	cases := []struct {
		name     string
		selector labels.Selector
		event    func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request])
		queued   bool
	}{
		{"left the cache", nil, func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.noteLeft(h.ctx, event.DeleteEvent{Object: secretOf(h.name, keyLabels)}, q)
		}, true},
		{"relabelled out of the index", nil, func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.noteRelabelled(h.ctx, event.UpdateEvent{ObjectOld: secretOf(h.name, keyLabels), ObjectNew: secretOf(h.name, other)}, q)
		}, true},
		{"updated, still its owner's key", nil, func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.noteRelabelled(h.ctx, event.UpdateEvent{ObjectOld: secretOf(h.name, keyLabels), ObjectNew: secretOf(h.name, keyLabels)}, q)
		}, false},
		{"owner gone", nil, func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.noteLeft(h.ctx, event.DeleteEvent{Object: secretOf("no-such-tenant", keyLabels)}, q)
		}, false},
		{"owner reconciled by another shard", selectNone, func(r *TenantIdentityReconciler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.noteLeft(h.ctx, event.DeleteEvent{Object: secretOf(h.name, keyLabels)}, q)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.reconciler(h.c)
			r.TenantSelector = c.selector
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			c.event(r, q)
			noted := len(r.strays.of(client.ObjectKeyFromObject(ti))) > 0
			if got := q.Len() == 1; got != c.queued || noted != c.queued {
				t.Errorf("queued %v, noted %v; want %v", got, noted, c.queued)
			}
		})
	}
	t.Run("a reconcile that leaves the TenantIdentity alone clears its notes", func(t *testing.T) {
		r := h.reconciler(h.c)
		r.TenantSelector = selectNone
		r.strays.note(client.ObjectKeyFromObject(ti), []string{"s"})
		if _, err := r.Reconcile(h.ctx, reqFor(h.ns, h.name)); err != nil {
			t.Fatal(err)
		}
		if n := r.strays.of(client.ObjectKeyFromObject(ti)); len(n) != 0 {
			t.Errorf("notes kept: %v", n)
		}
	})
}
