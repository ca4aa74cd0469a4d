package controllers

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/rotation/rotationtest"
	"github.com/signet-dev/signet/internal/tenancy"
	"github.com/signet-dev/signet/internal/testenv"
)

// The short policy most tests use, and where the fake clock starts. t0 has
// nanoseconds on purpose: records and status must not round them away.
var t0 = time.Date(2026, time.March, 2, 9, 30, 0, 123456789, time.UTC)

const (
	period     = 10 * time.Minute
	prePublish = 2 * time.Minute
	overlap    = 3 * time.Minute
	tokenTTL   = time.Minute

	publicBaseURL = "https://signet.test"
	// systemNamespace is signet's own, where the claim records live
	// (TestMain creates it).
	systemNamespace = "signet-system"
	tiName          = "acme-dc1"
)

func shortPolicy() identityv1alpha1.KeyPolicy {
	return identityv1alpha1.KeyPolicy{
		Algorithm:      keys.ES256,
		RotationPeriod: period.String(),
		PrePublish:     prePublish.String(),
		Overlap:        overlap.String(),
		TokenTTL:       tokenTTL.String(),
	}
}

// acme binds a namespace to org acme.
var acme = map[string]string{identityv1alpha1.LabelOrg: "acme"}

// newSiteID is a fresh lowercase UUID: envtest has no namespace controller,
// so the TenantIdentities of earlier tests stay and would conflict with a
// reused org/site.
func newSiteID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ---- events ----

type capturedEvent struct {
	Regarding          string // namespace/name
	Type, Reason, Note string
	Action             string
}

func (e capturedEvent) String() string { return e.Type + " " + e.Reason + ": " + e.Note }

// eventRecorder keeps every event in memory.
type eventRecorder struct {
	mu     sync.Mutex
	events []capturedEvent
	taken  int
}

func (r *eventRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	e := capturedEvent{Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)}
	if o, ok := regarding.(client.Object); ok {
		e.Regarding = o.GetNamespace() + "/" + o.GetName()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *eventRecorder) all() []capturedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// take returns the events recorded since the last take.
func (r *eventRecorder) take() []capturedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.events[r.taken:])
	r.taken = len(r.events)
	return out
}

// ---- clients ----

// shared is what every test shares: a client straight to the API server,
// with no cache, and a cache of TenantIdentities with the org/site tenancy.
var shared struct {
	once   sync.Once
	client client.WithWatch
	cache  cache.Cache
	stop   context.CancelFunc
	done   chan struct{}
	err    error
}

// stopShared stops the shared cache, if it was started, and waits for it.
func stopShared() {
	if shared.stop != nil {
		shared.stop()
		<-shared.done
	}
}

// newDirectClient talks straight to the API server, with no cache, except
// for the one list the API server cannot serve: TenantIdentities by
// tenancy.OrgSiteField. That list is served by a cache with the index
// registered, as in the manager; the tests wait for the cache to see every
// TenantIdentity they create, change or delete (see waitCached), so it is
// never stale when a reconcile reads it.
func newDirectClient(t testing.TB) client.WithWatch {
	t.Helper()
	shared.once.Do(func() {
		c, err := client.NewWithWatch(env.Config, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			shared.err = err
			return
		}
		ca, err := cache.New(env.Config, cache.Options{Scheme: testenv.Scheme()})
		if err != nil {
			shared.err = err
			return
		}
		ctx, stop := context.WithCancel(context.Background()) // until TestMain stops it
		if err := cacheopts.IndexOrgSite(ctx, ca); err != nil {
			stop()
			shared.err = err
			return
		}
		shared.stop, shared.done = stop, make(chan struct{})
		go func() {
			defer close(shared.done)
			_ = ca.Start(ctx)
		}()
		if !ca.WaitForCacheSync(ctx) {
			shared.err = errors.New("TenantIdentity cache did not sync")
			return
		}
		shared.cache = ca
		shared.client = interceptor.NewClient(c, interceptor.Funcs{List: listByOrgSite})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.client
}

func listByOrgSite(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	if lo.FieldSelector == nil || lo.FieldSelector.Empty() {
		return c.List(ctx, list, opts...)
	}
	if owner, ok := lo.FieldSelector.RequiresExactMatch(keySecretsField); ok {
		// The manager's cache indexes key Secrets by their TenantIdentity;
		// the API server selects them by the same labels.
		return c.List(ctx, list, client.InNamespace(lo.Namespace), client.MatchingLabels{
			identityv1alpha1.LabelTenantIdentity: owner, identityv1alpha1.LabelComponent: identityv1alpha1.ComponentKey,
		})
	}
	if _, ok := lo.FieldSelector.RequiresExactMatch("type"); ok {
		return c.List(ctx, list, opts...) // the API server selects Secrets on their type
	}
	if _, ok := lo.FieldSelector.RequiresExactMatch(tenancy.OrgSiteField); !ok {
		return fmt.Errorf("test client: unsupported field selector %q", lo.FieldSelector)
	}
	return shared.cache.List(ctx, list, opts...)
}

// waitCached waits until the TenantIdentity cache holds key at resource
// version rv, or no longer holds it when rv is "".
func waitCached(t testing.TB, key client.ObjectKey, rv string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ti identityv1alpha1.TenantIdentity
		err := shared.cache.Get(context.Background(), key, &ti)
		switch {
		case rv == "" && apierrors.IsNotFound(err), rv != "" && err == nil && ti.ResourceVersion == rv:
			return
		case err != nil && !apierrors.IsNotFound(err):
			t.Fatal(err)
		case time.Now().After(deadline):
			t.Fatalf("the TenantIdentity cache did not see %s at resource version %q", key, rv)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// faultMode is how an injected failure behaves.
type faultMode int

const (
	// failOne refuses the N-th write; later writes go through.
	failOne faultMode = iota
	// stopBefore refuses the N-th write and every later one: the process
	// stopped just before it.
	stopBefore
	// stopAfter carries out the N-th write, then fails it and every later
	// one: the process died just after the API server stored it.
	stopAfter
)

func (m faultMode) String() string {
	return [...]string{"fail-one", "stop-before", "stop-after"}[m]
}

// faults counts writes (create, update, patch, delete, status included)
// and fails them as its mode says.
type faults struct {
	mode faultMode
	n    int

	mu       sync.Mutex
	writes   []string
	injected int
}

func (f *faults) client(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return f.write("create", obj, func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return f.write("update", obj, func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return f.write("patch", obj, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return f.write("delete", obj, func() error { return c.Delete(ctx, obj, opts...) })
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			return f.write("deleteAllOf", obj, func() error { return c.DeleteAllOf(ctx, obj, opts...) })
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			return f.write("apply", nil, func() error { return c.Apply(ctx, obj, opts...) })
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			return f.write("create/"+sub, obj, func() error { return c.SubResource(sub).Create(ctx, obj, subObj, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return f.write("update/"+sub, obj, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			return f.write("patch/"+sub, obj, func() error { return c.SubResource(sub).Patch(ctx, obj, patch, opts...) })
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			return f.write("apply/"+sub, nil, func() error { return c.SubResource(sub).Apply(ctx, obj, opts...) })
		},
	})
}

func (f *faults) write(verb string, obj client.Object, do func() error) error {
	desc := verb
	if obj != nil {
		desc = fmt.Sprintf("%s %T %s", verb, obj, obj.GetName())
	}
	f.mu.Lock()
	f.writes = append(f.writes, desc)
	k := len(f.writes)
	f.mu.Unlock()
	switch {
	case k < f.n, f.mode == failOne && k > f.n:
		return do()
	case f.mode == stopAfter && k == f.n:
		if err := do(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.injected++
	f.mu.Unlock()
	return fmt.Errorf("injected failure of write %d (%s)", k, desc)
}

func (f *faults) hit() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected > 0
}

// ---- logs ----

// logSink collects the log lines of the reconciles, for the secrets scan,
// up to V(5): debug logging. (From V(8), client-go logs request and
// response bodies, Secrets included, through the same context logger.)
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.buf.WriteString(obj)
		s.buf.WriteByte('\n')
	}, funcr.Options{Verbosity: 5, LogCaller: funcr.All, LogTimestamp: true})
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// ---- harness ----

// harness drives one TenantIdentity through the reconciler with a fake
// clock, and checks the invariants after every step.
type harness struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	name   string
	clk    *clocktesting.FakeClock
	events *eventRecorder
	logs   *logSink
	c      client.WithWatch // the healthy client
	r      *TenantIdentityReconciler
	inv    *invariants
	// seen, when set, is shown every snapshot the harness takes after a
	// reconcile or a hand edit.
	seen func(*snapshot)
}

func newHarness(t *testing.T) *harness {
	return newHarnessIn(t, env.Namespace(t, acme))
}

func newHarnessIn(t *testing.T, ns string) *harness {
	t.Helper()
	h := &harness{
		t: t, ns: ns, name: tiName,
		clk:    clocktesting.NewFakeClock(t0),
		events: &eventRecorder{},
		logs:   &logSink{},
		c:      newDirectClient(t),
	}
	h.ctx = log.IntoContext(context.Background(), h.logs.logger())
	h.r = h.reconciler(h.c)
	h.inv = newInvariants(t, prePublish, overlap)
	return h
}

func (h *harness) reconciler(c client.Client) *TenantIdentityReconciler {
	return &TenantIdentityReconciler{
		Client: c, Clock: h.clk, Recorder: h.events,
		PublicBaseURL: publicBaseURL, OrgBinding: true, SystemNamespace: systemNamespace, Generate: keys.Generate,
	}
}

// create makes the TenantIdentity with the short policy, edited by mut.
func (h *harness) create(mut func(*identityv1alpha1.TenantIdentitySpec)) *identityv1alpha1.TenantIdentity {
	h.t.Helper()
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: h.name},
		Spec: identityv1alpha1.TenantIdentitySpec{
			Org: "acme", SiteID: newSiteID(h.t), Keys: shortPolicy(),
		},
	}
	if mut != nil {
		mut(&ti.Spec)
	}
	if err := h.c.Create(h.ctx, ti); err != nil {
		h.t.Fatalf("create TenantIdentity: %v", err)
	}
	waitCached(h.t, h.key(), ti.ResourceVersion)
	return ti
}

func (h *harness) key() types.NamespacedName {
	return types.NamespacedName{Namespace: h.ns, Name: h.name}
}

// at sets the fake clock to t0+d.
func (h *harness) at(d time.Duration) { h.clk.SetTime(t0.Add(d)) }

// reconcile runs one healthy reconcile, fails the test on error, and
// checks the invariants on what it stored.
func (h *harness) reconcile() ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(h.ctx, ctrl.Request{NamespacedName: h.key()})
	if err != nil {
		h.t.Fatalf("reconcile at t0+%s: %v", h.clk.Now().Sub(t0), err)
	}
	h.inv.observe(h.clk.Now(), h.snap(), afterReconcile)
	return res
}

// reconcileAt sets the clock to t0+d, reconciles and checks RequeueAfter.
func (h *harness) reconcileAt(d, wantRequeue time.Duration) {
	h.t.Helper()
	h.at(d)
	res := h.reconcile()
	if res.RequeueAfter != wantRequeue {
		h.t.Errorf("at t0+%s: RequeueAfter = %s, want %s", d, res.RequeueAfter, wantRequeue)
	}
}

// drive reconciles at the instants the reconciler asks for (RequeueAfter)
// until t0+until.
func (h *harness) drive(until time.Duration) {
	h.t.Helper()
	for i := 0; ; i++ {
		res := h.reconcile()
		if res.RequeueAfter <= 0 || h.clk.Now().Add(res.RequeueAfter).After(t0.Add(until)) {
			return
		}
		if i > 100 {
			h.t.Fatalf("drive: more than 100 reconciles before t0+%s", until)
		}
		h.clk.Step(res.RequeueAfter)
	}
}

// deleteTI deletes the TenantIdentity (no finalizer: it is gone at once).
func (h *harness) deleteTI() {
	h.t.Helper()
	if err := h.c.Delete(h.ctx, h.get()); err != nil {
		h.t.Fatal(err)
	}
	waitCached(h.t, h.key(), "")
}

func (h *harness) get() *identityv1alpha1.TenantIdentity {
	h.t.Helper()
	var ti identityv1alpha1.TenantIdentity
	if err := h.c.Get(h.ctx, h.key(), &ti); err != nil {
		h.t.Fatalf("get TenantIdentity: %v", err)
	}
	return &ti
}

// update edits the TenantIdentity's spec.
func (h *harness) update(mut func(*identityv1alpha1.TenantIdentity)) {
	h.t.Helper()
	for range 5 {
		ti := h.get()
		mut(ti)
		err := h.c.Update(h.ctx, ti)
		if err == nil {
			waitCached(h.t, h.key(), ti.ResourceVersion)
			h.inv.observe(h.clk.Now(), h.snap(), byHand)
			return
		}
		if !apierrors.IsConflict(err) {
			h.t.Fatalf("update TenantIdentity: %v", err)
		}
	}
	h.t.Fatal("update TenantIdentity: conflicts")
}

// edit changes a stored object by hand and lets the invariant checker know.
func (h *harness) edit(do func() error) {
	h.t.Helper()
	if err := do(); err != nil {
		h.t.Fatalf("hand edit: %v", err)
	}
	h.inv.observe(h.clk.Now(), h.snap(), byHand)
}

// deleteKeySecret deletes a key's Secret by hand, as an operator would.
func (h *harness) deleteKeySecret(kid string) {
	h.t.Helper()
	s, ok := h.snap().keys[kid]
	if !ok {
		h.t.Fatalf("no key Secret for %s", kid)
	}
	h.edit(func() error { return h.c.Delete(h.ctx, &s.secret) })
}

// expectEvents checks the events since the last check, as "Type Reason".
func (h *harness) expectEvents(when string, want ...string) []capturedEvent {
	h.t.Helper()
	got := h.events.take()
	var reasons []string
	for _, e := range got {
		reasons = append(reasons, e.Type+" "+e.Reason)
		if e.Regarding != h.ns+"/"+h.name {
			h.t.Errorf("%s: event %s is about %s", when, e, e.Regarding)
		}
	}
	if !slices.Equal(reasons, want) {
		h.t.Errorf("%s: events %q, want %q\n%s", when, reasons, want, eventList(got))
	}
	return got
}

func eventList(events []capturedEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

// ---- what is stored ----

type storedKey struct {
	rec    rotation.Key
	secret corev1.Secret
}

// snapshot is everything stored for one TenantIdentity.
type snapshot struct {
	ti      identityv1alpha1.TenantIdentity
	keys    map[string]storedKey
	signing *corev1.Secret
	cm      *corev1.ConfigMap
}

func (h *harness) snap() *snapshot {
	h.t.Helper()
	s := takeSnapshot(h.t, h.ctx, h.c, h.ns, h.name)
	if h.seen != nil {
		h.seen(s)
	}
	return s
}

func takeSnapshot(t testing.TB, ctx context.Context, c client.Client, ns, name string) *snapshot {
	t.Helper()
	s := &snapshot{keys: map[string]storedKey{}}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s.ti); err != nil {
		t.Fatalf("get TenantIdentity: %v", err)
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{
		identityv1alpha1.LabelTenantIdentity: name,
		identityv1alpha1.LabelComponent:      identityv1alpha1.ComponentKey,
	}); err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets.Items {
		rec, err := recordFromSecret(&sec)
		if err != nil {
			t.Fatalf("key Secret %s: %v", sec.Name, err)
		}
		if _, dup := s.keys[rec.KID]; dup {
			t.Errorf("two key Secrets hold kid %s", rec.KID)
		}
		s.keys[rec.KID] = storedKey{rec: rec, secret: sec}
	}
	var signing corev1.Secret
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: identityv1alpha1.SigningSecretName(name)}, &signing); {
	case err == nil:
		s.signing = &signing
	case !apierrors.IsNotFound(err):
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: identityv1alpha1.JWKSConfigMapName(name)}, &cm); {
	case err == nil:
		s.cm = &cm
	case !apierrors.IsNotFound(err):
		t.Fatal(err)
	}
	return s
}

func (s *snapshot) signingKID() string {
	if s.signing == nil {
		return ""
	}
	return string(s.signing.Data[dataKID])
}

// published are the kids of the ConfigMap, sorted.
func (s *snapshot) published() []string {
	kids := kidsOfConfigMap(s.cm)
	slices.Sort(kids)
	return kids
}

func (s *snapshot) publishes(kid string) bool { return slices.Contains(s.published(), kid) }

// inState lists the kids recorded in a state, sorted.
func (s *snapshot) inState(state rotation.State) []string {
	var out []string
	for kid, k := range s.keys {
		if k.rec.State == state {
			out = append(out, kid)
		}
	}
	slices.Sort(out)
	return out
}

// only returns the one kid recorded in state, failing otherwise.
func (s *snapshot) only(t testing.TB, state rotation.State) string {
	t.Helper()
	kids := s.inState(state)
	if len(kids) != 1 {
		t.Fatalf("keys recorded %s: %q, want exactly one", state, kids)
	}
	return kids[0]
}

func (s *snapshot) kids() []string {
	var out []string
	for kid := range s.keys {
		out = append(out, kid)
	}
	slices.Sort(out)
	return out
}

func (s *snapshot) condition(typ string) *metav1.Condition {
	return meta.FindStatusCondition(s.ti.Status.Conditions, typ)
}

func (s *snapshot) statusKey(kid string) *identityv1alpha1.KeyStatus {
	for i := range s.ti.Status.Keys {
		if s.ti.Status.Keys[i].KID == kid {
			return &s.ti.Status.Keys[i]
		}
	}
	return nil
}

// resourceVersions of every stored object, to show nothing was written.
func (s *snapshot) resourceVersions() map[string]string {
	rv := map[string]string{}
	for kid, k := range s.keys {
		rv["key "+kid] = k.secret.ResourceVersion
	}
	if s.signing != nil {
		rv["signing"] = s.signing.ResourceVersion
	}
	if s.cm != nil {
		rv["configmap"] = s.cm.ResourceVersion
	}
	return rv
}

func expectCondition(t testing.TB, s *snapshot, typ string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	c := s.condition(typ)
	switch {
	case c == nil:
		t.Errorf("no %s condition; conditions: %+v", typ, s.ti.Status.Conditions)
	case c.Status != status || c.Reason != reason:
		t.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	case c.ObservedGeneration != s.ti.Generation:
		t.Errorf("%s observedGeneration %d, want %d", typ, c.ObservedGeneration, s.ti.Generation)
	}
	return c
}

// ---- invariants ----

type observation int

const (
	afterReconcile observation = iota // a reconcile completed
	afterFault                        // a reconcile stopped at an injected failure
	byHand                            // the test edited something: not the controller's doing
)

// invariants checks the lifecycle invariants with rotationtest's checker
// on every snapshot the harness takes, and what a completed reconcile must
// leave in this controller's objects: exactly one key recorded Active,
// signing, published and in the status.
type invariants struct {
	t                   testing.TB
	prePublish, overlap time.Duration // overlap includes the signing propagation, if any
	check               *rotationtest.Checker
}

func newInvariants(t testing.TB, prePublish, overlap time.Duration) *invariants {
	return &invariants{t: t, prePublish: prePublish, overlap: overlap, check: rotationtest.New(t0)}
}

var checkerKinds = map[observation]rotationtest.Kind{
	afterReconcile: rotationtest.Reconciled,
	afterFault:     rotationtest.Partial,
	byHand:         rotationtest.ByHand, // a key Secret gone then was deleted by hand
}

func (v *invariants) observe(now time.Time, s *snapshot, kind observation) {
	t := v.t
	t.Helper()
	at := fmt.Sprintf("t0+%s", now.Sub(t0))
	o := rotationtest.Observation{
		At: now, Kind: checkerKinds[kind], PrePublish: v.prePublish, Overlap: v.overlap,
		Suspended: s.ti.Spec.Suspend, Revoked: s.ti.Spec.RevokedKeyIDs,
		Published: kidsOfConfigMap(s.cm), Signing: s.signingKID(),
	}
	for _, k := range s.keys {
		o.Records = append(o.Records, k.rec)
	}
	for _, violation := range v.check.Observe(o) {
		t.Errorf("%s: %s", at, violation)
	}
	signing := s.signingKID()
	published := map[string]bool{}
	for _, kid := range o.Published {
		published[kid] = true
	}

	if kind != afterReconcile {
		return
	}
	actives := s.inState(rotation.Active)
	ready := s.condition(identityv1alpha1.ConditionReady)
	if ready == nil || ready.Reason != identityv1alpha1.ReasonKeysPublished {
		return // suspended or refused: checked by the tests themselves
	}
	if len(actives) != 1 || actives[0] != signing || s.ti.Status.ActiveKeyID != signing || !published[signing] {
		t.Errorf("%s: Active records %q, signing key %q, status.activeKeyID %q, published %q: want one key in all four",
			at, actives, signing, s.ti.Status.ActiveKeyID, s.published())
	}
	checkConfigMapEntries(t, at, s.cm)
	var statusKIDs []string
	for _, ks := range s.ti.Status.Keys {
		statusKIDs = append(statusKIDs, ks.KID)
	}
	slices.Sort(statusKIDs)
	if !slices.Equal(statusKIDs, s.published()) {
		t.Errorf("%s: status lists keys %q, the ConfigMap %q", at, statusKIDs, s.published())
	}
	for kid := range s.keys {
		if !published[kid] {
			t.Errorf("%s: stored key %s is not published", at, kid)
		}
	}
}

// checkConfigMapEntries: every entry is a public JWK under its own kid, and
// the key-order annotation lists exactly the entries.
func checkConfigMapEntries(t testing.TB, at string, cm *corev1.ConfigMap) {
	t.Helper()
	if cm == nil {
		t.Errorf("%s: no JWKS ConfigMap", at)
		return
	}
	for k, v := range cm.Data {
		kid, ok := strings.CutSuffix(k, ".json")
		if !ok {
			t.Errorf("%s: ConfigMap entry %q is not <kid>.json", at, k)
			continue
		}
		if err := keys.CheckPublic([]byte(v)); err != nil {
			t.Errorf("%s: ConfigMap entry %s: %v", at, k, err)
		}
		if !strings.Contains(v, `"kid":"`+kid+`"`) {
			t.Errorf("%s: ConfigMap entry %s does not carry kid %s: %s", at, k, kid, v)
		}
	}
	order := strings.Split(cm.Annotations[identityv1alpha1.AnnotationKeyOrder], ",")
	if len(cm.Data) == 0 {
		order = nil
	}
	slices.Sort(order)
	kids := kidsOfConfigMap(cm)
	slices.Sort(kids)
	if !slices.Equal(order, kids) {
		t.Errorf("%s: key-order %q does not list the entries %q", at, cm.Annotations[identityv1alpha1.AnnotationKeyOrder], kids)
	}
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func reqFor(ns, name string) ctrl.Request { return ctrl.Request{NamespacedName: keyOf(ns, name)} }
