package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// env is what setUp started: the control plane, the two manager processes,
// and clients to reach them.
type env struct {
	dir     string // work directory: kubeconfigs, logs, audit log, manager binary
	keepDir bool
	root    string
	kubectl string

	testEnv    *envtest.Environment
	adminCfg   *rest.Config // cluster-admin, no client-side rate limit
	admin      client.Client
	kubeconfig string // cluster-admin's, for kubectl
	auditLog   string

	manager *proc // the full manager: controllers and JWKS server
	replica *proc // --controllers=false: the JWKS server only
}

// Users the managers authenticate as. Each is bound to the ClusterRole of
// config/rbac, so a missing permission shows here as it would in a cluster,
// and the audit log tells their requests apart.
const (
	managerUser = "signet-manager"
	replicaUser = "signet-jwks-server"
)

// auditPolicy records, once each, the writes the full manager makes: the
// restart phase counts them by resource, which client-go's metrics cannot.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["` + managerUser + `"]
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

func setUp(ctx context.Context, cfg config) (e *env, err error) {
	e = &env{}
	if e.root, err = repoRoot(); err != nil {
		return nil, err
	}
	assets, err := envtestAssets(e.root)
	if err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "bench-scale-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.keepDir = true // its logs say why
			e.tearDown()
		}
	}()
	logf("work directory %s", e.dir)
	if err := e.startControlPlane(assets); err != nil {
		return e, err
	}
	if err := e.install(ctx); err != nil {
		return e, err
	}
	if err := e.startManagers(ctx, cfg); err != nil {
		return e, err
	}
	return e, nil
}

// repoRoot is the nearest directory upwards holding signet's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(data), "module github.com/signet-dev/signet\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run bench-scale inside the signet repository (no go.mod of github.com/signet-dev/signet above %s)", dir)
		}
		dir = parent
	}
}

// envtestAssets is $KUBEBUILDER_ASSETS, or what hack/envtest-assets.sh
// finds or builds (it prints the directory on stdout).
func envtestAssets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (e *env) startControlPlane(assets string) error {
	policy := filepath.Join(e.dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return err
	}
	e.auditLog = filepath.Join(e.dir, "audit.log")
	e.testEnv = &envtest.Environment{BinaryAssetsDirectory: assets}
	e.testEnv.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", e.auditLog)
	logf("starting kube-apiserver and etcd from %s", assets)
	if _, err := e.testEnv.Start(); err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	e.kubectl = filepath.Join(assets, "kubectl")
	if _, err := os.Stat(e.kubectl); err != nil {
		if e.kubectl, err = exec.LookPath("kubectl"); err != nil {
			return fmt.Errorf("no kubectl in %s nor on $PATH", assets)
		}
	}
	admin, err := e.testEnv.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	if e.kubeconfig, err = e.writeKubeconfig("admin", admin); err != nil {
		return err
	}
	// Creating N objects at once: this client must not be the bottleneck.
	e.adminCfg = rest.CopyConfig(admin.Config())
	e.adminCfg.QPS, e.adminCfg.Burst = -1, 0
	e.admin, err = client.New(e.adminCfg, client.Options{Scheme: scheme()})
	return err
}

func (e *env) writeKubeconfig(name string, u *envtest.AuthenticatedUser) (string, error) {
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.dir, name+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// systemNamespace is signet's own namespace (config/default deploys it
// there); newer managers keep their ownership records in it.
const systemNamespace = "signet-system"

// install creates signet's namespace, applies the CRD and the two
// ClusterRoles with kubectl, as the docs tell a user to, and binds the
// roles to the managers' users.
func (e *env) install(ctx context.Context) error {
	steps := [][]string{
		{"create", "namespace", systemNamespace},
		{"apply", "-f", filepath.Join(e.root, "config", "crd", "bases")},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd/tenantidentities.identity.signet.dev"},
		{"apply", "-f", filepath.Join(e.root, "config", "rbac", "role.yaml"),
			"-f", filepath.Join(e.root, "config", "rbac", "jwks-server", "role.yaml")},
		{"create", "clusterrolebinding", "bench-signet-manager", "--clusterrole=signet-manager-role", "--user=" + managerUser},
		{"create", "clusterrolebinding", "bench-signet-jwks-server", "--clusterrole=signet-jwks-server-role", "--user=" + replicaUser},
	}
	for _, s := range steps {
		if _, err := e.run(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// run runs kubectl as the cluster admin.
func (e *env) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// startManagers builds ./cmd/manager and starts the full manager and the
// server-only replica, each as its own user, every listener on
// 127.0.0.1:0. Flags newer than the binary are passed only when its
// --help lists them.
func (e *env) startManagers(ctx context.Context, cfg config) error {
	bin := filepath.Join(e.dir, "manager")
	logf("building ./cmd/manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	build.Dir, build.Stderr = e.root, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/manager: %w", err)
	}
	known, err := knownFlags(bin)
	if err != nil {
		return err
	}
	args := func(user string) ([]string, error) {
		u, err := e.testEnv.AddUser(envtest.User{Name: user}, nil)
		if err != nil {
			return nil, err
		}
		kc, err := e.writeKubeconfig(user, u)
		if err != nil {
			return nil, err
		}
		a := []string{
			"--kubeconfig=" + kc,
			"--jwks-bind-address=127.0.0.1:0",
			"--metrics-bind-address=127.0.0.1:0",
			"--health-probe-bind-address=127.0.0.1:0",
			"--org-binding=namespace-label",
		}
		if known["token-bind-address"] {
			a = append(a, "--token-bind-address=0") // not measured here; two processes would clash on :9443
		}
		if known["system-namespace"] {
			a = append(a, "--system-namespace="+systemNamespace)
		}
		if known["metrics-secure"] {
			a = append(a, "--metrics-secure=false") // scraped over plain HTTP on loopback
		}
		return a, nil
	}
	mgrArgs, err := args(managerUser)
	if err != nil {
		return err
	}
	repArgs, err := args(replicaUser)
	if err != nil {
		return err
	}
	e.manager = newProc("manager", bin, e.dir, append(mgrArgs, cfg.managerArgs...))
	e.replica = newProc("replica", bin, e.dir, append(append(repArgs, "--controllers=false"), cfg.replicaArgs...))
	for _, p := range []*proc{e.manager, e.replica} {
		logf("starting %s: %s", p.name, p.commandLine())
		if err := p.start(ctx, 2*time.Minute); err != nil {
			return err
		}
		logf("%s ready: jwks %s, metrics %s, probes %s", p.name, p.jwks, p.metrics, p.probe)
	}
	return nil
}

// tearDown stops what setUp started and removes the work directory
// unless it is to be kept.
func (e *env) tearDown() {
	for _, p := range []*proc{e.manager, e.replica} {
		if p != nil {
			if err := p.stop(); err != nil {
				logf("stop %s: %v", p.name, err)
			}
		}
	}
	if e.testEnv != nil {
		if err := e.testEnv.Stop(); err != nil {
			logf("stop envtest: %v", err)
		}
	}
	switch {
	case e.dir == "":
	case e.keepDir:
		logf("work directory kept: %s", e.dir)
	default:
		_ = os.RemoveAll(e.dir)
	}
}

// cpu samples the CPU seconds each process has used so far.
func (e *env) cpu() map[string]cpuSample {
	pids := children(os.Getpid())
	s := map[string]cpuSample{}
	add := func(name string, pid int) {
		if sec, err := cpuSeconds(pid); err == nil {
			s[name] = cpuSample{PID: pid, Seconds: sec}
		}
	}
	add("manager", e.manager.pid())
	add("replica", e.replica.pid())
	add("kube-apiserver", pids["kube-apiserver"])
	add("etcd", pids["etcd"])
	add("bench-scale (clients)", os.Getpid())
	return s
}

// printAccess tells how to look at a kept run.
func (e *env) printAccess(present []tenant) {
	fmt.Printf("\nKept running until Ctrl-C (work directory %s):\n", e.dir)
	fmt.Printf("  kubectl --kubeconfig %s get tid -A\n", e.kubeconfig)
	fmt.Printf("  manager: jwks %s  metrics %s/metrics  log %s\n", e.manager.jwks, e.manager.metrics, e.dir)
	fmt.Printf("  replica: jwks %s  metrics %s/metrics\n", e.replica.jwks, e.replica.metrics)
	if len(present) > 0 {
		fmt.Printf("  e.g. curl %s%s\n", e.replica.jwks, present[0].jwksPath())
	}
}
