package jwks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr/funcr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/tenancy"
	"github.com/signet-dev/signet/internal/testenv"
)

// The envtest suite runs the server against a real kube-apiserver and etcd
// (KUBEBUILDER_ASSETS, from hack/envtest-assets.sh) and plays the
// controller itself: it creates TenantIdentities, writes their Published
// condition through the status subresource and writes the JWKS ConfigMaps.
//
// One Environment and one manager serve the whole suite. They start on the
// first test that needs them (so `go test -bench` does not run an
// apiserver beside the benchmarks) and TestMain stops them.

// propagation bounds how long a change may take to be served: watch
// delivery plus one rebuild. It is a deadline for polling, not a sleep.
const propagation = 30 * time.Second

type suite struct {
	env    *envtest.Environment
	scheme *runtime.Scheme
	client client.Client
	server *Server
	url    string // http://<listener>
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

var (
	suiteOnce sync.Once
	theSuite  *suite
	suiteErr  error
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theSuite != nil {
		theSuite.stop()
	}
	os.Exit(code)
}

// envSuite returns the running suite, starting it on first use.
func envSuite(t *testing.T) *suite {
	t.Helper()
	// A missing control plane is a failure, as in every package, except in
	// -short mode (make unit), where the envtest tests skip.
	if testing.Short() {
		t.Skip(testenv.SkipMessage)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or with KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	suiteOnce.Do(func() { theSuite, suiteErr = startSuite() })
	if suiteErr != nil {
		t.Fatalf("envtest: %v", suiteErr)
	}
	return theSuite
}

func startSuite() (*suite, error) {
	s := &suite{logs: &logBuffer{}}
	ctrl.SetLogger(funcr.New(func(prefix, args string) {
		s.logs.mu.Lock()
		fmt.Fprintln(&s.logs.b, prefix, args)
		s.logs.mu.Unlock()
	}, funcr.Options{Verbosity: 1}))
	s.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := s.env.Start()
	if err != nil {
		return nil, err
	}
	s.scheme = runtime.NewScheme()
	if err := corev1.AddToScheme(s.scheme); err != nil {
		return nil, err
	}
	if err := rbacv1.AddToScheme(s.scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s.scheme); err != nil {
		return nil, err
	}
	if s.client, err = client.New(cfg, client.Options{Scheme: s.scheme}); err != nil {
		return nil, err
	}
	if err := s.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}); err != nil {
		return nil, err
	}
	mgr, srv, err := s.newManager(cfg, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.server = srv
	s.url = "http://" + srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- mgr.Start(ctx) }()
	return s, nil
}

// newManager is a manager configured as cmd/manager configures it for the
// server: ConfigMaps cached by the jwks label only.
func (s *suite) newManager(cfg *rest.Config, bind string) (manager.Manager, *Server, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 s.scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheopts.Options(cacheopts.Config{SystemNamespace: systemNamespace, ServerOnly: true}),
	})
	if err != nil {
		return nil, nil, err
	}
	srv, err := Add(mgr, Options{
		BindAddress: bind, PublicBaseURL: "https://jwks.example", MaxCacheAge: 5 * time.Minute,
		SystemNamespace: systemNamespace, OrgBinding: true,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("jwks", srv.ReadyCheck()); err != nil {
		return nil, nil, err
	}
	return mgr, srv, nil
}

func (s *suite) stop() {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			fmt.Fprintln(os.Stderr, "jwks test manager stopped with:", err)
		}
	case <-time.After(30 * time.Second):
	}
	_ = s.env.Stop()
}

// namespace creates a fresh namespace for one test.
func (s *suite) namespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsCounter.Add(1))
	if err := s.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// systemNamespace is signet's own namespace in the suite, where claim
// records live.
const systemNamespace = "signet-system"

// bind labels namespace ns with org, as the cluster admin does.
func (s *suite) bind(t *testing.T, ns, org string) {
	t.Helper()
	var n corev1.Namespace
	if err := s.client.Get(context.Background(), client.ObjectKey{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[v1alpha1.LabelOrg] = org
	if err := s.client.Patch(context.Background(), &n, patch); err != nil {
		t.Fatal(err)
	}
}

// record writes signet's claim record naming ti the owner of its org/site,
// as the controller does.
func (s *suite) record(t *testing.T, ti *v1alpha1.TenantIdentity) {
	t.Helper()
	want := tenancy.ClaimRecord(systemNamespace, ti.Spec.Org, ti.Spec.SiteID, tenancy.Of(ti))
	var cur corev1.ConfigMap
	switch err := s.client.Get(context.Background(), client.ObjectKeyFromObject(want), &cur); {
	case apierrors.IsNotFound(err):
		s.create(t, want)
	case err != nil:
		t.Fatal(err)
	default:
		cur.Labels, cur.Data = want.Labels, want.Data
		if err := s.client.Update(context.Background(), &cur); err != nil {
			t.Fatal(err)
		}
	}
}

// tenant creates a TenantIdentity in a namespace bound to its org,
// Published=True unless told otherwise.
func (s *suite) tenant(t *testing.T, ns, name, org, site string, status metav1.ConditionStatus) *v1alpha1.TenantIdentity {
	t.Helper()
	s.bind(t, ns, org)
	return s.unboundTenant(t, ns, name, org, site, status)
}

// unboundTenant creates a TenantIdentity without binding its namespace.
func (s *suite) unboundTenant(t *testing.T, ns, name, org, site string, status metav1.ConditionStatus) *v1alpha1.TenantIdentity {
	t.Helper()
	ctx := context.Background()
	ti := &v1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TenantIdentitySpec{Org: org, SiteID: site},
	}
	if err := s.client.Create(ctx, ti); err != nil {
		t.Fatalf("create TenantIdentity: %v", err)
	}
	if status != "" {
		s.setPublished(t, ti, status)
	}
	return ti
}

// setPublished writes the Published condition as the controller does.
func (s *suite) setPublished(t *testing.T, ti *v1alpha1.TenantIdentity, status metav1.ConditionStatus) {
	t.Helper()
	reason := v1alpha1.ReasonKeysPublished
	if status != metav1.ConditionTrue {
		reason = v1alpha1.ReasonConflict
	}
	meta.SetStatusCondition(&ti.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionPublished, Status: status, Reason: reason, Message: "set by the jwks test",
	})
	if err := s.client.Status().Update(context.Background(), ti); err != nil {
		t.Fatalf("update status: %v", err)
	}
}

// configMap writes the JWKS ConfigMap of ti as the controller does.
func (s *suite) configMap(t *testing.T, ti *v1alpha1.TenantIdentity, ks ...*testKey) *corev1.ConfigMap {
	t.Helper()
	cm := jwksConfigMap(ti, "1", ks...)
	cm.OwnerReferences = nil
	if err := controllerutil.SetControllerReference(ti, cm, s.scheme); err != nil {
		t.Fatal(err)
	}
	s.create(t, cm)
	return cm
}

func (s *suite) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := s.client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// fetch GETs a document over the real listener.
func (s *suite) fetch(t *testing.T, org, site string, rt route, header ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+docPath(org, site, rt), nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// kidsOf returns "<status>" or the comma-separated kids of a key set.
func kidsOf(t *testing.T, code int, body string) string {
	t.Helper()
	if code != http.StatusOK {
		return fmt.Sprint(code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("served key set: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return strings.Join(kids, ",")
}

// waitServed polls until org/site serves want ("<kids>" or a status).
func (s *suite) waitServed(t *testing.T, org, site, want string) {
	t.Helper()
	eventually(t, propagation, func() string {
		code, _, body := s.fetch(t, org, site, routeJWKS)
		if got := kidsOf(t, code, body); got != want {
			return fmt.Sprintf("%s/%s serves %q, want %q", org, site, got, want)
		}
		return ""
	})
}

// settle waits until the server has seen every object created so far: it
// creates a tenant (TenantIdentity, then ConfigMap) and waits for it to be
// served. Each informer delivers its events in order, so once the new
// TenantIdentity and ConfigMap are served, the earlier objects were
// delivered and their org/sites rebuilt. Negative assertions ("nothing is
// served from this") come after a settle, so they cannot pass merely by
// looking too early.
func (s *suite) settle(t *testing.T) {
	t.Helper()
	ns := s.namespace(t, "settle")
	org := fmt.Sprintf("settle%d", nsCounter.Add(1))
	site := uuid.NewString()
	ti := s.tenant(t, ns, "sentinel", org, site, metav1.ConditionTrue)
	k := genKey(t, "ES256", 5)
	s.configMap(t, ti, k)
	s.waitServed(t, org, site, k.KID)
}

// uniqueOrg is a fresh org per test, so tests never share an org/site.
func uniqueOrg(prefix string) string { return fmt.Sprintf("%s%d", prefix, nsCounter.Add(1)) }

func TestEnvServesDocuments(t *testing.T) {
	s := envSuite(t)
	ns := s.namespace(t, "serve")
	org, site := uniqueOrg("acme"), uuid.NewString()
	active, next := genKey(t, "ES256", 0), genKey(t, "RS256", 0)
	ti := s.tenant(t, ns, "acme", org, site, metav1.ConditionTrue)
	cm := s.configMap(t, ti, active, next)
	s.waitServed(t, org, site, active.KID+","+next.KID)

	for rt := range numDocs {
		code, h, body := s.fetch(t, org, site, rt)
		if code != http.StatusOK || h.Get("Etag") == "" || h.Get("Cache-Control") != "public, max-age=300" ||
			h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %v", routeNames[rt], code, h)
		}
		if code, _, _ := s.fetch(t, org, site, rt, "If-None-Match", h.Get("Etag")); code != http.StatusNotModified {
			t.Errorf("%s: If-None-Match answered %d", routeNames[rt], code)
		}
		if rt == routeDiscovery {
			var d discovery
			_ = json.Unmarshal([]byte(body), &d)
			if d.Issuer != "https://jwks.example"+v1alpha1.BasePath(org, site) || strings.Join(d.Algorithms, ",") != "ES256,RS256" {
				t.Errorf("discovery: %s", body)
			}
		}
	}
	verifyJWS(t, s, org, site, active)

	// A rotation: the Next key became Active, a new Next appeared.
	_, h, _ := s.fetch(t, org, site, routeJWKS)
	newer := genKey(t, "ES256", 1)
	setKeys(cm, next, newer, active)
	cm.Annotations[v1alpha1.AnnotationSequence] = "2"
	if err := s.client.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	s.waitServed(t, org, site, next.KID+","+newer.KID+","+active.KID)
	if _, h2, _ := s.fetch(t, org, site, routeJWKS); h2.Get("Etag") == h.Get("Etag") {
		t.Errorf("ETag unchanged by a key change")
	}
	_, _, body := s.fetch(t, org, site, routeSPIFFE)
	if !strings.Contains(body, `"spiffe_sequence":2`) {
		t.Errorf("spiffe_sequence not updated: %s", body)
	}
	if err := s.server.ReadyCheck()(nil); err != nil {
		t.Errorf("ReadyCheck: %v", err)
	}
}

// verifyJWS signs with k and verifies with go-jose against the served set.
func verifyJWS(t *testing.T, s *suite, org, site string, k *testKey) {
	t.Helper()
	compact, alg := signCompact(t, k, `{"sub":"workload"}`)
	_, _, body := s.fetch(t, org, site, routeJWKS)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatal(err)
	}
	found := set.Key(parsed.Signatures[0].Header.KeyID)
	if len(found) != 1 {
		t.Fatalf("kid %s not served", k.KID)
	}
	if _, err := parsed.Verify(found[0]); err != nil {
		t.Errorf("verify against the served JWKS: %v", err)
	}
}

// TestEnvForgedConfigMaps: ConfigMaps that carry the jwks labels of an
// org/site but are not the Published claim winner's publish nothing.
func TestEnvForgedConfigMaps(t *testing.T) {
	s := envSuite(t)
	forged := genKey(t, "ES256", 3)
	real := genKey(t, "ES256", 0)

	// forgedCM is a ConfigMap in ns named name-jwks with the labels of
	// org/site and the forged key; mutate sets its owner.
	forgedCM := func(ns, name, org, site string, mutate func(*corev1.ConfigMap)) *corev1.ConfigMap {
		cm := jwksConfigMap(newTI(ns, name, org, site, epoch, ""), "9", forged)
		cm.OwnerReferences = nil
		if mutate != nil {
			mutate(cm)
		}
		return cm
	}
	// ownedBy sets a controller reference to ti by hand: an attacker is not
	// held to controllerutil's same-namespace check, and neither is the API.
	ownedBy := func(ti *v1alpha1.TenantIdentity) func(*corev1.ConfigMap) {
		return func(cm *corev1.ConfigMap) {
			cm.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "TenantIdentity",
				Name: ti.Name, UID: ti.UID, Controller: ptr.To(true),
			}}
		}
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, org, site string)
		want  string // served for org/site after settling
	}{
		{"no owner, no TenantIdentity", func(t *testing.T, org, site string) {
			s.create(t, forgedCM(s.namespace(t, "forged"), "x", org, site, nil))
		}, "404"},
		{"no owner, beside the Published TenantIdentity it names", func(t *testing.T, org, site string) {
			ns := s.namespace(t, "forged")
			s.tenant(t, ns, "x", org, site, metav1.ConditionTrue)
			s.create(t, forgedCM(ns, "x", org, site, nil))
		}, "404"},
		{"wrong owner UID", func(t *testing.T, org, site string) {
			ns := s.namespace(t, "forged")
			ti := s.tenant(t, ns, "x", org, site, metav1.ConditionTrue)
			s.create(t, forgedCM(ns, "x", org, site, func(cm *corev1.ConfigMap) {
				ownedBy(ti)(cm)
				cm.OwnerReferences[0].UID = "00000000-0000-0000-0000-000000000000"
			}))
		}, "404"},
		{"owner TenantIdentity in another namespace", func(t *testing.T, org, site string) {
			victim := s.tenant(t, s.namespace(t, "victim"), "x", org, site, metav1.ConditionTrue)
			s.create(t, forgedCM(s.namespace(t, "forged"), "x", org, site, ownedBy(victim)))
		}, "404"},
		{"owner in another namespace while the owner serves its own", func(t *testing.T, org, site string) {
			victim := s.tenant(t, s.namespace(t, "victim"), "x", org, site, metav1.ConditionTrue)
			s.configMap(t, victim, real)
			s.create(t, forgedCM(s.namespace(t, "forged"), "x", org, site, ownedBy(victim)))
		}, "real"},
		{"mismatched org label", func(t *testing.T, org, site string) {
			ns := s.namespace(t, "forged")
			ti := s.tenant(t, ns, "x", org, site, metav1.ConditionTrue)
			s.create(t, forgedCM(ns, "x", "other"+org, site, ownedBy(ti)))
		}, "404"},
		{"younger duplicate claimant", func(t *testing.T, org, site string) {
			// Namespaces ordered so that a creation in the same second
			// (ties break by namespace) still makes the first one win.
			older := s.tenant(t, s.namespace(t, "dup-a"), "x", org, site, metav1.ConditionTrue)
			s.configMap(t, older, real)
			younger := s.tenant(t, s.namespace(t, "dup-b"), "x", org, site, metav1.ConditionTrue)
			s.configMap(t, younger, forged)
		}, "real"},
		// An older claim in a namespace not bound to the org (a squatter)
		// does not block the rightful one, whatever its status says.
		{"older claimant unbound, its status forged Published: the younger bound one serves", func(t *testing.T, org, site string) {
			older := s.unboundTenant(t, s.namespace(t, "dup-a"), "x", org, site, metav1.ConditionTrue)
			s.configMap(t, older, forged)
			younger := s.tenant(t, s.namespace(t, "dup-b"), "x", org, site, metav1.ConditionTrue)
			s.configMap(t, younger, real)
		}, "real"},
		// Forged publication: a tenant whose namespace is not bound patches
		// its own status to Published=True and writes a ConfigMap it
		// controls for a free org/site of another org. A server-only
		// replica (this suite's) re-derives the binding: nothing is served.
		{"unbound claimant, status forged Published, a free org/site of another org", func(t *testing.T, org, site string) {
			ns := s.namespace(t, "forged")
			s.bind(t, ns, "attacker"+org)
			squatter := s.unboundTenant(t, ns, "x", org, site, metav1.ConditionTrue)
			s.configMap(t, squatter, forged)
		}, "404"},
		{"unbound claimant, status forged Published, a record naming it forged too (not in signet's namespace)", func(t *testing.T, org, site string) {
			ns := s.namespace(t, "forged")
			squatter := s.unboundTenant(t, ns, "x", org, site, metav1.ConditionTrue)
			s.configMap(t, squatter, forged)
			rec := tenancy.ClaimRecord(ns, org, site, tenancy.Of(squatter))
			s.create(t, rec)
		}, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, site := uniqueOrg("forged"), uuid.NewString()
			tt.setup(t, org, site)
			s.settle(t)
			want := tt.want
			if want == "real" {
				want = real.KID
			}
			for _, o := range []string{org, "other" + org} {
				for rt := range numDocs {
					code, _, body := s.fetch(t, o, site, rt)
					if strings.Contains(body, forged.KID) {
						t.Errorf("%s %s serves the forged key", o, routeNames[rt])
					}
					if rt == routeJWKS && o == org {
						if got := kidsOf(t, code, body); got != want {
							t.Errorf("serves %q, want %q", got, want)
						}
					}
				}
			}
		})
	}
}

// TestEnvPrivateKey: a private JWK in one ConfigMap makes that org/site
// answer 502; no response and no log line carries the private value; the
// other tenant keeps serving.
func TestEnvPrivateKey(t *testing.T) {
	s := envSuite(t)
	org, siteGood, siteBad := uniqueOrg("priv"), uuid.NewString(), uuid.NewString()
	k, leaked := genKey(t, "ES256", 0), genKey(t, "ES256", 4)
	ns := s.namespace(t, "priv")
	good := s.tenant(t, ns, "good", org, siteGood, metav1.ConditionTrue)
	s.configMap(t, good, k)
	bad := s.tenant(t, ns, "bad", org, siteBad, metav1.ConditionTrue)
	cm := s.configMap(t, bad, k)
	s.waitServed(t, org, siteBad, k.KID)

	cm.Data[leaked.KID+".json"] = leaked.private // the injection
	if err := s.client.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	s.waitServed(t, org, siteBad, "502")
	for rt := range numDocs {
		code, _, body := s.fetch(t, org, siteBad, rt)
		if code != http.StatusBadGateway || strings.Contains(body, leaked.d) {
			t.Errorf("%s: %d %s", routeNames[rt], code, body)
		}
		if code, _, body := s.fetch(t, org, siteGood, rt); code != http.StatusOK || strings.Contains(body, leaked.d) {
			t.Errorf("healthy tenant %s: %d", routeNames[rt], code)
		}
	}
	logs := s.logs.String()
	if strings.Contains(logs, leaked.d) {
		t.Errorf("the private value reached the log")
	}
	if !strings.Contains(logs, "Refusing the JWKS ConfigMap") {
		t.Errorf("the refusal was not logged")
	}
}

func TestEnvPublishedFalse(t *testing.T) {
	s := envSuite(t)
	org, site := uniqueOrg("unpub"), uuid.NewString()
	k := genKey(t, "ES256", 0)
	ti := s.tenant(t, s.namespace(t, "unpub"), "x", org, site, metav1.ConditionTrue)
	s.configMap(t, ti, k)
	s.waitServed(t, org, site, k.KID)
	s.setPublished(t, ti, metav1.ConditionFalse)
	s.waitServed(t, org, site, "404")
	s.setPublished(t, ti, metav1.ConditionTrue)
	s.waitServed(t, org, site, k.KID)
	if err := s.client.Delete(context.Background(), ti); err != nil {
		t.Fatal(err)
	}
	s.waitServed(t, org, site, "404") // no garbage collector here: the ConfigMap stays, unowned
}

// serverRules parses the RBAC markers of doc.go into the rules of a
// ClusterRole, so the test grants exactly what controller-gen will.
func serverRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	f, err := os.Open("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []rbacv1.PolicyRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		spec, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "// +kubebuilder:rbac:")
		if !ok {
			continue
		}
		var r rbacv1.PolicyRule
		for field := range strings.SplitSeq(spec, ",") {
			name, value, _ := strings.Cut(field, "=")
			values := strings.Split(strings.Trim(value, `"`), ";")
			switch name {
			case "groups":
				r.APIGroups = values
			case "resources":
				r.Resources = values
			case "verbs":
				r.Verbs = values
			default:
				t.Fatalf("unexpected marker field %q", name)
			}
		}
		rules = append(rules, r)
	}
	if len(rules) != 3 {
		t.Fatalf("found %d RBAC markers in doc.go, want 3", len(rules))
	}
	return rules
}

// TestEnvServerOnlyRBAC runs a second manager as a user granted only the
// markers' rules: it serves the documents, and that user cannot list
// Secrets.
func TestEnvServerOnlyRBAC(t *testing.T) {
	s := envSuite(t)
	ctx := context.Background()
	user, err := s.env.AddUser(envtest.User{Name: "signet-jwks-only"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "signet-jwks-server"}, Rules: serverRules(t)}
	s.create(t, role)
	s.create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "signet-jwks-server"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "signet-jwks-only"}},
	})

	userClient, err := client.New(user.Config(), client.Options{Scheme: s.scheme})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, propagation, func() string { // RBAC is effective once its informers saw the binding
		if err := userClient.List(ctx, &v1alpha1.TenantIdentityList{}); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := userClient.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("list Secrets as the server's user: %v, want Forbidden", err)
	}
	if err := userClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: "any"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("get a Secret as the server's user: %v, want Forbidden", err)
	}

	mgr, srv, err := s.newManager(user.Config(), "0")
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second manager: %v", err)
		}
	}()
	if srv.Addr() != nil {
		t.Errorf("BindAddress 0 opened a listener")
	}

	org, site := uniqueOrg("rbac"), uuid.NewString()
	k := genKey(t, "ES256", 0)
	ti := s.tenant(t, s.namespace(t, "rbac"), "x", org, site, metav1.ConditionTrue)
	s.record(t, ti) // read through the same rules
	s.configMap(t, ti, k)
	eventually(t, propagation, func() string {
		rec := get(srv, http.MethodGet, docPath(org, site, routeJWKS))
		if got := kidsOf(t, rec.Code, rec.Body.String()); got != k.KID {
			return "server with the markers' RBAC serves " + got
		}
		return ""
	})
}
