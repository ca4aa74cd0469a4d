package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/signet-dev/signet/internal/testenv"
)

// The suite shares one control plane and two manager processes, each run
// as the ServiceAccount config/rbac ships for it, with a token from
// TokenRequest, bound to nothing but what `kubectl apply -k config/rbac`
// creates; the kube-apiserver runs the OwnerReferencesPermissionEnforcement
// admission plugin, as some distributions do:
//
//   - tlsMgr runs the controller and the JWKS server on TLS (a certificate
//     for 127.0.0.1 signed by a test CA) as signet-controller-manager; its
//     public base URL is its own https address, so issuers are https as
//     OIDC requires. The rotation test SIGKILLs and restarts it.
//   - plainMgr runs the JWKS server alone (--controllers=false) on plain
//     HTTP as signet-jwks-server (no Secrets), with the same public base
//     URL: a second replica of the same service.
//
// Both serve metrics over HTTPS to bearer tokens allowed GET /metrics:
// tlsMgr with the test CA's certificate, plainMgr with a self-signed one.
//
// TestMain installs the CRD, the RBAC and the samples with kubectl, as a
// user would.

const (
	sampleNamespace = "tenant-acme"
	sampleName      = "acme-dc1"
	sampleOrg       = "acme"
	sampleSite      = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	crdName         = "tenantidentities.identity.signet.dev"
	// The namespace and ServiceAccounts of config/rbac.
	systemNamespace = "signet-system"
	managerSA       = "signet-controller-manager"
	serverSA        = "signet-jwks-server"
	// ServiceAccounts that scrape metrics: one bound to
	// signet-metrics-reader, one bound to nothing.
	scraperSA = "e2e-metrics-scraper"
	noRoleSA  = "e2e-no-role"
	// maxCacheAge is the managers' --max-cache-age: documents are cached for
	// at most this long, so verifiers refresh every second.
	maxCacheAge = time.Second
)

// suite is the shared state TestMain builds.
type suite struct {
	root    string // repository root
	dir     string // scratch: kubeconfigs, certificates, logs, binaries
	kubectl string
	env     *envtest.Environment
	cfg     *rest.Config // admin
	client  client.Client

	adminKubeconfig   string
	managerKubeconfig string // managerSA's token
	serverKubeconfig  string // serverSA's token
	scraperToken      string
	noRoleToken       string
	managerBin        string

	caPool        *x509.CertPool
	httpsClient   *http.Client // trusts the test CA only
	httpClient    *http.Client
	publicBaseURL string // https://127.0.0.1:<tlsMgr's relay port>
	plainBaseURL  string // http://127.0.0.1:<plainMgr's relay port>

	tlsMgr   *managerProc
	plainMgr *managerProc
}

var s *suite

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	start := time.Now()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBEBUILDER_ASSETS is not set: run `make test`, or "+
			"KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test -race ./internal/e2e/...")
		return 1
	}
	dir, err := os.MkdirTemp("", "signet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	s = &suite{root: testenv.RepoRoot(), dir: dir, kubectl: filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")}
	defer func() {
		if code == 0 && os.Getenv("E2E_KEEP") == "" {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: kept logs and files in %s\n", dir)
		}
	}()
	stop, err := s.setUp()
	defer stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: set up:", err)
		return 1
	}
	fmt.Printf("e2e: control plane, CRD, samples and two managers up in %s\n", time.Since(start).Round(time.Millisecond))
	code = m.Run()

	// Invariant 4 over everything the managers ever logged.
	s.tlsMgr.stop()
	s.plainMgr.stop()
	if leaks := scanLogs(s.tlsMgr.logs(), s.plainMgr.logs()); len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "e2e: private key material in manager logs:\n  "+strings.Join(leaks, "\n  "))
		code = 1
	}
	// The shipped RBAC was all the managers needed, for everything they did.
	if denied := scanForbidden(s.tlsMgr.logs(), s.plainMgr.logs()); len(denied) > 0 {
		fmt.Fprintln(os.Stderr, "e2e: the apiserver refused the managers something:\n  "+strings.Join(denied, "\n  "))
		code = 1
	}
	fmt.Printf("e2e: %d private keys checked against %d log files; total %s\n",
		forbidden.count(), len(s.tlsMgr.logs())+len(s.plainMgr.logs()), time.Since(start).Round(time.Millisecond))
	return code
}

// setUp builds the shared state. stop undoes whatever part of it ran.
func (s *suite) setUp() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}

	// Build the manager while the control plane starts.
	s.managerBin = filepath.Join(s.dir, "manager")
	built := make(chan error, 1)
	go func() { built <- goBuild(s.root, s.managerBin, "./cmd/manager") }()
	waitBuild := sync.OnceValue(func() error { return <-built })
	// Whatever fails first, the build ends before setUp returns.
	defer func() { _ = waitBuild() }()

	// The control plane without CRDs (kubectl installs them below), with
	// the admission plugin that checks blockOwnerDeletion against RBAC.
	s.env = &envtest.Environment{}
	s.env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	if s.cfg, err = s.env.Start(); err != nil {
		return stop, fmt.Errorf("start envtest: %w", err)
	}
	stops = append(stops, func() {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop envtest:", err)
		}
	})
	if s.client, err = client.New(s.cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return stop, err
	}
	if s.adminKubeconfig, err = s.writeKubeconfig(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, "admin.kubeconfig"); err != nil {
		return stop, err
	}
	if err := s.installRBAC(); err != nil {
		return stop, err
	}
	if err := waitBuild(); err != nil {
		return stop, err
	}

	// TLS for the public server and tlsMgr's metrics (tls.crt, tls.key in s.dir).
	certFile, keyFile, pool, err := writePKI(s.dir)
	if err != nil {
		return stop, err
	}
	s.caPool = pool
	s.httpsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	s.httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}

	if s.tlsMgr, err = newManagerProc("manager-tls", s.managerBin, s.dir); err != nil {
		return stop, err
	}
	if s.plainMgr, err = newManagerProc("manager-plain", s.managerBin, s.dir); err != nil {
		return stop, err
	}
	s.publicBaseURL = "https://" + s.tlsMgr.jwksAddr()
	s.plainBaseURL = "http://" + s.plainMgr.jwksAddr()
	s.tlsMgr.args = append(s.tlsMgr.args,
		"--kubeconfig", s.managerKubeconfig,
		"--public-base-url", s.publicBaseURL,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--metrics-cert-path", s.dir,
		"--max-cache-age", maxCacheAge.String(),
		// The suite's workloads read the signing Secret through the API, not
		// through a kubelet's mount: no propagation margin.
		"--signing-secret-propagation=0",
		"--token-bind-address", "127.0.0.1:0", // reported as the listener "token"
	)
	s.plainMgr.args = append(s.plainMgr.args,
		"--kubeconfig", s.serverKubeconfig,
		"--controllers=false",
		"--public-base-url", s.publicBaseURL,
		"--max-cache-age", maxCacheAge.String(),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, mp := range []*managerProc{s.tlsMgr, s.plainMgr} {
		if err := mp.start(); err != nil {
			return stop, err
		}
		stops = append(stops, mp.close)
	}
	for _, mp := range []*managerProc{s.tlsMgr, s.plainMgr} {
		if err := mp.waitReady(ctx); err != nil {
			return stop, err
		}
	}

	// The samples, as README says.
	if _, err := s.kubectlRun(nil, "apply", "-f", filepath.Join(s.root, "config", "samples")); err != nil {
		return stop, err
	}
	return stop, nil
}

// installRBAC does what a user does before deploying: install the CRD and
// wait for it, create signet-system and apply config/rbac; then it makes
// kubeconfigs of the managers' ServiceAccounts and the scrapers' tokens.
func (s *suite) installRBAC() error {
	steps := [][]string{
		{"apply", "-f", filepath.Join(s.root, "config", "crd", "bases")},
		{"wait", "--for", "condition=Established", "--timeout", "60s", "crd/" + crdName},
		{"create", "namespace", systemNamespace},
		{"apply", "-k", filepath.Join(s.root, "config", "rbac")},
		{"-n", systemNamespace, "create", "serviceaccount", scraperSA},
		{"-n", systemNamespace, "create", "serviceaccount", noRoleSA},
		{"create", "clusterrolebinding", scraperSA, "--clusterrole", "signet-metrics-reader", "--serviceaccount", systemNamespace + ":" + scraperSA},
	}
	for _, args := range steps {
		if _, err := s.kubectlRun(nil, args...); err != nil {
			return err
		}
	}
	var err error
	if s.managerKubeconfig, err = s.serviceAccountKubeconfig(managerSA); err != nil {
		return err
	}
	if s.serverKubeconfig, err = s.serviceAccountKubeconfig(serverSA); err != nil {
		return err
	}
	if s.scraperToken, err = s.token(scraperSA); err != nil {
		return err
	}
	s.noRoleToken, err = s.token(noRoleSA)
	return err
}

// token is a TokenRequest token of a ServiceAccount of signet-system, valid
// longer than the suite runs.
func (s *suite) token(serviceAccount string) (string, error) {
	out, err := s.kubectlRun(nil, "-n", systemNamespace, "create", "token", serviceAccount, "--duration", "4h")
	return strings.TrimSpace(out), err
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount with a TokenRequest token, as a pod's mounted token does.
func (s *suite) serviceAccountKubeconfig(serviceAccount string) (string, error) {
	token, err := s.token(serviceAccount)
	if err != nil {
		return "", err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: s.cfg.Host, CertificateAuthorityData: s.cfg.CAData}
	kc.AuthInfos[serviceAccount] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: serviceAccount}
	kc.CurrentContext = "e2e"
	path := filepath.Join(s.dir, serviceAccount+".kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

func (s *suite) writeKubeconfig(u envtest.User, name string) (string, error) {
	user, err := s.env.AddUser(u, nil)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", u.Name, err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, name)
	return path, os.WriteFile(path, data, 0o600)
}

// kubectlRun runs kubectl as the admin, with stdin when given.
func (s *suite) kubectlRun(stdin []byte, args ...string) (string, error) {
	return s.kubectlAs(s.adminKubeconfig, stdin, args...)
}

func (s *suite) kubectlAs(kubeconfig string, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = s.root
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// kubectl runs kubectl as the admin and fails the test on error.
func kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := s.kubectlRun(in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goBuild compiles pkg of the repository into out. It keeps the caller's
// environment, so it shares the Go build cache.
func goBuild(root, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// poll calls cond every interval until it returns true or an error, or
// until timeout. It returns the last error or a timeout error naming what.
func poll(timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
		time.Sleep(interval)
	}
}
