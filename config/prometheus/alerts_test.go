package prometheus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// The components whose metrics the alerts query register them at init.
	_ "github.com/signet-dev/signet/controllers"
	_ "github.com/signet-dev/signet/internal/jwks"
)

var (
	dir  = thisDir()
	root = filepath.Join(dir, "..", "..")
)

func thisDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// promtool is bin/promtool (make test builds it and passes $PROMTOOL).
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL")
	if path == "" {
		path = filepath.Join(root, "bin", "promtool")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("promtool not found at %s: run the tests with `make test` (which builds it), or `make %s`", path, path)
	}
	return path
}

func run(t *testing.T, stdin io.Reader, cwd, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = cwd
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes()
}

// ruleGroups is the spec of prometheusrule.yaml: a Prometheus rule file.
func ruleGroups(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule unstructured.Unstructured
	if err := yaml.Unmarshal(data, &rule.Object); err != nil {
		t.Fatal(err)
	}
	if rule.GetKind() != "PrometheusRule" || rule.GetAPIVersion() != "monitoring.coreos.com/v1" {
		t.Fatalf("prometheusrule.yaml is a %s %s", rule.GetAPIVersion(), rule.GetKind())
	}
	spec, _, _ := unstructured.NestedMap(rule.Object, "spec")
	return spec
}

// TestRules runs promtool on the PrometheusRule's groups: `check rules`
// parses and lints every expression, `test rules` evaluates the alerts
// against the synthetic series of rules_test.yaml.
func TestRules(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	rules, err := yaml.Marshal(ruleGroups(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "signet.rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(dir, "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "rules_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	out := run(t, nil, work, promtool(t), "check", "rules", "--lint=all", "--lint-fatal", "signet.rules.yaml")
	if !bytes.Contains(out, []byte("SUCCESS")) {
		t.Errorf("promtool check rules:\n%s", out)
	}
	run(t, nil, work, promtool(t), "test", "rules", "rules_test.yaml")
}

// TestEveryAlertIsTested: each alert of the rule file has a firing case in
// rules_test.yaml, so an untested expression cannot slip in.
func TestEveryAlertIsTested(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(dir, "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, name := range alertNames(t) {
		if !fires[name] {
			t.Errorf("alert %s has no case in rules_test.yaml where it fires", name)
		}
	}
}

func alertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	groups, _, _ := unstructured.NestedSlice(ruleGroups(t), "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			if name, ok := r.(map[string]any)["alert"].(string); ok {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no alerts in prometheusrule.yaml")
	}
	return names
}

// exported reports whether a component of the manager registers name on
// controller-runtime's registry (the one its metrics endpoint serves):
// registering a probe under the same name fails exactly then. This sees
// metric vectors that have no series yet, which a Gather would miss.
func exported(name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported(base) {
			return true
		}
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
	if err := crmetrics.Registry.Register(probe); err != nil {
		return true
	}
	crmetrics.Registry.Unregister(probe)
	return false
}

var metricName = regexp.MustCompile(`\b(signet_[a-z_]+|controller_runtime_[a-z_]+|workqueue_[a-z_]+)\b`)

// TestMetricNames: every metric the alerts and the dashboard query is
// registered by the controller, the JWKS server or controller-runtime.
func TestMetricNames(t *testing.T) {
	var exprs []string
	groups, _, _ := unstructured.NestedSlice(ruleGroups(t), "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			exprs = append(exprs, r.(map[string]any)["expr"].(string))
		}
	}
	for _, q := range dashboardQueries(t) {
		exprs = append(exprs, q.expr)
	}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !exported(name) {
				t.Errorf("%q queries %s, which no component exports", e, name)
			}
		}
	}
}

type query struct {
	panel string
	expr  string
}

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID         int            `json:"id"`
			Title      string         `json:"title"`
			Datasource map[string]any `json:"datasource"`
			Targets    []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var qs []query
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the dashboard's ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			qs = append(qs, query{panel: p.Title, expr: tg.Expr})
		}
	}
	if dash.UID == "" || len(qs) == 0 {
		t.Fatal("dashboard.json has no uid or no queries")
	}
	return qs
}

// grafanaVars are the dashboard's variables with values a query may take.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$namespace", "signet-system", "$job", ".+")

// TestDashboardQueries parses every panel's query with promtool: each
// becomes a recording rule of a rule file that `promtool check rules`
// must accept.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	var rules []map[string]any
	for i, q := range dashboardQueries(t) {
		if strings.Contains(grafanaVars.Replace(q.expr), "$") {
			t.Errorf("panel %q: unknown variable in %q", q.panel, q.expr)
		}
		rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": grafanaVars.Replace(q.expr)})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "dashboard.rules.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nil, work, promtool(t), "check", "rules", "dashboard.rules.yaml")
}

// TestChartCopies: the chart ships these files as they are here (make
// manifests copies them).
func TestChartCopies(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"prometheusrule.yaml", "dashboard.json"} {
		a, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, "charts", "signet", "files", "prometheus", name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/signet/files/prometheus/%s differs from config/prometheus (run make manifests): %v", name, err)
		}
	}
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}
