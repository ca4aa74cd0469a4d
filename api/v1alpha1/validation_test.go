package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const validSite = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"

// tenantIdentity builds the object as raw JSON fields, so a test can leave a
// field out entirely (a typed client would send its zero value).
func tenantIdentity(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": identityv1alpha1.GroupVersion.String(),
		"kind":       "TenantIdentity",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       spec,
	}}
	return u
}

// spec is a valid minimal spec with the given fields replaced; a nil value
// deletes the field.
func spec(overrides map[string]any) map[string]any {
	s := map[string]any{"org": "acme", "siteID": validSite}
	for k, v := range overrides {
		if v == nil {
			delete(s, k)
			continue
		}
		s[k] = v
	}
	return s
}

func TestInvalidTenantIdentitiesAreRefused(t *testing.T) {
	ns := env.Namespace(t, nil)
	keys := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name    string
		spec    map[string]any
		wantMsg string
	}{
		{"org missing", spec(map[string]any{"org": nil}), `spec.org: Required value`},
		{"org uppercase", spec(map[string]any{"org": "Acme"}), "org must be a lowercase DNS label"},
		{"org leading dash", spec(map[string]any{"org": "-acme"}), "org must be a lowercase DNS label"},
		{"org with dot", spec(map[string]any{"org": "acme.corp"}), "org must be a lowercase DNS label"},
		{"org too long", spec(map[string]any{"org": strings.Repeat("a", 64)}), "spec.org: Too long"},
		{"siteID missing", spec(map[string]any{"siteID": nil}), `spec.siteID: Required value`},
		{"siteID not a UUID", spec(map[string]any{"siteID": "site-1-of-acme-not-a-uuid-at-all-xx"}), "siteID must be a lowercase UUID"},
		{"siteID uppercase", spec(map[string]any{"siteID": strings.ToUpper(validSite)}), "siteID must be a lowercase UUID"},
		{"issuer not a URL", spec(map[string]any{"issuer": "not a url"}), "issuer must be an absolute https (or http) URL"},
		{"issuer ftp", spec(map[string]any{"issuer": "ftp://issuer.example.com"}), "issuer must be an absolute https (or http) URL"},
		{"issuer with query", spec(map[string]any{"issuer": "https://issuer.example.com/?a=b"}), "issuer must be an absolute https (or http) URL"},
		{"unknown algorithm", spec(map[string]any{"keys": keys("algorithm", "HS256")}), `spec.keys.algorithm: Unsupported value: "HS256"`},
		{"rsaKeySize with ES256", spec(map[string]any{"keys": keys("algorithm", "ES256", "rsaKeySize", int64(2048))}), "rsaKeySize is only valid with the RS* and PS* algorithms"},
		{"rsaKeySize with default algorithm", spec(map[string]any{"keys": keys("rsaKeySize", int64(3072))}), "rsaKeySize is only valid with the RS* and PS* algorithms"},
		{"rsaKeySize 1024", spec(map[string]any{"keys": keys("algorithm", "RS256", "rsaKeySize", int64(1024))}), `spec.keys.rsaKeySize: Unsupported value: 1024`},
		{"rotationPeriod not a duration", spec(map[string]any{"keys": keys("rotationPeriod", "monthly")}), "rotationPeriod must be a positive Go duration"},
		{"rotationPeriod in days", spec(map[string]any{"keys": keys("rotationPeriod", "30d")}), "rotationPeriod must be a positive Go duration"},
		{"prePublish zero", spec(map[string]any{"keys": keys("prePublish", "0s")}), "prePublish must be a positive Go duration"},
		{"overlap negative", spec(map[string]any{"keys": keys("overlap", "-1h")}), "overlap must be a positive Go duration"},
		{"tokenTTL empty", spec(map[string]any{"keys": keys("tokenTTL", "")}), "tokenTTL must be a positive Go duration"},
		{"overlap shorter than tokenTTL", spec(map[string]any{"keys": keys("overlap", "2h", "tokenTTL", "3h")}), "overlap must be at least tokenTTL"},
		// The defaults (tokenTTL 1h, prePublish 1h) apply before validation.
		{"overlap shorter than default tokenTTL", spec(map[string]any{"keys": keys("overlap", "30m")}), "overlap must be at least tokenTTL"},
		{"rotationPeriod not longer than default prePublish", spec(map[string]any{"keys": keys("rotationPeriod", "1h")}), "rotationPeriod must be longer than prePublish"},
		{"rotationPeriod shorter than prePublish", spec(map[string]any{"keys": keys("rotationPeriod", "5s", "prePublish", "10s")}), "rotationPeriod must be longer than prePublish"},
		{"duplicate revokedKeyIDs", spec(map[string]any{"revokedKeyIDs": []any{"abc", "abc"}}), `spec.revokedKeyIDs[1]: Duplicate value: "abc"`},
		{"revokedKeyID with bad characters", spec(map[string]any{"revokedKeyIDs": []any{"a b"}}), "spec.revokedKeyIDs[0]: Invalid value"},
		// At most 10 keys at once: ceil(overlap/rotationPeriod) Retired, one Active, one Next.
		{"more than 10 keys at once", spec(map[string]any{"keys": keys("rotationPeriod", "1h", "prePublish", "10m", "overlap", "8h1m")}), "overlap may be at most 8 times rotationPeriod"},
		{"key flood: second-scale period, long overlap", spec(map[string]any{"keys": keys("rotationPeriod", "2s", "prePublish", "1s", "overlap", "720h")}), "overlap may be at most 8 times rotationPeriod"},
		{"tokens without allowedAudiences", spec(map[string]any{"tokens": map[string]any{"defaultAudience": "a"}}), "spec.tokens.allowedAudiences: Required value"},
		{"tokens with no audience", spec(map[string]any{"tokens": map[string]any{"allowedAudiences": []any{}}}), "spec.tokens.allowedAudiences: Invalid value"},
		{"tokens with 17 audiences", spec(map[string]any{"tokens": map[string]any{"allowedAudiences": audiences(17)}}), "spec.tokens.allowedAudiences: Too many"},
		{"defaultAudience not allowed", spec(map[string]any{"tokens": map[string]any{"allowedAudiences": []any{"a", "b"}, "defaultAudience": "c"}}), "defaultAudience must be one of allowedAudiences"},
		{"duplicate audience", spec(map[string]any{"tokens": map[string]any{"allowedAudiences": []any{"a", "a"}}}), `spec.tokens.allowedAudiences[1]: Duplicate value: "a"`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tenantIdentity(ns, "invalid-"+string(rune('a'+i)), tc.spec)
			err := env.Client.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("accepted; want refusal with %q", tc.wantMsg)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error does not say %q:\n%v", tc.wantMsg, err)
			}
		})
	}
}

// audiences returns n distinct audience values.
func audiences(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = "aud-" + string(rune('a'+i))
	}
	return out
}

// The name is the value of the tenant-identity label on every object
// signet makes for it: a longer name would be accepted and then never get a
// status, so admission refuses it.
func TestNameIsAtMost63Characters(t *testing.T) {
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	long := strings.Repeat("n", 64)
	err := env.Client.Create(ctx, tenantIdentity(ns, long, spec(nil)))
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name may have at most 63 characters") {
		t.Fatalf("a 64-character name: got %v, want refusal", err)
	}
	if err := env.Client.Create(ctx, tenantIdentity(ns, long[:63], spec(nil))); err != nil {
		t.Fatalf("a 63-character name refused: %v", err)
	}
}

func TestValidTenantIdentitiesGetDefaults(t *testing.T) {
	ns := env.Namespace(t, nil)
	cases := []struct {
		name string
		spec map[string]any
		want identityv1alpha1.KeyPolicy
	}{
		{
			name: "minimal",
			spec: spec(nil),
			want: identityv1alpha1.KeyPolicy{Algorithm: "ES256", RotationPeriod: "720h", PrePublish: "1h", Overlap: "24h", TokenTTL: "1h"},
		},
		{
			name: "second-scale rotation",
			spec: spec(map[string]any{"keys": map[string]any{"rotationPeriod": "6s", "prePublish": "2s", "overlap": "3s", "tokenTTL": "2500ms"}}),
			want: identityv1alpha1.KeyPolicy{Algorithm: "ES256", RotationPeriod: "6s", PrePublish: "2s", Overlap: "3s", TokenTTL: "2500ms"},
		},
		{
			name: "RSA with size and certificate",
			spec: spec(map[string]any{
				"issuer": "https://id.acme.example/dc1",
				"keys":   map[string]any{"algorithm": "PS384", "rsaKeySize": int64(4096), "certificate": map[string]any{"enabled": true}, "rotationPeriod": "3h30m"},
			}),
			want: identityv1alpha1.KeyPolicy{Algorithm: "PS384", RSAKeySize: ptr(int32(4096)), RotationPeriod: "3h30m", PrePublish: "1h", Overlap: "24h", TokenTTL: "1h",
				Certificate: identityv1alpha1.CertificatePolicy{Enabled: true}},
		},
		{
			name: "exactly 10 keys at once",
			spec: spec(map[string]any{"keys": map[string]any{"rotationPeriod": "1h", "prePublish": "10m", "overlap": "8h"}}),
			want: identityv1alpha1.KeyPolicy{Algorithm: "ES256", RotationPeriod: "1h", PrePublish: "10m", Overlap: "8h", TokenTTL: "1h"},
		},
		{
			name: "token API, 16 audiences",
			spec: spec(map[string]any{"tokens": map[string]any{"allowedAudiences": audiences(16), "defaultAudience": "aud-c", "subjectPrefix": "spiffe://acme.example/"}}),
			want: identityv1alpha1.KeyPolicy{Algorithm: "ES256", RotationPeriod: "720h", PrePublish: "1h", Overlap: "24h", TokenTTL: "1h"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "valid-" + string(rune('a'+i))
			if err := env.Client.Create(context.Background(), tenantIdentity(ns, name, tc.spec)); err != nil {
				t.Fatalf("refused: %v", err)
			}
			var got identityv1alpha1.TenantIdentity
			if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &got); err != nil {
				t.Fatal(err)
			}
			if !keyPolicyEqual(got.Spec.Keys, tc.want) {
				t.Fatalf("keys after defaulting = %+v, want %+v", got.Spec.Keys, tc.want)
			}
			if got.Spec.Suspend {
				t.Fatal("suspend defaulted to true")
			}
			if e := got.Spec.SigningSecret.Enabled; e == nil || !*e {
				t.Fatalf("signingSecret.enabled after defaulting = %v, want true", e)
			}
		})
	}
}

func TestOrgAndSiteAreImmutable(t *testing.T) {
	ns := env.Namespace(t, nil)
	ctx := context.Background()
	if err := env.Client.Create(ctx, tenantIdentity(ns, "fixed", spec(nil))); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		field, value, wantMsg string
	}{
		{"org", "globex", "org is immutable"},
		{"siteID", "00000000-0000-4000-8000-000000000000", "siteID is immutable"},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			var ti identityv1alpha1.TenantIdentity
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fixed"}, &ti); err != nil {
				t.Fatal(err)
			}
			if tc.field == "org" {
				ti.Spec.Org = tc.value
			} else {
				ti.Spec.SiteID = tc.value
			}
			err := env.Client.Update(ctx, &ti)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("update of %s: got %v, want refusal %q", tc.field, err, tc.wantMsg)
			}
		})
	}
	// Other fields stay editable.
	var ti identityv1alpha1.TenantIdentity
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fixed"}, &ti); err != nil {
		t.Fatal(err)
	}
	ti.Spec.RotationTrigger = "now"
	ti.Spec.Keys.Algorithm = "EdDSA"
	if err := env.Client.Update(ctx, &ti); err != nil {
		t.Fatalf("editing mutable fields refused: %v", err)
	}
}

func keyPolicyEqual(a, b identityv1alpha1.KeyPolicy) bool {
	if (a.RSAKeySize == nil) != (b.RSAKeySize == nil) || (a.RSAKeySize != nil && *a.RSAKeySize != *b.RSAKeySize) {
		return false
	}
	a.RSAKeySize, b.RSAKeySize = nil, nil
	return a == b
}

func ptr[T any](v T) *T { return &v }
