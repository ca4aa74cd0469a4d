package jwks

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// countingReader counts List calls: one per org/site resolved.
type countingReader struct {
	client.Reader
	lists atomic.Int64
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists.Add(1)
	return r.Reader.List(ctx, list, opts...)
}

// logBuffer captures everything the server logs.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// fakeServer is a Server reading objs through a fake client that has the
// tenancy.OrgSiteField, as the manager's cache has once Add registered it.
//
// Without a Namespace among objs, every TenantIdentity's namespace is
// bound to its org, as the admin would have done.
func fakeServer(t testing.TB, objs ...client.Object) (*Server, *countingReader, *logBuffer) {
	t.Helper()
	if !slices.ContainsFunc(objs, func(o client.Object) bool { _, ok := o.(*corev1.Namespace); return ok }) {
		bound := map[string]bool{}
		for _, o := range slices.Clone(objs) {
			if ti, ok := o.(*v1alpha1.TenantIdentity); ok && !bound[ti.Namespace] {
				bound[ti.Namespace] = true
				objs = append(objs, boundNamespace(ti.Namespace, ti.Spec.Org))
			}
		}
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithIndex(&v1alpha1.TenantIdentity{}, tenancy.OrgSiteField, tenancy.OrgSiteValues).
		WithObjects(objs...).Build()
	reader := &countingReader{Reader: c}
	logs := &logBuffer{}
	log := funcr.New(func(prefix, args string) {
		logs.mu.Lock()
		fmt.Fprintln(&logs.b, prefix, args)
		logs.mu.Unlock()
	}, funcr.Options{Verbosity: 10})
	s, err := newServer(reader, trustOptions, log)
	if err != nil {
		t.Fatal(err)
	}
	s.synced.Store(true)
	return s, reader, logs
}

// servedKIDs is what org/site k serves: its kids, or the status code.
func servedKIDs(t *testing.T, s *Server, org, site string) string {
	t.Helper()
	rec := get(s, http.MethodGet, docPath(org, site, routeJWKS))
	if rec.Code != http.StatusOK {
		return fmt.Sprint(rec.Code)
	}
	set := decode[keySet](t, rec.Body.Bytes())
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k["kid"].(string))
	}
	return strings.Join(kids, ",")
}

// trustOptions are those of the operator: org binding on, claim records in
// signet-system.
var trustOptions = Options{PublicBaseURL: "https://jwks.example", MaxCacheAge: time.Minute, OrgBinding: true, SystemNamespace: "signet-system"}

// boundNamespace is a namespace the cluster admin bound to org.
func boundNamespace(name, org string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelOrg: org}}}
}

// TestResolveTrust plays the controller and an attacker with the fake
// client: only the ConfigMap of the org/site's owner, as the server
// re-derives it (bound namespace, claim record, oldest claim), controlled by
// it, with its org/site, is ever served; a status may withhold, never grant.
func TestResolveTrust(t *testing.T) {
	good, forged, extra := genKey(t, "ES256", 0), genKey(t, "ES256", 1), genKey(t, "ES256", 2)
	owner := newTI("tenant-acme", "acme", "acme", siteA, epoch, metav1.ConditionTrue)
	ownerCM := jwksConfigMap(owner, "1", good)
	acmeNS, attackerNS := boundNamespace("tenant-acme", "acme"), boundNamespace("attacker", "acme")
	unboundNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "squatter"}}

	// forgedCM is an attacker's ConfigMap in namespace ns with the jwks labels
	// of acme/siteA, shaped by mutate.
	forgedCM := func(ns, name string, mutate func(*corev1.ConfigMap)) *corev1.ConfigMap {
		ti := newTI(ns, name, "acme", siteA, epoch, "")
		cm := jwksConfigMap(ti, "9", forged)
		if mutate != nil {
			mutate(cm)
		}
		return cm
	}
	attackerTI := newTI("attacker", "acme", "acme", siteA, epoch.Add(time.Hour), metav1.ConditionTrue)
	attackerCM := jwksConfigMap(attackerTI, "9", forged)
	// squatterTI claims acme/siteA first, from a namespace not bound to acme,
	// its status patched Published=True.
	squatterTI := newTI("squatter", "acme", "acme", siteA, epoch.Add(-time.Hour), metav1.ConditionTrue)
	squatterCM := jwksConfigMap(squatterTI, "9", forged)
	record := func(ti *v1alpha1.TenantIdentity) *corev1.ConfigMap {
		return tenancy.ClaimRecord("signet-system", "acme", siteA, tenancy.Of(ti))
	}

	tests := []struct {
		name string
		objs []client.Object
		want string // kids served for acme/siteA, or the status
	}{
		{"controller's ConfigMap", []client.Object{acmeNS, owner, ownerCM}, good.KID},
		{"no ConfigMap yet", []client.Object{acmeNS, owner}, "404"},
		{"no TenantIdentity", []client.Object{acmeNS, ownerCM}, "404"},
		{"Published=False withholds", []client.Object{acmeNS, newTI("tenant-acme", "acme", "acme", siteA, epoch, metav1.ConditionFalse), ownerCM}, "404"},
		{"no Published condition: the status grants nothing, nor does it withhold", []client.Object{acmeNS, newTI("tenant-acme", "acme", "acme", siteA, epoch, ""), ownerCM}, good.KID},
		{"namespace not bound to the org", []client.Object{boundNamespace("tenant-acme", "globex"), owner, ownerCM}, "404"},
		{"namespace gone", []client.Object{unboundNS, owner, ownerCM}, "404"},
		{"forged: no owner, no TenantIdentity", []client.Object{
			acmeNS, forgedCM("attacker", "acme", func(cm *corev1.ConfigMap) { cm.OwnerReferences = nil }),
		}, "404"},
		{"forged: no owner, beside a real TenantIdentity", []client.Object{
			acmeNS, owner, forgedCM("tenant-acme", "acme", func(cm *corev1.ConfigMap) { cm.OwnerReferences = nil }),
		}, "404"},
		{"forged: wrong owner UID", []client.Object{
			acmeNS, owner, forgedCM("tenant-acme", "acme", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].UID = "forged" }),
		}, "404"},
		{"forged: owner TenantIdentity in another namespace", []client.Object{
			acmeNS, owner, ownerCM,
			forgedCM("attacker", "acme", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].UID = owner.UID }),
		}, good.KID},
		{"forged: owner in another namespace, owner has no ConfigMap", []client.Object{
			acmeNS, owner, forgedCM("attacker", "acme", func(cm *corev1.ConfigMap) { cm.OwnerReferences[0].UID = owner.UID }),
		}, "404"},
		{"mismatched org label", []client.Object{
			acmeNS, owner, func() *corev1.ConfigMap {
				cm := jwksConfigMap(owner, "1", forged)
				cm.Labels[v1alpha1.LabelOrg] = "evil"
				return cm
			}(),
		}, "404"},
		{"younger duplicate claimant", []client.Object{acmeNS, attackerNS, owner, ownerCM, attackerTI, attackerCM}, good.KID},
		// The status can withhold only the TenantIdentity's own documents:
		// it does not hand the org/site to a rival.
		{"the owner's status withholds: no rival takes over", []client.Object{
			acmeNS, attackerNS, newTI("tenant-acme", "acme", "acme", siteA, epoch, metav1.ConditionFalse), ownerCM, attackerTI, attackerCM,
		}, "404"},
		// Forged publication: an older claim from an unbound namespace, its
		// status patched Published=True, does not serve, nor block the owner.
		{"older squatter, unbound, status forged", []client.Object{acmeNS, unboundNS, squatterTI, squatterCM, owner, ownerCM}, good.KID},
		{"squatter alone on a free org/site", []client.Object{unboundNS, squatterTI, squatterCM}, "404"},
		// Displacement: the claim record keeps the published owner, even
		// when an older claim becomes bound later.
		{"recorded owner stays though an older claim is bound now", []client.Object{
			acmeNS, boundNamespace("squatter", "acme"), squatterTI, squatterCM, owner, ownerCM, record(owner),
		}, good.KID},
		{"without the record the oldest bound claim owns it", []client.Object{
			acmeNS, boundNamespace("squatter", "acme"), squatterTI, squatterCM, owner, ownerCM,
		}, forged.KID},
		{"a record naming a deleted TenantIdentity: the oldest bound claim", []client.Object{
			acmeNS, attackerNS, attackerTI, attackerCM, record(owner),
		}, forged.KID},
		{"a record outside signet's namespace counts for nothing", []client.Object{
			acmeNS, boundNamespace("squatter", "acme"), squatterTI, squatterCM, owner, ownerCM,
			tenancy.ClaimRecord("tenant-acme", "acme", siteA, tenancy.Of(owner)),
		}, forged.KID},
		{"ConfigMap not named <ti>-jwks", []client.Object{
			acmeNS, owner, func() *corev1.ConfigMap {
				cm := jwksConfigMap(owner, "1", extra)
				cm.Name = "other"
				return cm
			}(),
		}, "404"},
	}
	for _, tt := range tests {
		// The watcher (reads through a cache) and Load (a snapshot) share
		// resolve: both must agree on every case.
		t.Run(tt.name+"/watch", func(t *testing.T) {
			s, _, _ := fakeServer(t, tt.objs...)
			s.queue.add(tenantKey{"acme", siteA})
			s.queue.add(tenantKey{"evil", siteA})
			s.rebuild(context.Background())
			checkServed(t, s, tt.want)
		})
		t.Run(tt.name+"/snapshot", func(t *testing.T) {
			s := testServer(t, trustOptions)
			var snap Snapshot
			for _, o := range tt.objs {
				switch o := o.(type) {
				case *v1alpha1.TenantIdentity:
					snap.TenantIdentities = append(snap.TenantIdentities, *o)
				case *corev1.ConfigMap:
					snap.ConfigMaps = append(snap.ConfigMaps, *o)
				case *corev1.Namespace:
					snap.Namespaces = append(snap.Namespaces, *o)
				}
			}
			s.Load(snap)
			checkServed(t, s, tt.want)
		})
	}
}

func checkServed(t *testing.T, s *Server, want string) {
	t.Helper()
	if got := servedKIDs(t, s, "acme", siteA); got != want {
		t.Errorf("acme served %q, want %q", got, want)
	}
	if got := servedKIDs(t, s, "evil", siteA); got != "404" {
		t.Errorf("evil served %q", got)
	}
}

func TestLoadReplaces(t *testing.T) {
	k := genKey(t, "ES256", 0)
	a := newTI("ns", "a", "acme", siteA, epoch, metav1.ConditionTrue)
	b := newTI("ns", "b", "acme", siteB, epoch, metav1.ConditionTrue)
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Errorf("Start without a manager must fail")
	}
	if n := s.Load(Snapshot{TenantIdentities: []v1alpha1.TenantIdentity{*a, *b}, ConfigMaps: []corev1.ConfigMap{*jwksConfigMap(a, "1", k), *jwksConfigMap(b, "1", k)}}); n != 2 {
		t.Fatalf("served %d", n)
	}
	if n := s.Load(Snapshot{TenantIdentities: []v1alpha1.TenantIdentity{*b}, ConfigMaps: []corev1.ConfigMap{*jwksConfigMap(b, "1", k)}}); n != 1 {
		t.Fatalf("served %d after removing one", n)
	}
	if got := servedKIDs(t, s, "acme", siteA); got != "404" {
		t.Errorf("a removed org/site still serves %q", got)
	}
}

// TestResolveBadKey: a private key in one ConfigMap makes that org/site
// answer 502, is logged without its value, and is counted; the other
// org/site keeps serving.
func TestResolveBadKey(t *testing.T) {
	k, leaked := genKey(t, "ES256", 0), genKey(t, "RS256", 1)
	good := newTI("ns-a", "a", "acme", siteA, epoch, metav1.ConditionTrue)
	bad := newTI("ns-b", "b", "acme", siteB, epoch, metav1.ConditionTrue)
	badCM := jwksConfigMap(bad, "1", k, leaked)
	badCM.Data[leaked.KID+".json"] = leaked.private
	s, _, logs := fakeServer(t, good, jwksConfigMap(good, "1", k), bad, badCM)

	before := testutilCounter(badDocuments)
	s.queue.add(tenantKey{"acme", siteA})
	s.queue.add(tenantKey{"acme", siteB})
	s.rebuild(context.Background())

	if got := servedKIDs(t, s, "acme", siteA); got != k.KID {
		t.Errorf("healthy org/site served %q", got)
	}
	for rt := range numDocs {
		rec := get(s, http.MethodGet, docPath("acme", siteB, rt))
		if rec.Code != http.StatusBadGateway || strings.Contains(rec.Body.String(), leaked.d) {
			t.Errorf("%s: %d %s", routeNames[rt], rec.Code, rec.Body)
		}
	}
	if got := testutilCounter(badDocuments) - before; got != 1 {
		t.Errorf("bad documents counted %v times, want 1", got)
	}
	out := logs.String()
	if !strings.Contains(out, leaked.KID) || !strings.Contains(out, "502") {
		t.Errorf("refusal not logged with its kid:\n%s", out)
	}
	for _, secret := range []string{leaked.d, leaked.private[:40]} {
		if strings.Contains(out, secret) {
			t.Errorf("the log carries private key material")
		}
	}
}

// TestRebuildIsIncremental: with many org/sites served, an event resolves
// only its own org/site.
func TestRebuildIsIncremental(t *testing.T) {
	k := genKey(t, "ES256", 0)
	var objs []client.Object
	const n = 200
	for i := range n {
		ti := newTI(fmt.Sprintf("ns-%d", i), "t", fmt.Sprintf("org-%d", i), siteA, epoch, metav1.ConditionTrue)
		objs = append(objs, ti, jwksConfigMap(ti, "1", k))
	}
	s, reader, _ := fakeServer(t, objs...)
	for i := range n {
		s.queue.add(tenantKey{fmt.Sprintf("org-%d", i), siteA})
	}
	s.rebuild(context.Background())
	if s.store.len() != n || reader.lists.Load() != n {
		t.Fatalf("initial build: %d entries, %d lists", s.store.len(), reader.lists.Load())
	}
	reader.lists.Store(0)
	s.queue.add(tenantKey{"org-7", siteA})
	s.queue.add(tenantKey{"org-7", siteA}) // coalesced
	s.rebuild(context.Background())
	if got := reader.lists.Load(); got != 1 {
		t.Errorf("one event resolved %d org/sites", got)
	}
}

func TestEventHandlerMarks(t *testing.T) {
	ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
	cm := jwksConfigMap(ti, "1")
	relabelled := cm.DeepCopy()
	relabelled.Labels[v1alpha1.LabelOrg] = "evil"
	plain := cm.DeepCopy()
	delete(plain.Labels, v1alpha1.LabelComponent)
	otherNS := newTI("elsewhere", "x", "other", siteA, epoch, metav1.ConditionTrue)
	record := tenancy.ClaimRecord("signet-system", "acme", siteA, tenancy.Of(ti))
	forgedRecord := tenancy.ClaimRecord("ns", "acme", siteA, tenancy.Of(ti))
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}
	tests := []struct {
		name    string
		scope   string
		binding bool
		event   func(h toolscache.ResourceEventHandler)
		want    []string
	}{
		{"claim record in signet's namespace", "", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(record, false) }, []string{"acme/" + siteA}},
		{"claim record elsewhere: no one's", "", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(forgedRecord, false) }, nil},
		{"namespace relabelled, binding on: its tenants", "", true, func(h toolscache.ResourceEventHandler) { h.OnUpdate(namespace, namespace) }, []string{"ns:ns"}},
		{"namespace relabelled, binding off: nothing", "", false, func(h toolscache.ResourceEventHandler) { h.OnUpdate(namespace, namespace) }, nil},
		{"TenantIdentity added", "", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(ti, false) }, []string{"acme/" + siteA}},
		{"ConfigMap relabelled: old and new org/site", "", false, func(h toolscache.ResourceEventHandler) { h.OnUpdate(cm, relabelled) },
			[]string{"acme/" + siteA, "evil/" + siteA}},
		{"ConfigMap deleted, tombstone", "", false, func(h toolscache.ResourceEventHandler) {
			h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/x-jwks", Obj: cm})
		}, []string{"acme/" + siteA}},
		{"ConfigMap without the jwks label", "", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(plain, false) }, nil},
		{"outside WatchNamespace", "ns", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(otherNS, false) }, nil},
		{"inside WatchNamespace", "ns", false, func(h toolscache.ResourceEventHandler) { h.OnAdd(ti, false) }, []string{"acme/" + siteA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, Options{WatchNamespace: tt.scope, SystemNamespace: "signet-system", OrgBinding: tt.binding})
			tt.event(s.eventHandler())
			var got []string
			keys, namespaces := s.queue.take()
			for k := range keys {
				got = append(got, k.String())
			}
			for ns := range namespaces {
				got = append(got, "ns:"+ns)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("marked %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStoreApplySkipsNoOps(t *testing.T) {
	var s store
	e, _ := buildEntry(input(genKey(t, "ES256", 0)))
	same, _ := buildEntry(input(genKey(t, "ES256", 0)))
	k := tenantKey{"acme", siteA}
	if changed, served := s.apply(map[tenantKey]*entry{k: e}); changed != 1 || served != 1 {
		t.Fatalf("apply: %d changed, %d served", changed, served)
	}
	gen := s.current.Load()
	if changed, _ := s.apply(map[tenantKey]*entry{k: same}); changed != 0 || s.current.Load() != gen {
		t.Errorf("an unchanged entry copied the store")
	}
	if _, served := s.apply(map[tenantKey]*entry{k: badEntry}); served != 0 || s.get(k) != badEntry {
		t.Errorf("bad entry: served %d", served)
	}
	if _, served := s.apply(map[tenantKey]*entry{k: nil}); served != 0 || s.get(k) != nil || s.len() != 0 {
		t.Errorf("removal failed")
	}
}
