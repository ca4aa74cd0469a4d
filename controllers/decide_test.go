package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

func tenant(ns, name string, created time.Time) identityv1alpha1.TenantIdentity {
	return identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: "acme", SiteID: "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"},
	}
}

func TestOrgBindingRefusal(t *testing.T) {
	ti := tenant("tenant-acme", "dc1", t0)
	cases := []struct {
		name    string
		labels  map[string]string
		binding bool
		refused bool
		inMsg   []string
	}{
		{"binding off, no label", nil, false, false, nil},
		{"binding off, other org", map[string]string{identityv1alpha1.LabelOrg: "globex"}, false, false, nil},
		{"bound to the org", map[string]string{identityv1alpha1.LabelOrg: "acme", "other": "x"}, true, false, nil},
		{"no labels", nil, true, true, []string{"tenant-acme", identityv1alpha1.LabelOrg, `"acme"`}},
		{"other labels only", map[string]string{"team": "acme"}, true, true, []string{identityv1alpha1.LabelOrg, `"acme"`}},
		{"bound to another org", map[string]string{identityv1alpha1.LabelOrg: "globex"}, true, true,
			[]string{"tenant-acme", identityv1alpha1.LabelOrg, `"globex"`, `"acme"`}},
		{"empty label value", map[string]string{identityv1alpha1.LabelOrg: ""}, true, true, []string{identityv1alpha1.LabelOrg, `"acme"`}},
		{"org differs in case", map[string]string{identityv1alpha1.LabelOrg: "ACME"}, true, true, []string{`"ACME"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := orgBindingRefusal(&ti, tc.labels, tc.binding)
			if (r != nil) != tc.refused {
				t.Fatalf("refusal %+v, want refused=%v", r, tc.refused)
			}
			if r == nil {
				return
			}
			if r.reason != identityv1alpha1.ReasonOrgNotBound {
				t.Errorf("reason %q", r.reason)
			}
			for _, want := range tc.inMsg {
				if !strings.Contains(r.message, want) {
					t.Errorf("message %q does not contain %s", r.message, want)
				}
			}
		})
	}
}

// Who owns an org/site is tenancy.Owner's decision (tested there); the
// refusal only names the owner.
func TestConflictRefusal(t *testing.T) {
	me := tenant("ns-m", "me", t0.Add(time.Second))
	me.UID = "uid-me"
	other := tenant("ns-z", "z", t0)
	other.UID = "uid-z"
	stale := me // a copy of myself, as a cache may hold it
	cases := []struct {
		name      string
		owner     *identityv1alpha1.TenantIdentity
		refusedBy string // namespace/name of the owner, "" when not refused
	}{
		{"no owner (none bound)", nil, ""},
		{"I own it", &stale, ""},
		{"another owns it", &other, "ns-z/z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := conflictRefusal(&me, tc.owner)
			if tc.refusedBy == "" {
				if r != nil {
					t.Errorf("refused: %+v", r)
				}
				return
			}
			if r == nil {
				t.Fatalf("not refused, want refused by %s", tc.refusedBy)
			}
			if r.reason != identityv1alpha1.ReasonConflict || !strings.Contains(r.message, tc.refusedBy) ||
				!strings.Contains(r.message, me.Spec.SiteID) {
				t.Errorf("refusal %+v, want Conflict naming %s and the site", r, tc.refusedBy)
			}
		})
	}
}

func TestPolicyFromSpec(t *testing.T) {
	size := int32(3072)
	cases := []struct {
		name            string
		spec            identityv1alpha1.KeyPolicy
		propagation     time.Duration
		noSigningSecret bool
		want            rotation.Policy
		wantErr         string // a fragment of the error, "" for none
	}{
		{name: "defaults", spec: identityv1alpha1.KeyPolicy{},
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, Overlap: 24 * time.Hour, TokenTTL: time.Hour}},
		{name: "short policy", spec: shortPolicy(),
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: period, PrePublish: prePublish, Overlap: overlap, TokenTTL: tokenTTL}},
		{name: "RSA with a size", spec: identityv1alpha1.KeyPolicy{Algorithm: "PS384", RSAKeySize: &size, RotationPeriod: "1h30m", PrePublish: "90s", Overlap: "2h", TokenTTL: "2h"},
			want: rotation.Policy{Algorithm: "PS384", RSAKeySize: 3072, RotationPeriod: 90 * time.Minute, PrePublish: 90 * time.Second, Overlap: 2 * time.Hour, TokenTTL: 2 * time.Hour}},
		{name: "overlap equal to tokenTTL", spec: identityv1alpha1.KeyPolicy{Overlap: "1h", TokenTTL: "1h"},
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: 720 * time.Hour, PrePublish: time.Hour, Overlap: time.Hour, TokenTTL: time.Hour}},
		{name: "not a duration", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "monthly"}, wantErr: `keys.rotationPeriod "monthly"`},
		{name: "zero", spec: identityv1alpha1.KeyPolicy{PrePublish: "0s"}, wantErr: `keys.prePublish "0s"`},
		{name: "negative", spec: identityv1alpha1.KeyPolicy{Overlap: "-5m"}, wantErr: `keys.overlap "-5m"`},
		{name: "days are not Go durations", spec: identityv1alpha1.KeyPolicy{TokenTTL: "1d"}, wantErr: `keys.tokenTTL "1d"`},
		{name: "overlap shorter than tokenTTL", spec: identityv1alpha1.KeyPolicy{Overlap: "30m", TokenTTL: "1h"}, wantErr: "keys.overlap 30m0s is shorter than keys.tokenTTL 1h0m0s"},
		{name: "period equal to prePublish", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "1h", PrePublish: "1h"}, wantErr: "keys.rotationPeriod 1h0m0s is not longer than keys.prePublish 1h0m0s"},
		{name: "period shorter than prePublish", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "10m", PrePublish: "1h"}, wantErr: "not longer than keys.prePublish"},
		{name: "10 keys at once", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "1h", PrePublish: "10m", Overlap: "8h"},
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: time.Hour, PrePublish: 10 * time.Minute, Overlap: 8 * time.Hour, TokenTTL: time.Hour}},
		{name: "more than 10 keys at once (an object stored before the CRD rule)", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "2s", PrePublish: "1s", Overlap: "720h"},
			wantErr: "holds 1296002 keys at once, more than the 10 allowed"},
		{name: "the signing propagation counts in the retention", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "10m", PrePublish: "1m", Overlap: "30m", TokenTTL: "10m"}, propagation: 2 * time.Minute,
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: 10 * time.Minute, PrePublish: time.Minute, Overlap: 30 * time.Minute, TokenTTL: 10 * time.Minute, SigningPropagation: 2 * time.Minute}},
		{name: "the signing propagation pushes an admitted policy past 10 keys", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "1h", PrePublish: "10m", Overlap: "8h", TokenTTL: "1h"}, propagation: 2 * time.Minute,
			wantErr: "that holds 11 keys at once, more than the 10 allowed"},
		{name: "no signing Secret: no propagation", spec: identityv1alpha1.KeyPolicy{RotationPeriod: "1h", PrePublish: "10m", Overlap: "8h"}, propagation: 2 * time.Minute, noSigningSecret: true,
			want: rotation.Policy{Algorithm: "ES256", RSAKeySize: 2048, RotationPeriod: time.Hour, PrePublish: 10 * time.Minute, Overlap: 8 * time.Hour, TokenTTL: time.Hour}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := identityv1alpha1.TenantIdentitySpec{Keys: tc.spec}
			if tc.noSigningSecret {
				disabled := false
				spec.SigningSecret.Enabled = &disabled
			}
			got, err := policyFromSpec(spec, tc.propagation)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("policy %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestIssuerAndJWKSURI(t *testing.T) {
	ti := tenant("ns", "dc1", t0)
	base := "https://signet.test/v2/org/acme/nico/site/7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	if got := issuer(&ti, publicBaseURL); got != base {
		t.Errorf("default issuer %q, want %q", got, base)
	}
	if got := jwksURI(&ti, publicBaseURL); got != base+"/.well-known/jwks.json" {
		t.Errorf("jwksURI %q", got)
	}
	ti.Spec.Issuer = "https://id.acme.example"
	if got := issuer(&ti, publicBaseURL); got != "https://id.acme.example" {
		t.Errorf("issuer %q", got)
	}
	if got := jwksURI(&ti, publicBaseURL); got != base+"/.well-known/jwks.json" {
		t.Errorf("jwksURI with a custom issuer %q", got)
	}
}

func TestRequeueAfter(t *testing.T) {
	cases := []struct {
		name string
		next time.Time
		want time.Duration
	}{
		{"nothing scheduled", time.Time{}, 0},
		{"later", t0.Add(90 * time.Second), 90 * time.Second},
		{"a nanosecond later", t0.Add(time.Nanosecond), time.Nanosecond},
		{"now", t0, time.Millisecond},
		{"past", t0.Add(-time.Hour), time.Millisecond},
	}
	for _, tc := range cases {
		if got := requeueAfter(tc.next, t0); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
