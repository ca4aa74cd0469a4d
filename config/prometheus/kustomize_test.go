package prometheus

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// A control plane with prometheus-operator's CRDs, for a server-side dry
// run of `kubectl apply -k config/prometheus`.
var kubeconfig string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse() // for testing.Short
	if testing.Short() {
		// make unit: the tests that need a control plane (or kubectl from
		// its assets) skip; the others (helm, promtool) run.
		return m.Run()
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, "+
			"or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "hack", "testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{})
	if err == nil {
		err = c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "signet-system"}})
	}
	if err == nil {
		kubeconfig, err = adminKubeconfig(env)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(filepath.Dir(kubeconfig)) }()
	return m.Run()
}

func adminKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "prometheus-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "signet-prometheus-test-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(tmp, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

func kubectl(t *testing.T) string {
	t.Helper()
	path := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skip("needs kubectl from the envtest assets: skipped in -short mode (make unit); make test runs it")
		}
		t.Fatalf("no kubectl in KUBEBUILDER_ASSETS (hack/envtest-assets.sh provides one): %v", err)
	}
	return path
}

// TestDryRunServer: the kustomization passes the API server's validation
// against prometheus-operator's real CRDs (strict field validation).
func TestDryRunServer(t *testing.T) {
	t.Parallel()
	rendered := run(t, nil, root, kubectl(t), "kustomize", "config/prometheus")
	objs := decode(t, rendered)
	out := run(t, bytes.NewReader(rendered), root, kubectl(t), "--kubeconfig", kubeconfig,
		"apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if n := bytes.Count(out, []byte("(server dry run)")); n != len(objs) || n != 3 {
		t.Errorf("%d of %d objects accepted (want the ServiceMonitor, the PrometheusRule, the dashboard):\n%s", n, len(objs), out)
	}
	cm := objs[slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "ConfigMap" })]
	if cm.GetName() != "signet-grafana-dashboard" || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap %s labels %v", cm.GetName(), cm.GetLabels())
	}
}

// TestServiceMonitorSelectsMetricsService: in config/default, the
// ServiceMonitor selects exactly the metrics Service, by a port it has.
func TestServiceMonitorSelectsMetricsService(t *testing.T) {
	t.Parallel()
	monitor := decode(t, run(t, nil, root, kubectl(t), "kustomize", "config/prometheus"))
	var sm *unstructured.Unstructured
	for _, o := range monitor {
		if o.GetKind() == "ServiceMonitor" {
			sm = o
		}
	}
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	port := endpoints[0].(map[string]any)["port"]
	var selected []string
	for _, o := range decode(t, run(t, nil, root, kubectl(t), "kustomize", "config/default")) {
		if o.GetKind() != "Service" || o.GetNamespace() != sm.GetNamespace() || !matches(o.GetLabels(), selector) {
			continue
		}
		selected = append(selected, o.GetName())
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		if !slices.ContainsFunc(ports, func(p any) bool { return p.(map[string]any)["name"] == port }) {
			t.Errorf("Service %s has no port %v: %v", o.GetName(), port, ports)
		}
	}
	if !slices.Equal(selected, []string{"signet-metrics"}) {
		t.Errorf("the ServiceMonitor selects %v in config/default, want [signet-metrics]", selected)
	}
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}
