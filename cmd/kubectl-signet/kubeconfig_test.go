package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestKubeconfigLikeKubectl: --context picks a context, the context's
// namespace is the default, -n overrides it, and $KUBECONFIG is read when
// --kubeconfig is not given.
func TestKubeconfigLikeKubectl(t *testing.T) {
	env.Require(t)
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	good := cfg.Contexts[cfg.CurrentContext].DeepCopy()
	good.Namespace = ti.Namespace
	broken := good.DeepCopy()
	broken.Cluster = "nowhere"
	cfg.Clusters["nowhere"] = cfg.Clusters[good.Cluster].DeepCopy()
	cfg.Clusters["nowhere"].Server = "https://nowhere.invalid"
	cfg.Contexts["good"], cfg.Contexts["broken"] = good, broken
	cfg.CurrentContext = "broken"
	path := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	status := func(args ...string) result {
		return plugin(t, append([]string{"--kubeconfig", path}, args...)...)
	}
	if r := status("status", ti.Name); r.code != exitFailed || !strings.Contains(r.stderr, "nowhere.invalid") {
		t.Errorf("the current (broken) context: %s", r)
	}
	if r := status("--context", "good", "status", ti.Name); r.code != 0 || !strings.Contains(r.stdout, ti.Namespace+"/"+ti.Name) {
		t.Errorf("--context good, the context's namespace: %s", r)
	}
	other := env.Namespace(t, nil)
	if r := status("--context", "good", "-n", other, "status", ti.Name); r.code != exitFailed || !strings.Contains(r.stderr, `in namespace "`+other+`"`) {
		t.Errorf("-n overrides the context's namespace: %s", r)
	}
	if r := status("--context", "absent", "status"); r.code != exitFailed || !strings.Contains(r.stderr, `context "absent"`) {
		t.Errorf("an unknown context: %s", r)
	}
}

// TestKubectlRunsPlugin: the built binary on $PATH is `kubectl signet`,
// and it reads $KUBECONFIG as kubectl does.
func TestKubectlRunsPlugin(t *testing.T) {
	env.Require(t)
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-signet"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(kubectl, "signet", "status", "-n", ti.Namespace, ti.Name)
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl signet status: %v\n%s", err, out)
	}
	if got := field(t, string(out), "Active key"); got != ti.Status.ActiveKeyID {
		t.Errorf("kubectl signet status: Active key %q, want %q", got, ti.Status.ActiveKeyID)
	}
	list := exec.Command(kubectl, "plugin", "list")
	list.Env = cmd.Env
	if out, _ := list.CombinedOutput(); !strings.Contains(string(out), filepath.Join(bin, "kubectl-signet")) {
		t.Errorf("kubectl plugin list does not find the plugin:\n%s", out)
	}
}
