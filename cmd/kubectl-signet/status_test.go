package main

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

const rfc3339Len = len("2006-01-02T15:04:05Z")

func isStamp(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil && len(s) == rfc3339Len
}

// TestStatus: the header, the keys table and the conditions table of a
// TenantIdentity the reconciler made Ready.
func TestStatus(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	r := plugin(t, "status", "-n", ti.Namespace, ti.Name)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("status: %s", r)
	}
	if got := field(t, r.stdout, "TenantIdentity"); got != ti.Namespace+"/"+ti.Name {
		t.Errorf("TenantIdentity: %q", got)
	}
	if got := field(t, r.stdout, "Org / site"); got != org+" / "+ti.Spec.SiteID {
		t.Errorf("Org / site: %q", got)
	}
	if got := field(t, r.stdout, "JWKS URI"); got != ti.Status.JWKSURI || !strings.HasPrefix(got, serverURL) {
		t.Errorf("JWKS URI %q, status says %q", got, ti.Status.JWKSURI)
	}
	if got := field(t, r.stdout, "Active key"); got != ti.Status.ActiveKeyID {
		t.Errorf("Active key %q, status says %q", got, ti.Status.ActiveKeyID)
	}
	if got := field(t, r.stdout, "Next rotation"); !strings.HasPrefix(got, ti.Status.NextRotationTime.UTC().Format(time.RFC3339)+" (in ") {
		t.Errorf("Next rotation %q, status says %v", got, ti.Status.NextRotationTime)
	}
	keys := rows(t, r.stdout, "KID STATE PUBLISHED ACTIVATES RETIRES REMOVES")
	if len(keys) != 1 || len(keys[0]) != 6 {
		t.Fatalf("keys table %q, want one row of 6 columns", keys)
	}
	k := keys[0]
	if k[0] != ti.Status.ActiveKeyID || k[1] != "Active" || !isStamp(k[2]) || !isStamp(k[3]) || !isStamp(k[4]) {
		t.Errorf("key row %q: want the Active kid with publishedAt, activatesAt and retiresAt", k)
	}
	conds := rows(t, r.stdout, "CONDITION STATUS REASON SINCE MESSAGE")
	ready := false
	for _, c := range conds {
		if len(c) >= 4 && c[0] == "Ready" {
			ready = c[1] == "True" && c[2] == identityv1alpha1.ReasonKeysPublished && isStamp(c[3])
		}
	}
	if !ready {
		t.Errorf("conditions %q: want Ready True KeysPublished with its time", conds)
	}
}

// TestStatusLists: without a name, every TenantIdentity of the namespace;
// -A, of every namespace; none, a sentence.
func TestStatusLists(t *testing.T) {
	t.Parallel()
	a := tenant(t, "site-a", nil)
	b := tenant(t, "site-b", nil)
	r := plugin(t, "status", "-n", a.Namespace)
	if r.code != 0 || strings.Count(r.stdout, "TenantIdentity:") != 1 || !strings.Contains(r.stdout, a.Namespace+"/site-a") {
		t.Errorf("status -n %s: %s", a.Namespace, r)
	}
	r = plugin(t, "status", "-A")
	for _, ti := range []*identityv1alpha1.TenantIdentity{a, b} {
		if r.code != 0 || !strings.Contains(r.stdout, "TenantIdentity:  "+ti.Namespace+"/"+ti.Name) {
			t.Errorf("status -A misses %s/%s: %s", ti.Namespace, ti.Name, r)
		}
	}
	empty := env.Namespace(t, nil)
	r = plugin(t, "status", "-n", empty)
	if r.code != 0 || r.stdout != "No TenantIdentities in namespace \""+empty+"\".\n" {
		t.Errorf("status of an empty namespace: %s", r)
	}
	r = plugin(t, "status", "-n", empty, "nope")
	if r.code != exitFailed || !strings.Contains(r.stderr, `tenantidentity "nope" not found in namespace "`+empty+`"`) {
		t.Errorf("status of a missing TenantIdentity: %s", r)
	}
}

// TestStatusOfHostileStatus: the status is tenant-writable; what a tenant
// writes there reaches an admin's terminal escaped, and stays in its
// column.
func TestStatusOfHostileStatus(t *testing.T) {
	t.Parallel()
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-evil", Name: "evil", Generation: 2},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: "evil", SiteID: "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"},
		Status: identityv1alpha1.TenantIdentityStatus{
			ObservedGeneration: 1,
			ActiveKeyID:        "kid\x1b]0;owned\x07",
			Keys:               []identityv1alpha1.KeyStatus{{KID: "a\tb\x1b[2J", State: "Active"}},
		},
	}
	meta.SetStatusCondition(&ti.Status.Conditions, metav1.Condition{
		Type: "Ready", Status: "False", Reason: "Evil", Message: "line one\n\x1b[31mred\x1b[0m\rover",
	})
	var out strings.Builder
	if err := printStatus(&out, ti, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.ContainsAny(s, "\x1b\x07\r\t") {
		t.Errorf("control characters reach the terminal:\n%q", s)
	}
	for _, want := range []string{`kid\u001b]0;owned\u0007`, `a\u0009b\u001b[2J`, `line one \u001b[31mred\u001b[0m over`, "generation 1 of 2"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if keys := rows(t, s, "KID STATE PUBLISHED ACTIVATES RETIRES REMOVES"); len(keys) != 1 || len(keys[0]) != 6 {
		t.Errorf("a tab in a kid shifted the columns: %q", keys)
	}
}
