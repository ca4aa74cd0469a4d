// Command run-local is `make run`: it runs the signet manager against the
// configured cluster or, when none is configured, on an embedded local
// control plane (the envtest kube-apiserver and etcd) with the CRDs and the
// samples applied, and prints how to reach it. Ctrl-C stops all it started.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/signet-dev/signet/internal/devnet"
)

// Addresses of the local run; override with the environment when taken.
// Port 0 lets the system choose (tests do); run-local prints what it got.
var (
	jwksAddr    = env("SIGNET_JWKS_ADDR", "127.0.0.1:8443")
	metricsAddr = env("SIGNET_METRICS_ADDR", "127.0.0.1:8080")
	probeAddr   = env("SIGNET_PROBE_ADDR", "127.0.0.1:8081")
	// The token API serves plain HTTP here, so only on loopback.
	tokenAddr = env("SIGNET_TOKEN_ADDR", "127.0.0.1:9443")
	// runDir holds the kubeconfig and the manager binary.
	runDir = env("SIGNET_RUN_DIR", "bin")
)

const (
	sampleOrg  = "acme"
	sampleSite = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	manager, err := buildManager()
	if err != nil {
		return err
	}
	if kubeconfig, ok := configuredCluster(); ok {
		fmt.Printf("Running signet against the cluster of %s\n", kubeconfig)
		args := []string{"--kubeconfig", kubeconfig, "--public-base-url", "https://signet-jwks.signet-system.svc",
			"--system-namespace", systemNamespace, "--token-bind-address", tokenAddr}
		cmd := exec.Command(manager, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return runManager(ctx, cmd, nil)
	}
	return runEmbedded(ctx, manager)
}

// configuredCluster is $KUBECONFIG or ~/.kube/config, when present.
func configuredCluster() (string, bool) {
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		return kc, true
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", false
	}
	kc := filepath.Join(home, ".kube", "config")
	_, err = os.Stat(kc)
	return kc, err == nil
}

// systemNamespace is signet's own namespace on the embedded control plane,
// as in config/default.
const systemNamespace = "signet-system"

func runEmbedded(ctx context.Context, manager string) error {
	// The JWKS address first: when it is taken, fail before anything starts.
	front, err := devnet.NewRelay(jwksAddr)
	if err != nil {
		return fmt.Errorf("JWKS address (set SIGNET_JWKS_ADDR to another): %w", err)
	}
	defer func() { _ = front.Close() }()
	fmt.Println("No cluster configured: starting an embedded control plane (kube-apiserver + etcd)...")
	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := testEnv.Start(); err != nil {
		return fmt.Errorf("start control plane (is KUBEBUILDER_ASSETS set? `make run` sets it): %w", err)
	}
	defer func() { _ = testEnv.Stop() }()

	kubeconfig, err := writeKubeconfig(testEnv)
	if err != nil {
		return err
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	// signet's own namespace (its claim records live there), then the samples.
	system := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "create", "namespace", systemNamespace)
	system.Stdout, system.Stderr = os.Stdout, os.Stderr
	if err := system.Run(); err != nil {
		return fmt.Errorf("create namespace %s: %w", systemNamespace, err)
	}
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", filepath.Join("config", "samples"))
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("apply samples: %w", err)
	}
	return runLocal(ctx, manager, kubeconfig, front)
}

// runLocal runs the manager on loopback. The JWKS address is front,
// run-local's own listener, relayed to the port the manager's server
// binds, so the public base URL (the issuers) is known before the manager
// starts, even when SIGNET_JWKS_ADDR asks for port 0.
func runLocal(ctx context.Context, manager, kubeconfig string, front *devnet.Relay) error {
	base := "http://" + front.Addr()
	cmd := exec.Command(manager, "--kubeconfig", kubeconfig, "--public-base-url", base,
		"--system-namespace", systemNamespace, "--jwks-bind-address", "127.0.0.1:0", "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr, "--token-bind-address", tokenAddr)
	addrs := &devnet.Addrs{OnReport: func(name, addr string) {
		if name == "jwks" {
			front.SetBackend(addr)
		}
	}}
	cmd.Stdout, cmd.Stderr = addrs.Tee(os.Stdout), addrs.Tee(os.Stderr)
	url := base + "/v2/org/" + sampleOrg + "/nico/site/" + sampleSite + "/.well-known/jwks.json"
	return runManager(ctx, cmd, func(done <-chan struct{}) error {
		if err := waitFor(ctx, url, done); err != nil {
			return err
		}
		metrics := "off"
		if addr := addrs.Get("metrics"); addr != "" {
			metrics = "https://" + addr + "/metrics (a bearer token allowed GET /metrics: docs/deploy.md)"
		}
		tokenAPI := "off"
		if addr := addrs.Get("token"); addr != "" {
			tokenAPI = "http://" + addr + "/v2/org/" + sampleOrg + "/nico/site/" + sampleSite + "/token (POST; README: Getting a token)"
		}
		fmt.Printf("\nsignet is running on an embedded control plane.\n"+
			"  kubeconfig: %s\n  try:        kubectl --kubeconfig %s get tid -A\n  JWKS URL:   %s\n  metrics:    %s\n"+
			"  token API:  %s\n"+
			"Press Ctrl-C to stop everything.\n\n", kubeconfig, kubeconfig, url, metrics, tokenAPI)
		return nil
	})
}

// writeKubeconfig saves an admin kubeconfig for the embedded control plane
// under bin/, for kubectl.
func writeKubeconfig(testEnv *envtest.Environment) (string, error) {
	user, err := testEnv.AddUser(envtest.User{Name: "signet-dev", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(runDir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// buildManager compiles cmd/manager into bin/.
func buildManager() (string, error) {
	out, err := filepath.Abs(filepath.Join(runDir, "manager"))
	if err != nil {
		return "", err
	}
	build := exec.Command("go", "build", "-o", out, "./cmd/manager")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build manager: %w", err)
	}
	return out, nil
}

// runManager runs cmd until ctx ends, then stops it gracefully. ready,
// when given, runs once the manager has started (done is closed when it
// exits) and may fail the run.
func runManager(ctx context.Context, cmd *exec.Cmd, ready func(done <-chan struct{}) error) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if ready != nil {
		if err := ready(done); err != nil {
			stop()
			return err
		}
	}
	select {
	case <-done:
		return fmt.Errorf("manager exited: %w", waitErr)
	case <-ctx.Done():
		stop() // the exit status after SIGTERM says nothing new
		return nil
	}
}

// waitFor polls url until it answers 200, the manager exits, or ctx ends.
func waitFor(ctx context.Context, url string, managerDone <-chan struct{}) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		resp, err := http.Get(url) //nolint:gosec // a local URL we built
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-managerDone:
			return errors.New("manager exited before serving")
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("the sample's JWKS URL did not answer 200 within 2 minutes")
		case <-tick.C:
		}
	}
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
