package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// scanForbidden lists the lines of the logs where the apiserver refused a
// manager something: with exactly the shipped RBAC, there must be none.
func scanForbidden(groups ...[]string) []string {
	var out []string
	for _, files := range groups {
		for _, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, " is forbidden: ") {
					out = append(out, filepath.Base(path)+": "+line)
				}
			}
		}
	}
	return out
}

// metricsClient speaks HTTPS to m's metrics endpoint: verifying the test
// CA's certificate when m was given it (--metrics-cert-path), else
// accepting the self-signed one it made, as a Prometheus scrape config
// with insecure_skip_verify does.
func metricsClient(m *managerProc) *http.Client {
	if slices.Contains(m.args, "--metrics-cert-path") {
		return s.httpsClient
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed by design
	}}
}

// scrape GETs m's /metrics over HTTPS with a bearer token ("": none).
func scrape(ctx context.Context, m *managerProc, token string) (url string, status int, body []byte, err error) {
	addr, err := m.addr(ctx, "metrics")
	if err != nil {
		return "", 0, nil, err
	}
	url = "https://" + addr + "/metrics"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return url, 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient(m).Do(req)
	if err != nil {
		return url, 0, nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err = io.ReadAll(resp.Body)
	return url, resp.StatusCode, body, err
}

// TestMetricsAreAuthorized: both managers serve metrics over HTTPS only,
// to a bearer token whose subject may GET /metrics (the shipped
// signet-metrics-reader ClusterRole); the managers may review tokens and
// access because config/rbac lets them.
func TestMetricsAreAuthorized(t *testing.T) {
	ctx := context.Background()
	for _, m := range []*managerProc{s.tlsMgr, s.plainMgr} {
		for _, tc := range []struct {
			who, token string
			want       int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"a ServiceAccount not bound to signet-metrics-reader", s.noRoleToken, http.StatusForbidden},
			{"a ServiceAccount bound to signet-metrics-reader", s.scraperToken, http.StatusOK},
			// controller-runtime's filter answers a token the TokenReview
			// rejects with 500 "Authentication failed", not 401: refused
			// all the same.
			{"a token the apiserver did not issue", "not-a-token", 0},
		} {
			url, status, body, err := scrape(ctx, m, tc.token)
			if err != nil {
				t.Fatalf("%s, %s: %v", m.name, tc.who, err)
			}
			if status != tc.want && (tc.want != 0 || status == http.StatusOK) {
				t.Errorf("%s: GET %s with %s: %d %.200s, want %d (0: any refusal)", m.name, url, tc.who, status, body, tc.want)
			}
			if hasMetrics := strings.Contains(string(body), "signet_jwks_requests_total"); hasMetrics != (tc.want == http.StatusOK) {
				t.Errorf("%s: GET %s with %s: metrics in the body: %v", m.name, url, tc.who, hasMetrics)
			}
		}

		// No plain HTTP, even with a good token.
		addr, err := m.addr(ctx, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.scraperToken)
		if resp, err := s.httpClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "signet_") {
				t.Errorf("%s: plain HTTP metrics answered %d %.200s", m.name, resp.StatusCode, b)
			}
		}
	}

	// tlsMgr serves the certificate it was given, plainMgr one it made
	// itself: the test CA does not vouch for it.
	addr, err := s.plainMgr.addr(ctx, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := s.httpsClient.Get("https://" + addr + "/metrics"); err == nil {
		_ = resp.Body.Close()
		t.Errorf("%s: the self-signed metrics certificate verified against the test CA", s.plainMgr.name)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("%s: %v, want a certificate error", s.plainMgr.name, err)
	}
}

// TestShippedManagerRoleNeedsFinalizersRule shows that the shipped role,
// not a lenient apiserver, is what lets the manager make keys: the same
// manager, on the same apiserver (with OwnerReferencesPermissionEnforcement),
// run as a ServiceAccount bound to the shipped signet-manager-role minus
// its tenantidentities/finalizers rule, makes no key, for the plugin
// refuses its blockOwnerDeletion owner references; with the shipped role
// (tlsMgr) the same TenantIdentity gets its keys. Only one controller may
// run at a time, so tlsMgr is stopped meanwhile.
func TestShippedManagerRoleNeedsFinalizersRule(t *testing.T) {
	ctx := context.Background()
	const (
		sa   = "e2e-no-finalizers"
		org  = "rbacprobe"
		name = "rbac-probe"
		site = "0c8b7a6f-5e4d-4c3b-8a29-180f7e6d5c4b"
	)
	role := shippedRole(t, filepath.Join("config", "rbac", "role.yaml"))
	role.Name = sa
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "tenantidentities/finalizers")
	})
	if want := len(shippedRole(t, filepath.Join("config", "rbac", "role.yaml")).Rules) - 1; len(role.Rules) != want {
		t.Fatalf("the shipped role has no tenantidentities/finalizers rule to remove: %+v", role.Rules)
	}
	createOrFail(t, &role)
	createOrFail(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: sa}})
	createOrFail(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: systemNamespace, Name: sa}},
	})
	kubeconfig, err := s.serviceAccountKubeconfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	ns := "e2e-rbac-probe"
	createOrFail(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{identityv1alpha1.LabelOrg: org}}})

	s.tlsMgr.stop()
	t.Cleanup(func() { restartTLSManager(t) })
	probe, err := newManagerProc("manager-no-finalizers", s.managerBin, s.dir,
		"--kubeconfig", kubeconfig, "--watch-namespace", ns,
		"--jwks-server=false", "--metrics-bind-address=0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.close()
	if err := probe.start(); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := probe.waitReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: org, SiteID: site},
	}
	createOrFail(t, ti)

	// What the user sees: Ready=False, ApplyFailed, the plugin's refusal.
	const refusal = "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on"
	var message string
	if err := poll(60*time.Second, 200*time.Millisecond, name+" Ready=False with the admission plugin's refusal", func() (bool, error) {
		var now identityv1alpha1.TenantIdentity
		if err := s.client.Get(ctx, client.ObjectKeyFromObject(ti), &now); err != nil {
			return false, err
		}
		if now.Status.ActiveKeyID != "" {
			t.Fatalf("%s made key %s without the finalizers rule: is OwnerReferencesPermissionEnforcement on?", probe.name, now.Status.ActiveKeyID)
		}
		c := meta.FindStatusCondition(now.Status.Conditions, identityv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != identityv1alpha1.ReasonApplyFailed || !strings.Contains(c.Message, refusal) {
			return false, fmt.Errorf("conditions %+v", now.Status.Conditions)
		}
		message = c.Message
		return true, nil
	}); err != nil {
		t.Fatalf("%v; log:\n%s", err, probe.tail(40))
	}
	t.Logf("without the finalizers rule, %s: Ready=False, ApplyFailed: %s", probe.name, message)
	var secrets corev1.SecretList
	if err := s.client.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Errorf("without the finalizers rule, %d Secrets were made in %s", len(secrets.Items), ns)
	}
	if err := s.client.Get(ctx, client.ObjectKeyFromObject(ti), ti); err != nil {
		t.Fatal(err)
	}
	if ti.Status.ActiveKeyID != "" {
		t.Errorf("without the finalizers rule, an Active key %s", ti.Status.ActiveKeyID)
	}
	probe.close()

	// The shipped role: the same TenantIdentity gets its keys.
	restartTLSManager(t)
	got := waitReady(t, ns, name)
	if err := s.client.List(ctx, &secrets, client.InNamespace(ns), client.HasLabels{identityv1alpha1.LabelTenantIdentity}); err != nil {
		t.Fatal(err)
	}
	t.Logf("with the shipped role, %s made %d key Secrets (%s Active) under the same admission plugin",
		s.tlsMgr.name, len(secrets.Items), got.Status.ActiveKeyID)
}

// shippedRole reads a ClusterRole of the repository.
func shippedRole(t *testing.T, path string) rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, path))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil || role.Kind != "ClusterRole" || len(role.Rules) == 0 {
		t.Fatalf("%s: not a ClusterRole with rules (%v)", path, err)
	}
	return role
}

func createOrFail(t *testing.T, obj client.Object) {
	t.Helper()
	if err := s.client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// restartTLSManager starts tlsMgr again unless it runs, and waits until
// it is ready.
func restartTLSManager(t *testing.T) {
	t.Helper()
	if s.tlsMgr.running() {
		return
	}
	if err := s.tlsMgr.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := s.tlsMgr.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
}
