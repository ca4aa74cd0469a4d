package v1alpha1_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testenv"
)

// kubectl runs the kubectl of the envtest asset set (the machine's, or one
// built by hack/envtest-assets.sh) against the test apiserver.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKubectlAppliesCRDAndSamples(t *testing.T) {
	kubeconfig := env.Kubeconfig(t)
	out := kubectl(t, kubeconfig, "apply", "-f", "config/crd/bases", "-f", "config/samples")
	for _, want := range []string{"tenantidentities.identity.signet.dev", "namespace/tenant-acme", "tenantidentity.identity.signet.dev/acme-dc1"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
		}
	}

	table := kubectl(t, kubeconfig, "get", "tid", "-n", "tenant-acme")
	header := strings.Fields(strings.SplitN(table, "\n", 2)[0])
	want := []string{"NAME", "ORG", "SITE", "ALGORITHM", "ACTIVE", "KID", "NEXT", "ROTATION", "READY", "AGE"}
	if strings.Join(header, " ") != strings.Join(want, " ") {
		t.Fatalf("kubectl get tid header = %q, want %q", header, want)
	}
	if row := table[strings.Index(table, "\n")+1:]; !strings.Contains(row, "acme-dc1") || !strings.Contains(row, "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f") || !strings.Contains(row, "ES256") {
		t.Fatalf("kubectl get tid row lacks name, site or algorithm:\n%s", table)
	}

	// The sample namespace is bound to the sample's org.
	labels := kubectl(t, kubeconfig, "get", "namespace", "tenant-acme", "-o", "jsonpath={.metadata.labels.identity\\.signet\\.dev/org}")
	if labels != "acme" {
		t.Fatalf("sample namespace org label = %q, want acme", labels)
	}
}

// The deployable manifests render with kustomize and the real apiserver
// accepts every object (CRD, RBAC, Deployment, Services).
func TestKustomizeDefaultApplies(t *testing.T) {
	kubeconfig := env.Kubeconfig(t)
	rendered := kubectl(t, kubeconfig, "kustomize", "config/default")
	for _, want := range []string{"kind: Deployment", "name: signet-jwks", "name: signet-jwks-server-role", "replicas: 2", "readOnlyRootFilesystem: true",
		"--token-bind-address=:9443", "targetPort: token"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("kustomize output lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(path, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	out := kubectl(t, kubeconfig, "apply", "-f", path)
	for _, want := range []string{"namespace/signet-system", "deployment.apps/signet-controller-manager", "service/signet-jwks",
		"clusterrole.rbac.authorization.k8s.io/signet-jwks-server-role"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
		}
	}
	// The server-only role can read no Secret.
	role := kubectl(t, kubeconfig, "get", "clusterrole", "signet-jwks-server-role", "-o", "jsonpath={.rules[*].resources}")
	if strings.Contains(role, "secrets") {
		t.Fatalf("server-only role grants access to Secrets: %s", role)
	}
}

// kubectl explain documents the token API's fields from the CRD schema.
func TestKubectlExplainTokens(t *testing.T) {
	kubeconfig := env.Kubeconfig(t)
	kubectl(t, kubeconfig, "apply", "-f", "config/crd/bases")
	kubectl(t, kubeconfig, "wait", "--for", "condition=Established", "--timeout", "60s", "crd/tenantidentities.identity.signet.dev")
	var out string
	// The apiserver publishes a new CRD's OpenAPI a moment after it is Established.
	for range 100 {
		out = kubectlMayFail(kubeconfig, "explain", "tenantidentity.spec.tokens")
		if strings.Contains(out, "allowedAudiences") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kubectl explain tenantidentity.spec.tokens:\n%s", out)
	for _, want := range []string{
		"tokens lets workloads get tokens signed with the Active key from the",
		"allowedAudiences\t<[]string> -required-",
		`are the only values a token's "aud" may hold: 1 to 16`,
		"it must be one of allowedAudiences",
		"defaultAudience\t<string>",
		"is the audience of a token whose request names none",
		"subjectPrefix\t<string>",
		"ns/<namespace>/sa/<name>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain tenantidentity.spec.tokens lacks %q", want)
		}
	}
	signing := kubectl(t, kubeconfig, "explain", "tenantidentity.spec.signingSecret.enabled")
	if !strings.Contains(signing, "tokens come from the token API only") {
		t.Errorf("kubectl explain tenantidentity.spec.signingSecret.enabled:\n%s", signing)
	}
}

// kubectlMayFail runs kubectl and returns its output, error or not.
func kubectlMayFail(kubeconfig string, args ...string) string {
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = testenv.RepoRoot()
	out, _ := cmd.CombinedOutput()
	return string(out)
}
