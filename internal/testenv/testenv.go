// Package testenv starts a real kube-apiserver and etcd (envtest) with the
// signet CRDs installed, for the tests of every package. It is imported by
// tests only.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// RepoRoot is the top of the source tree, found from this file's location so
// tests work from any package directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme knows the core types and TenantIdentity.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := identityv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Env is a running control plane and an admin client to it.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client

	usersMu sync.Mutex // see AddUser
}

// Start runs kube-apiserver and etcd from KUBEBUILDER_ASSETS (the Makefile
// sets it from hack/envtest-assets.sh) with the CRDs of config/crd/bases.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, " +
			"or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Environment: env, Config: cfg, Client: c}, nil
}

// Main is TestMain for a package that needs the control plane: it starts it,
// runs the tests and stops it. Without a control plane it fails the
// package: a missing one must not pass for a green run.
//
// In -short mode (`make unit`) it starts none and leaves *env nil: the
// tests that need it skip at their first use of it (Require, which
// Namespace and Kubeconfig call), and the others run.
func Main(m *testing.M, env **Env) { MainWith(m, env, nil, nil) }

// MainWith is Main with setUp run once the control plane is up (what every
// test expects to exist) and tearDown run before it stops (say, closing
// watches that would hold kube-apiserver's shutdown). Either may be nil;
// neither runs in -short mode.
func MainWith(m *testing.M, env **Env, setUp func(*Env) error, tearDown func()) {
	flag.Parse() // for testing.Short
	if testing.Short() {
		os.Exit(m.Run())
	}
	e, err := Start()
	if err == nil && setUp != nil {
		if err = setUp(e); err != nil {
			_ = e.Stop()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if tearDown != nil {
		tearDown()
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// SkipMessage is what a test that needs the control plane says when it is
// skipped.
const SkipMessage = "needs kube-apiserver and etcd: skipped in -short mode (make unit); make test runs it"

// Require skips t when there is no control plane. That is only in -short
// mode: otherwise Main has failed the package already. Every test that
// talks to the control plane calls it, or Namespace or Kubeconfig, before
// anything else of e.
func (e *Env) Require(t testing.TB) {
	t.Helper()
	if e == nil {
		t.Skip(SkipMessage)
	}
}

var namespaceSeq atomic.Int64

// Namespace creates a namespace of its own for one test, with the given
// labels, and deletes it when the test ends.
func (e *Env) Namespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	e.Require(t)
	name := fmt.Sprintf("t%d-%s", namespaceSeq.Add(1), sanitize(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return name
}

// AddUser is envtest's, made safe for parallel tests: envtest signs every
// user's client certificate with one CA whose serial counter is not
// guarded (the race detector finds it when parallel tests add users).
func (e *Env) AddUser(user envtest.User, baseConfig *rest.Config) (*envtest.AuthenticatedUser, error) {
	e.usersMu.Lock()
	defer e.usersMu.Unlock()
	return e.Environment.AddUser(user, baseConfig)
}

// Kubeconfig writes an admin kubeconfig for kubectl and returns its path.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	e.Require(t)
	user, err := e.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add envtest user: %v", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sanitize turns a test name into a DNS-label fragment.
func sanitize(name string) string {
	name = strings.ToLower(name)
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 {
		s = strings.Trim(s[:40], "-")
	}
	return s
}
