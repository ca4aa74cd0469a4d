package tenancy

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

func TestOwner(t *testing.T) {
	withUID := func(ti identityv1alpha1.TenantIdentity, uid string) identityv1alpha1.TenantIdentity {
		ti.UID = types.UID(uid)
		ti.Spec.Org = "acme"
		return ti
	}
	// a is the oldest claim, in a namespace bound only in some cases; b is
	// younger, in a bound namespace; c is the youngest, bound too.
	a := withUID(claim("ns-a", "a", t0), "uid-a")
	b := withUID(claim("ns-b", "b", t0.Add(time.Second)), "uid-b")
	c := withUID(claim("ns-c", "c", t0.Add(2*time.Second)), "uid-c")
	bound := map[string]map[string]string{
		"ns-a": {identityv1alpha1.LabelOrg: "acme"},
		"ns-b": {identityv1alpha1.LabelOrg: "acme"},
		"ns-c": {identityv1alpha1.LabelOrg: "acme"},
	}
	aUnbound := map[string]map[string]string{
		"ns-a": {identityv1alpha1.LabelOrg: "globex"},
		"ns-b": bound["ns-b"], "ns-c": bound["ns-c"],
	}
	rec := func(ti identityv1alpha1.TenantIdentity) *Claim { c := Of(&ti); return &c }
	type tis = []identityv1alpha1.TenantIdentity
	cases := []struct {
		name    string
		record  *Claim
		claims  tis
		labels  map[string]map[string]string
		binding bool
		want    string
	}{
		{"no record: the oldest bound claim", nil, tis{c, b, a}, bound, true, "ns-a/a"},
		{"no record, the oldest unbound: the oldest bound one", nil, tis{a, b, c}, aUnbound, true, "ns-b/b"},
		{"the recorded owner stays, though an older claim is bound now (no displacement)", rec(b), tis{a, b, c}, bound, true, "ns-b/b"},
		{"the recorded owner is deleted: the oldest bound claim", rec(b), tis{a, deleting(b), c}, bound, true, "ns-a/a"},
		{"the recorded owner is gone: the oldest bound claim", rec(b), tis{c, a}, bound, true, "ns-a/a"},
		{"the recorded owner's namespace is unbound by the admin", rec(a), tis{a, b, c}, aUnbound, true, "ns-b/b"},
		{"a record of the same name with another UID (recreated) does not stand", &Claim{"ns-b", "b", "old-uid"}, tis{a, b}, bound, true, "ns-a/a"},
		{"binding off: the record stands whatever the labels", rec(c), tis{a, b, c}, nil, false, "ns-c/c"},
		{"binding off, no record: the oldest", nil, tis{c, b, a}, nil, false, "ns-a/a"},
		{"nothing bound", rec(a), tis{a}, aUnbound, true, ""},
		{"no claims", rec(a), nil, bound, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			labels := func(ns string) map[string]string { return tc.labels[ns] }
			if o := Owner(tc.record, tc.claims, labels, tc.binding); o != nil {
				got = o.Namespace + "/" + o.Name
			}
			if got != tc.want {
				t.Errorf("owner %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClaimRecordRoundTrip(t *testing.T) {
	const site = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	c := Claim{Namespace: "tenant-acme", Name: "acme-dc1", UID: "1234"}
	cm := ClaimRecord("signet-system", "acme", site, c)
	if got, ok := ClaimOf(cm, "acme", site); !ok || got != c {
		t.Fatalf("ClaimOf(ClaimRecord) = %+v, %v; want %+v", got, ok, c)
	}
	if _, ok := ClaimOf(cm, "globex", site); ok {
		t.Fatal("a record of acme read as globex's")
	}
	if _, ok := ClaimOf(nil, "acme", site); ok {
		t.Fatal("no record read as one")
	}
	bad := cm.DeepCopy()
	delete(bad.Data, claimDataUID)
	if _, ok := ClaimOf(bad, "acme", site); ok {
		t.Fatal("a record without UID read as one")
	}
	if n := ClaimName(strings.Repeat("o", 63), site); len(n) > 253 {
		t.Fatalf("claim name too long: %d", len(n))
	}
}

func TestIssuerError(t *testing.T) {
	const site = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	const other = "00000000-0000-4000-8000-000000000000"
	base := "https://signet-jwks.signet-system.svc"
	cases := []struct {
		issuer, base string
		refused      bool
	}{
		{"", base, false},
		{base + "/v2/org/acme/nico/site/" + site, base, false},
		{base + "/v2/org/acme/nico/site/" + site + "/", base, false},
		{base + "/v2/org/acme/nico/site/" + site + "/tokens", base, false},
		{"https://id.acme.example/dc1", base, false},
		{"https://SIGNET-JWKS.signet-system.svc/v2/org/globex/nico/site/" + site, base, true},
		{base + "/v2/org/acme/nico/site/" + other, base, true},
		{base + "/v2/org/acme/nico/site/" + site + "x", base, true},
		{base, base, true},
		{base + "/elsewhere", base, true},
		{"http://signet-jwks.signet-system.svc/v2/org/globex/nico/site/" + site, base, false}, // another origin
		{"https://idp.example/prefix/v2/org/globex/nico/site/" + site, "https://idp.example/prefix", true},
		{"https://idp.example/other/v2/org/globex/nico/site/" + site, "https://idp.example/prefix", false},
	}
	for _, tc := range cases {
		err := IssuerError(tc.issuer, tc.base, "acme", site)
		if (err != nil) != tc.refused {
			t.Errorf("IssuerError(%q, base %q) = %v, want refused=%v", tc.issuer, tc.base, err, tc.refused)
		}
	}
}
