package charts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// scenario is one release of the chart: its name, namespace and values.
type scenario struct {
	name, release, namespace string
	values                   map[string]any
}

// scenarios cover every optional object and flag of the chart.
var scenarios = []scenario{
	{name: "defaults", release: "signet", namespace: "signet-system"},
	{name: "cert-manager and monitoring", release: "signet", namespace: "identity", values: map[string]any{
		"publicBaseURL": "https://keys.example.com",
		"tls": map[string]any{"certManager": map[string]any{
			"enabled":   true,
			"issuerRef": map[string]any{"name": "cluster-ca", "kind": "ClusterIssuer"},
			"dnsNames":  []any{"signet.internal.example"},
		}},
		"metrics":          map[string]any{"certSecret": "signet-metrics-tls"},
		"serviceMonitor":   map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
		"prometheusRule":   map[string]any{"enabled": true},
		"grafanaDashboard": map[string]any{"enabled": true},
	}},
	{name: "a shard", release: "shard-a", namespace: "signet-shards", values: map[string]any{
		"tenantSelector":           "identity.signet.dev/shard in (a)",
		"kubeAPIQPS":               200,
		"kubeAPIBurst":             400,
		"maxConcurrentReconciles":  8,
		"signingSecretPropagation": "5m",
		"token":                    map[string]any{"reviewAudience": "signet-shard-a"},
		"metrics":                  map[string]any{"secure": false},
		"serviceMonitor":           map[string]any{"enabled": true},
		"image":                    map[string]any{"repository": "registry.example/signet", "digest": "sha256:" + strings.Repeat("ab", 32)},
	}},
	{name: "plain HTTP behind a proxy", release: "edge", namespace: "edge", values: map[string]any{
		"replicaCount":   1,
		"leaderElect":    false,
		"tls":            map[string]any{"enabled": false},
		"token":          map[string]any{"bindAddress": "0"},
		"metrics":        map[string]any{"enabled": false},
		"orgBinding":     "none",
		"watchNamespace": "tenant-acme",
	}},
}

// render is `helm template` of s, parsed.
func render(t *testing.T, s scenario, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, renderRaw(t, s, extra...))
}

func renderRaw(t *testing.T, s scenario, extra ...string) []byte {
	t.Helper()
	args := append([]string{"template", s.release, chartDir, "--namespace", s.namespace,
		"--kube-version", "1.37.2", "-f", writeValues(t, s.values)}, extra...)
	return run(t, nil, tool(t, "HELM", "helm"), args...)
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

// managerArgs are the args of the manager container of the release's Deployment.
func managerArgs(t *testing.T, objs []*unstructured.Unstructured, fullname string) []string {
	t.Helper()
	d := find(objs, "Deployment", fullname+"-controller-manager")
	if d == nil {
		t.Fatalf("no Deployment %s-controller-manager in %v", fullname, kinds(objs))
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers, want the manager", len(containers))
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}

func TestLint(t *testing.T) {
	t.Parallel()
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			out := run(t, nil, tool(t, "HELM", "helm"), "lint", "--strict", chartDir,
				"--namespace", s.namespace, "--kube-version", "1.37.2", "-f", writeValues(t, s.values))
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestRendered checks what each scenario renders: the objects and the
// manager's flags.
func TestRendered(t *testing.T) {
	t.Parallel()
	type check struct {
		scenario
		fullname   string
		args       []string // present, in this order among the args
		absentArgs []string // prefixes no arg may have
		objects    []string // Kind/name present
		absent     []string // Kind/name absent
	}
	checks := []check{
		{scenario: scenarios[0], fullname: "signet",
			args: []string{"--leader-elect=true", "--leader-election-id=signet.identity.signet.dev",
				"--jwks-bind-address=:8443", "--metrics-bind-address=:8080", "--metrics-secure=true",
				"--health-probe-bind-address=:8081", "--public-base-url=https://signet-jwks.signet-system.svc",
				"--tls-cert-file=/etc/signet/tls/tls.crt", "--tls-key-file=/etc/signet/tls/tls.key",
				"--max-cache-age=5m", "--org-binding=namespace-label", "--token-bind-address=:9443",
				"--token-review-audience=signet", "--system-namespace=signet-system"},
			absentArgs: []string{"--tenant-selector", "--signing-secret-propagation", "--metrics-cert-path", "--kube-api-qps", "--kube-api-burst", "--max-concurrent-reconciles", "--watch-namespace"},
			objects: []string{"Deployment/signet-controller-manager", "Service/signet-jwks", "Service/signet-metrics",
				"ServiceAccount/signet-controller-manager", "ServiceAccount/signet-jwks-server"},
			absent: []string{"Certificate/signet-jwks", "ServiceMonitor/signet-metrics", "PrometheusRule/signet-alerts"},
		},
		{scenario: scenarios[1], fullname: "signet",
			args:    []string{"--metrics-secure=true", "--metrics-cert-path=/etc/signet/metrics-tls", "--public-base-url=https://keys.example.com"},
			objects: []string{"Certificate/signet-jwks", "ServiceMonitor/signet-metrics", "PrometheusRule/signet-alerts", "ConfigMap/signet-grafana-dashboard"},
		},
		{scenario: scenarios[2], fullname: "shard-a-signet",
			args: []string{"--leader-election-id=shard-a-signet.identity.signet.dev", "--metrics-secure=false",
				"--public-base-url=https://shard-a-signet-jwks.signet-shards.svc", "--token-review-audience=signet-shard-a",
				"--tenant-selector=identity.signet.dev/shard in (a)", "--system-namespace=signet-shards",
				"--signing-secret-propagation=5m", "--kube-api-qps=200", "--kube-api-burst=400", "--max-concurrent-reconciles=8"},
			objects: []string{"Deployment/shard-a-signet-controller-manager", "ServiceMonitor/shard-a-signet-metrics",
				"ClusterRole/shard-a-signet-manager-role"},
		},
		{scenario: scenarios[3], fullname: "edge-signet",
			args: []string{"--leader-elect=false", "--metrics-bind-address=0", "--public-base-url=http://edge-signet-jwks.edge.svc",
				"--org-binding=none", "--token-bind-address=0", "--watch-namespace=tenant-acme"},
			absentArgs: []string{"--tls-cert-file", "--tls-key-file", "--metrics-secure", "--metrics-cert-path"},
			absent:     []string{"Service/edge-signet-metrics"},
		},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, c.scenario)
			args := managerArgs(t, objs, c.fullname)
			last := -1
			for _, want := range c.args {
				i := slices.Index(args, want)
				if i < 0 {
					t.Errorf("no arg %q in %q", want, args)
				} else if i < last {
					t.Errorf("arg %q out of order in %q", want, args)
				} else {
					last = i
				}
			}
			for _, prefix := range c.absentArgs {
				for _, a := range args {
					if strings.HasPrefix(a, prefix) {
						t.Errorf("unexpected arg %q", a)
					}
				}
			}
			for _, o := range c.objects {
				kind, name, _ := strings.Cut(o, "/")
				if find(objs, kind, name) == nil {
					t.Errorf("no %s in %v", o, kinds(objs))
				}
			}
			for _, o := range c.absent {
				kind, name, _ := strings.Cut(o, "/")
				if find(objs, kind, name) != nil {
					t.Errorf("%s rendered, want none", o)
				}
			}
		})
	}
}

// TestTLSWiring: the Certificate writes the Secret the pods mount, for
// the names verifiers use; without TLS nothing is mounted and the JWKS
// Service port is http.
func TestTLSWiring(t *testing.T) {
	t.Parallel()
	objs := render(t, scenarios[1])
	cert := find(objs, "Certificate", "signet-jwks")
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	names, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	want := []string{"signet-jwks.identity.svc", "signet-jwks.identity.svc.cluster.local", "signet.internal.example", "keys.example.com"}
	if !slices.Equal(names, want) {
		t.Errorf("dnsNames %q, want %q", names, want)
	}
	volumes, _, _ := unstructured.NestedSlice(find(objs, "Deployment", "signet-controller-manager").Object, "spec", "template", "spec", "volumes")
	secrets := map[string]any{}
	for _, v := range volumes {
		secrets[v.(map[string]any)["name"].(string)] = v.(map[string]any)["secret"].(map[string]any)["secretName"]
	}
	if secret != "signet-jwks-tls" || secrets["tls"] != secret || secrets["metrics-tls"] != "signet-metrics-tls" || len(secrets) != 2 {
		t.Errorf("volumes %v, want the Certificate's Secret %q and the metrics certificate", volumes, secret)
	}
	issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	if issuer["name"] != "cluster-ca" || issuer["kind"] != "ClusterIssuer" {
		t.Errorf("issuerRef %v", issuer)
	}

	plain := render(t, scenarios[3])
	spec, _, _ := unstructured.NestedMap(find(plain, "Deployment", "edge-signet-controller-manager").Object, "spec", "template", "spec")
	if _, ok := spec["volumes"]; ok {
		t.Errorf("TLS off, yet volumes %v", spec["volumes"])
	}
	ports, _, _ := unstructured.NestedSlice(find(plain, "Service", "edge-signet-jwks").Object, "spec", "ports")
	if len(ports) != 1 || ports[0].(map[string]any)["name"] != "http" {
		t.Errorf("JWKS Service ports %v, want one http port (token API off)", ports)
	}
}

// TestServiceMonitorSelectsMetrics: the ServiceMonitor selects exactly the
// metrics Service, by a port it has, with the scheme the endpoint serves.
func TestServiceMonitorSelectsMetrics(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		scenario
		scheme string
	}{
		{scenarios[1], "https"}, // secure metrics, the default
		{scenarios[2], "http"},  // the shard turns metrics.secure off
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, c.scenario)
			var sm *unstructured.Unstructured
			for _, o := range objs {
				if o.GetKind() == "ServiceMonitor" {
					sm = o
				}
			}
			if sm == nil {
				t.Fatalf("no ServiceMonitor in %v", kinds(objs))
			}
			selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(endpoints) != 1 {
				t.Fatalf("endpoints %v, want one", endpoints)
			}
			port := endpoints[0].(map[string]any)["port"]
			if scheme := endpoints[0].(map[string]any)["scheme"]; scheme != c.scheme {
				t.Errorf("scheme %v, want %s", scheme, c.scheme)
			}
			var selected []string
			for _, o := range objs {
				if o.GetKind() == "Service" && matches(o.GetLabels(), selector) {
					selected = append(selected, o.GetName())
					ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
					if !slices.ContainsFunc(ports, func(p any) bool { return p.(map[string]any)["name"] == port }) {
						t.Errorf("Service %s has no port %v", o.GetName(), port)
					}
				}
			}
			if len(selected) != 1 || !strings.HasSuffix(selected[0], "-metrics") {
				t.Errorf("ServiceMonitor selects %v, want the metrics Service alone", selected)
			}
		})
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

// TestRefused: values that would break the operator fail the render with
// a message that says what to change.
func TestRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"two controllers", map[string]any{"leaderElect": false}, "replicaCount > 1 needs leaderElect"},
		{"no issuer", map[string]any{"tls": map[string]any{"certManager": map[string]any{"enabled": true}}}, "needs tls.certManager.issuerRef.name"},
		{"tokens over plain HTTP", map[string]any{"tls": map[string]any{"enabled": false}}, "token API serves plain HTTP only on loopback"},
		{"monitor without metrics", map[string]any{"metrics": map[string]any{"enabled": false}, "serviceMonitor": map[string]any{"enabled": true}}, "serviceMonitor.enabled needs metrics.enabled"},
		{"unknown org binding", map[string]any{"orgBinding": "label"}, "/orgBinding"},
		{"bad digest", map[string]any{"image": map[string]any{"repository": "signet", "digest": "latest"}}, "/image/digest"},
		{"bad duration", map[string]any{"maxCacheAge": "five minutes"}, "/maxCacheAge"},
		{"misspelt value", map[string]any{"tenantSelecter": "a=b"}, "tenantSelecter"},
		{"bad token address", map[string]any{"token": map[string]any{"bindAddress": "9443"}}, "/token/bindAddress"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := runErr(nil, tool(t, "HELM", "helm"), "template", "signet", chartDir, "--kube-version", "1.37.2",
				"-f", writeValues(t, c.values))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template: %v, want an error containing %q", err, c.want)
			}
		})
	}
	// Loopback is the exception: the token API may serve plain HTTP there.
	out := render(t, scenario{release: "signet", namespace: "signet-system", values: map[string]any{
		"tls": map[string]any{"enabled": false}, "token": map[string]any{"bindAddress": "127.0.0.1:9443"},
	}})
	if args := managerArgs(t, out, "signet"); !slices.Contains(args, "--token-bind-address=127.0.0.1:9443") {
		t.Errorf("loopback token listener: args %q", args)
	}
}

// TestValuesCannotInjectFlags: a value holding quotes, newlines and YAML
// stays one argument; it never adds a flag or an object.
func TestValuesCannotInjectFlags(t *testing.T) {
	t.Parallel()
	hostile := "a=b\"\n        - \"--org-binding=none\n---\nkind: ClusterRoleBinding"
	objs := render(t, scenario{release: "signet", namespace: "signet-system", values: map[string]any{
		"tenantSelector": hostile, "extraArgs": []any{"--zap-log-level=info\n- --org-binding=none"},
	}})
	args := managerArgs(t, objs, "signet")
	if !slices.Contains(args, "--tenant-selector="+hostile) {
		t.Errorf("the selector is not one argument: %q", args)
	}
	if n := len(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return !strings.HasPrefix(a, "--org-binding=") })); n != 1 {
		t.Errorf("%d --org-binding args: %q", n, args)
	}
	if got, want := len(objs), len(render(t, scenarios[0])); got != want {
		t.Errorf("%d objects rendered, %d without the hostile values", got, want)
	}
}

// TestCRDsMatchConfig: the chart's crds/ are config/crd/bases (make
// manifests copies them; make verify catches a stale copy, this catches a
// hand edit of either).
func TestCRDsMatchConfig(t *testing.T) {
	t.Parallel()
	want, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	got, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(got) != len(want) {
		t.Errorf("chart crds/ %v, config/crd/bases %v", got, want)
	}
	for _, path := range want {
		a, _ := os.ReadFile(path)
		b, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(path)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/signet/crds/%s differs from config/crd/bases (run make manifests): %v", filepath.Base(path), err)
		}
	}
}

// TestDryRunServer applies every scenario's rendered chart, CRDs
// included, to envtest with a server-side dry run: every object passes
// the API server's validation (strict field validation, the CRDs'
// schemas for Certificate, ServiceMonitor and PrometheusRule, RBAC's
// escalation checks).
func TestDryRunServer(t *testing.T) {
	requireControlPlane(t)
	t.Parallel()
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			createNamespace(t, s.namespace)
			rendered := renderRaw(t, s, "--include-crds")
			out := run(t, bytes.NewReader(rendered), kubectl(t), "--kubeconfig", kubeconfig,
				"apply", "--dry-run=server", "--validate=strict", "-f", "-")
			objs := decode(t, rendered)
			if n := bytes.Count(out, []byte("(server dry run)")); n != len(objs) {
				t.Errorf("%d of %d objects accepted:\n%s", n, len(objs), out)
			}
		})
	}
}

// createNamespace creates ns for a test once (scenarios share some).
func createNamespace(t *testing.T, ns string) {
	t.Helper()
	err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(fmt.Errorf("create namespace %s: %w", ns, err))
	}
}
