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
)

// Addresses of the local run; override with the environment when taken.
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
		return runManager(ctx, manager, kubeconfig, "https://signet-jwks.signet-system.svc", false)
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
	return runManager(ctx, manager, kubeconfig, "http://"+jwksAddr, true)
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

// runManager runs the manager until ctx ends, then stops it gracefully.
func runManager(ctx context.Context, manager, kubeconfig, publicBaseURL string, local bool) error {
	args := []string{"--kubeconfig", kubeconfig, "--public-base-url", publicBaseURL, "--system-namespace", systemNamespace,
		"--token-bind-address", tokenAddr}
	if local {
		args = append(args, "--jwks-bind-address", jwksAddr, "--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", probeAddr)
	}
	cmd := exec.Command(manager, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if local {
		url := "http://" + jwksAddr + "/v2/org/" + sampleOrg + "/nico/site/" + sampleSite + "/.well-known/jwks.json"
		if err := waitFor(ctx, url, done); err != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return err
		}
		fmt.Printf("\nsignet is running on an embedded control plane.\n"+
			"  kubeconfig: %s\n  try:        kubectl --kubeconfig %s get tid -A\n  JWKS URL:   %s\n"+
			"  token API:  POST http://%s/v2/org/%s/nico/site/%s/token (see README, Getting a token)\n"+
			"Press Ctrl-C to stop everything.\n\n", kubeconfig, kubeconfig, url, tokenAddr, sampleOrg, sampleSite)
	}
	select {
	case err := <-done:
		return fmt.Errorf("manager exited: %w", err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			_ = err // the exit status after SIGTERM says nothing new
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			err := <-done
			_ = err
		}
		return nil
	}
}

// waitFor polls url until it answers 200, the manager exits, or ctx ends.
func waitFor(ctx context.Context, url string, managerDone <-chan error) error {
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
		case err := <-managerDone:
			return fmt.Errorf("manager exited before serving: %w", err)
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
