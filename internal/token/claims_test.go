package token

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/signet-dev/signet/api/v1alpha1"
)

func TestPolicyOf(t *testing.T) {
	tokens := &v1alpha1.TokenPolicy{AllowedAudiences: []string{"a"}}
	cases := []struct {
		name    string
		tokens  *v1alpha1.TokenPolicy
		ttl     string
		ok      bool
		wantTTL time.Duration
		wantErr bool
	}{
		{"no spec.tokens", nil, "1h", false, 0, false},
		{"tokenTTL", tokens, "90s", true, 90 * time.Second, false},
		{"tokenTTL unset: the CRD default", tokens, "", true, time.Hour, false},
		{"tokenTTL unparsable", tokens, "soon", true, 0, true},
		{"tokenTTL zero", tokens, "0s", true, 0, true},
	}
	for _, tc := range cases {
		ti := &v1alpha1.TenantIdentity{Spec: v1alpha1.TenantIdentitySpec{Tokens: tc.tokens, Keys: v1alpha1.KeyPolicy{TokenTTL: tc.ttl}}}
		p, ok, err := policyOf(ti)
		if ok != tc.ok || (err != nil) != tc.wantErr || (!tc.wantErr && ok && p.maxTTL != tc.wantTTL) {
			t.Errorf("%s: policy %+v, ok %v, err %v", tc.name, p, ok, err)
		}
	}
}

func TestAudiences(t *testing.T) {
	withDefault := policy{allowed: []string{"api", "db"}, defaultAudience: "api"}
	noDefault := policy{allowed: []string{"api", "db"}}
	cases := []struct {
		name string
		p    policy
		req  []string
		want []string
		err  *apiError
	}{
		{"none: the default", withDefault, nil, []string{"api"}, nil},
		{"empty list: the default", withDefault, []string{}, []string{"api"}, nil},
		{"none and no default", noDefault, nil, nil, errNoAudience},
		{"one allowed", noDefault, []string{"db"}, []string{"db"}, nil},
		{"all allowed", noDefault, []string{"db", "api"}, []string{"db", "api"}, nil},
		{"one not allowed", withDefault, []string{"api", "other"}, nil, errAudienceNotAllowed},
		{"empty string", withDefault, []string{""}, nil, errAudienceNotAllowed},
		{"case matters", withDefault, []string{"API"}, nil, errAudienceNotAllowed},
	}
	for _, tc := range cases {
		got, e := tc.p.audiences(tokenRequest{audiences: tc.req})
		if e != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, e, tc.want, tc.err)
		}
	}
}

func TestLifetime(t *testing.T) {
	p := policy{maxTTL: 10 * time.Minute}
	cases := []struct {
		seconds int64
		want    time.Duration
		tooLong bool
	}{
		{0, 10 * time.Minute, false}, // not given: tokenTTL
		{1, time.Second, false},
		{600, 10 * time.Minute, false},
		{601, 0, true},
		{1 << 62, 0, true}, // would overflow a Duration
	}
	for _, tc := range cases {
		got, e := p.lifetime(tokenRequest{expirationSeconds: tc.seconds})
		if got != tc.want || (e != nil) != tc.tooLong {
			t.Errorf("expirationSeconds %d: %v, %v", tc.seconds, got, e)
		}
		if e != nil && e.message != "bad request: expirationSeconds is above the tenant identity's spec.keys.tokenTTL (600 seconds)" {
			t.Errorf("expirationSeconds %d: message %q", tc.seconds, e.message)
		}
	}
}

func TestSubject(t *testing.T) {
	if got := (policy{}).subject("tenant-acme", "builder"); got != "system:serviceaccount:tenant-acme:builder" {
		t.Errorf("no prefix: %q", got)
	}
	if got := (policy{subjectPrefix: "spiffe://acme.example/"}).subject("tenant-acme", "builder"); got != "spiffe://acme.example/ns/tenant-acme/sa/builder" {
		t.Errorf("prefix: %q", got)
	}
}

func TestNewClaims(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 900_000_000, time.UTC)
	c := newClaims("https://iss", "sub", []string{"a"}, now, 90*time.Second, "id")
	want := claims{Issuer: "https://iss", Subject: "sub", Audience: []string{"a"},
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Unix() + 90, ID: "id"}
	if !slices.Equal(c.Audience, want.Audience) || c.Issuer != want.Issuer || c.Subject != want.Subject ||
		c.IssuedAt != want.IssuedAt || c.NotBefore != want.NotBefore || c.Expiry != want.Expiry || c.ID != want.ID {
		t.Fatalf("claims %+v, want %+v", c, want)
	}
	// exp is rounded down: never later than now + ttl.
	if time.Unix(c.Expiry, 0).After(now.Add(90 * time.Second)) {
		t.Errorf("exp %d is after now+ttl", c.Expiry)
	}
	// aud is a list even with one audience.
	b, _ := json.Marshal(c)
	if want := `{"iss":"https://iss","sub":"sub","aud":["a"],"iat":1796119200,"nbf":1796119200,"exp":1796119290,"jti":"id"}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestNewJTI(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		j := newJTI()
		if len(j) != 22 || seen[j] {
			t.Fatalf("jti %q (length %d, seen before %v)", j, len(j), seen[j])
		}
		seen[j] = true
	}
}
