// Package integration runs the operator's parts together in one process
// against a real kube-apiserver: the real controller and two real JWKS
// servers (one in the controller's manager, one server-only, as a
// --controllers=false replica), assembled as cmd/manager assembles them.
//
//   - hostile_test.go: a tenant with edit rights in its own namespace
//     (TenantIdentities and their status, ConfigMaps, Secrets), and nothing
//     elsewhere, tries to publish keys for an org/site it does not own, to
//     unpublish or displace another tenant's keys, to flood signet with keys
//     or junk, and to make failures go unseen, through clients bound by
//     real RBAC;
//   - shard_test.go: two instances split the tenants by --tenant-selector;
//   - fairness_test.go: one tenant's churn does not hold the others back.
package integration

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/controllers"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/testenv"
)

const (
	systemNamespace = "signet-system"
	publicBaseURL   = "https://signet.test"
	// deadline bounds every wait for the controller or a server: a
	// deadline for polling, never a duration asserted.
	deadline = time.Minute
)

var (
	env *testenv.Env
	// servers are the JWKS servers: the controller's replica and a
	// server-only one.
	servers []*jwks.Server
	nsSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	stop := func() {}
	testenv.MainWith(m, &env, func(e *testenv.Env) error {
		var err error
		if stop, err = setUp(e); err != nil {
			stop()
			return fmt.Errorf("integration: set up: %w", err)
		}
		return nil
	}, func() { stop() })
}

// setUp starts the two managers once the control plane runs.
func setUp(e *testenv.Env) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	stop = func() {
		cancel()
		for _, d := range dones {
			if err := <-d; err != nil {
				fmt.Fprintln(os.Stderr, "integration: manager:", err)
			}
		}
	}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}); err != nil {
		return stop, err
	}
	// The suite's controller leaves alone the tenants a test runs its own
	// controller for (shards, fairness).
	suite, err := labels.Parse("!" + ownManagerLabel)
	if err != nil {
		return stop, err
	}
	for _, o := range []replica{{controller: true, workers: 4, selector: suite}, {}} {
		mgr, srv, err := newManager(e.Config, o)
		if err != nil {
			return stop, err
		}
		servers = append(servers, srv)
		done := make(chan error, 1)
		dones = append(dones, done)
		go func() { done <- mgr.Start(ctx) }()
	}
	return stop, nil
}

// ownManagerLabel marks a TenantIdentity reconciled by a test's own
// controller, not the suite's.
const ownManagerLabel = "integration.signet.dev/manager"

// replica is how one manager is run.
type replica struct {
	controller     bool            // run the controller (else the server alone)
	workers        int             // --max-concurrent-reconciles
	selector       labels.Selector // --tenant-selector
	watchNamespace string          // --watch-namespace
	recorder       controllers.EventRecorder
	generate       func(alg string, rsaBits int, cert *keys.CertOptions) (*keys.Material, error)
}

// newManager assembles a replica as cmd/manager does: the trimmed cache,
// typed Secret reads live, the controller (when asked) and the JWKS server.
func newManager(cfg *rest.Config, o replica) (manager.Manager, *jwks.Server, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
		Cache: cacheopts.Options(cacheopts.Config{
			WatchNamespace: o.watchNamespace, SystemNamespace: systemNamespace, ServerOnly: !o.controller,
		}),
	})
	if err != nil {
		return nil, nil, err
	}
	if o.controller {
		r := &controllers.TenantIdentityReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{},
			Recorder: cmp.Or[controllers.EventRecorder](o.recorder, mgr.GetEventRecorder("signet")), PublicBaseURL: publicBaseURL, OrgBinding: true,
			SystemNamespace: systemNamespace, MaxConcurrentReconciles: o.workers, TenantSelector: o.selector, WatchNamespace: o.watchNamespace, Generate: o.generate,
		}
		if err := r.SetupWithManager(context.Background(), mgr); err != nil {
			return nil, nil, err
		}
	}
	srv, err := jwks.Add(mgr, jwks.Options{
		BindAddress: "0", PublicBaseURL: publicBaseURL, MaxCacheAge: time.Minute,
		WatchNamespace: o.watchNamespace, SystemNamespace: systemNamespace, OrgBinding: true,
	})
	return mgr, srv, err
}

// startManager runs a replica for one test, until it ends.
func startManager(t *testing.T, o replica) *jwks.Server {
	t.Helper()
	mgr, srv, err := newManager(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return srv
}

// tenantNamespace makes a namespace (bound to org unless org is ""), and a
// user with edit rights in it alone, status included, as a broad tenant
// role grants them. It returns the namespace and that user's client.
func tenantNamespace(t *testing.T, org string) (string, client.Client) {
	t.Helper()
	labels := map[string]string{}
	if org != "" {
		labels[identityv1alpha1.LabelOrg] = org
	}
	ns := env.Namespace(t, labels)
	user := fmt.Sprintf("tenant-%d", nsSeq.Add(1))
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-edit"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{rbacv1.VerbAll}},
			{APIGroups: []string{identityv1alpha1.GroupVersion.Group}, Resources: []string{"tenantidentities", "tenantidentities/status"}, Verbs: []string{rbacv1.VerbAll}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	u, err := env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(u.Config(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC is effective once the authorizer's informers saw the binding.
	eventually(t, "the tenant's RBAC", func() error {
		return c.List(ctx, &identityv1alpha1.TenantIdentityList{}, client.InNamespace(ns))
	})
	return ns, c
}

// eventually polls cond until it returns nil, failing the test after the
// deadline with its last error.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s: %v", what, deadline, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// served is what every JWKS server serves for org/site: the kids of
// jwks.json in order, or the HTTP status; an error when the servers
// disagree.
func served(org, site string) (string, error) {
	var first string
	for i, srv := range servers {
		got := fetch(srv, org, site, "/.well-known/jwks.json")
		if i == 0 {
			first = got
		} else if got != first {
			return "", fmt.Errorf("the servers disagree: %q and %q", first, got)
		}
	}
	return first, nil
}

func fetch(srv *jwks.Server, org, site, doc string) string {
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, identityv1alpha1.BasePath(org, site)+doc, nil)
	srv.ServeHTTP(rec, req)
	if rec.code != http.StatusOK {
		return fmt.Sprint(rec.code)
	}
	if doc != "/.well-known/jwks.json" {
		return rec.body.String()
	}
	return kidsOf(rec.body.String())
}

// kidsOf lists the kids of a JWKS body, in order, comma-separated.
func kidsOf(body string) string {
	var kids []string
	for part := range strings.SplitSeq(body, `"kid":"`) {
		if i := strings.IndexByte(part, '"'); i > 0 && !strings.HasPrefix(part, "{") {
			kids = append(kids, part[:i])
		}
	}
	return strings.Join(kids, ",")
}

type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(p)
}
