package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/controllers"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/testenv"
)

// The plugin is tested against what it drives: a real kube-apiserver and
// etcd (envtest), the real TenantIdentity reconciler in a manager, and the
// real JWKS server, on a listener this process opened and hands over.

const (
	systemNamespace = "signet-system"
	org             = "acme"
)

var (
	env        *testenv.Env
	kubeconfig string // admin
	serverURL  string // the JWKS server: http://127.0.0.1:<port>
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	crlog.SetLogger(logr.Discard())
	flag.Parse() // for testing.Short
	if testing.Short() {
		return m.Run() // make unit: every test here needs the control plane, and skips (env.Require)
	}
	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = e
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := startSignet(ctx)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	defer cancel()
	dir, err := os.MkdirTemp("", "kubectl-signet-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if kubeconfig, err = adminKubeconfig(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func adminKubeconfig(dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "kubectl-signet-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// startSignet runs the manager as cmd/manager builds it: the cache of
// internal/cacheopts, the reconciler, and the JWKS server, whose HTTP
// server serves on a listener opened here (its address is the public
// base URL, so status.jwksURI points at it).
func startSignet(ctx context.Context) (stop func(), err error) {
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	serverURL = "http://" + ln.Addr().String()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheopts.Options(cacheopts.Config{SystemNamespace: systemNamespace}),
	})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	r := &controllers.TenantIdentityReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorder("signet"), PublicBaseURL: serverURL, OrgBinding: true,
		SystemNamespace: systemNamespace, MaxConcurrentReconciles: 4,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		_ = ln.Close()
		return nil, err
	}
	srv, err := jwks.Add(mgr, jwks.Options{
		BindAddress: "0", PublicBaseURL: serverURL, SystemNamespace: systemNamespace, OrgBinding: true,
	})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = httpSrv.Serve(ln) }()
	done := make(chan error, 1)
	mctx, cancel := context.WithCancel(ctx)
	go func() { done <- mgr.Start(mctx) }()
	return func() {
		_ = httpSrv.Close()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}

// result is one run of the plugin.
type result struct {
	code           int
	stdout, stderr string
}

// plugin runs the plugin with the admin kubeconfig, as `kubectl signet`.
func plugin(t *testing.T, args ...string) result {
	t.Helper()
	env.Require(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"--kubeconfig", kubeconfig}, args...), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// tenant creates a namespace bound to org and a TenantIdentity in it,
// and waits until the reconciler has made it Ready.
func tenant(t *testing.T, name string, mutate func(*identityv1alpha1.TenantIdentity)) *identityv1alpha1.TenantIdentity {
	t.Helper()
	ns := env.Namespace(t, map[string]string{identityv1alpha1.LabelOrg: org})
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: uuid.NewString()},
	}
	if mutate != nil {
		mutate(ti)
	}
	if err := env.Client.Create(context.Background(), ti); err != nil {
		t.Fatal(err)
	}
	return waitFor(t, ti, "Ready", func(ti *identityv1alpha1.TenantIdentity) bool {
		return meta.IsStatusConditionTrue(ti.Status.Conditions, identityv1alpha1.ConditionReady) && ti.Status.ActiveKeyID != ""
	})
}

// waitFor polls ti until cond holds, for at most a minute.
func waitFor(t *testing.T, ti *identityv1alpha1.TenantIdentity, what string, cond func(*identityv1alpha1.TenantIdentity) bool) *identityv1alpha1.TenantIdentity {
	t.Helper()
	key := client.ObjectKeyFromObject(ti)
	got := &identityv1alpha1.TenantIdentity{}
	deadline := time.Now().Add(time.Minute)
	for {
		err := env.Client.Get(context.Background(), key, got)
		if err == nil && cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: not within a minute (last error %v, status %+v)", key, what, err, got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually retries the plugin until check accepts its result (the JWKS
// server sees a change after the controller wrote it).
func eventually(t *testing.T, what string, check func(result) bool, args ...string) result {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := plugin(t, args...)
		if check(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute; last run: %s", what, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rows are the lines of a table section that starts with header, split
// into fields, up to the next blank line.
func rows(t *testing.T, out, header string) [][]string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Join(strings.Fields(l), " ") != header {
			continue
		}
		var out [][]string
		for _, row := range lines[i+1:] {
			if strings.TrimSpace(row) == "" {
				break
			}
			out = append(out, strings.Fields(row))
		}
		return out
	}
	t.Fatalf("no table %q in:\n%s", header, out)
	return nil
}

// field is the value of a "Label:  value" header line.
func field(t *testing.T, out, label string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(l, label+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", label, out)
	return ""
}
