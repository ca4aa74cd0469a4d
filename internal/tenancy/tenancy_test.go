package tenancy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func claim(ns, name string, created time.Time) identityv1alpha1.TenantIdentity {
	return identityv1alpha1.TenantIdentity{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created),
	}}
}

func deleting(ti identityv1alpha1.TenantIdentity) identityv1alpha1.TenantIdentity {
	now := metav1.NewTime(t0)
	ti.DeletionTimestamp = &now
	return ti
}

func TestWinner(t *testing.T) {
	old := claim("ns-b", "x", t0)
	young := claim("ns-a", "a", t0.Add(time.Second))
	tieA := claim("ns-a", "z", t0)
	tieB := claim("ns-b", "a", t0)
	tieSameNS := claim("ns-b", "b", t0)
	type tis = []identityv1alpha1.TenantIdentity
	cases := []struct {
		name      string
		claimants tis
		want      string // namespace/name, "" for none
	}{
		{"none", nil, ""},
		{"one", tis{young}, "ns-a/a"},
		{"the older wins, listed first", tis{old, young}, "ns-b/x"},
		{"the older wins, listed last, whatever its names", tis{young, old}, "ns-b/x"},
		{"tie: namespace first", tis{tieB, tieA}, "ns-a/z"},
		{"tie: then name", tis{old, tieSameNS, tieB}, "ns-b/a"},
		{"a claim being deleted does not count", tis{deleting(old), young}, "ns-a/a"},
		{"all being deleted", tis{deleting(old), deleting(young)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if w := Winner(tc.claimants); w != nil {
				got = w.Namespace + "/" + w.Name
			}
			if got != tc.want {
				t.Errorf("winner %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOrgSiteValues(t *testing.T) {
	ti := claim("ns", "x", t0)
	ti.Spec.Org, ti.Spec.SiteID = "acme", "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	if got := OrgSiteValues(&ti); len(got) != 1 || got[0] != "acme/7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f" {
		t.Fatalf("OrgSiteValues = %v", got)
	}
	if got := OrgSiteValues(&identityv1alpha1.TenantIdentity{}); got != nil {
		t.Fatalf("an object without org/site is indexed as %v", got)
	}
}
