package jwks

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/signet-dev/signet/internal/keys"
)

func input(ks ...*testKey) tenantInput {
	in := tenantInput{
		Org: "acme", SiteID: siteA, Issuer: "https://issuer.example/acme",
		BaseURL: "https://jwks.example", MaxAge: 300, Sequence: 7,
	}
	for _, k := range ks {
		in.Keys = append(in.Keys, storedKey{Name: k.KID + ".json", JSON: []byte(k.public)})
	}
	return in
}

// keySet is the served shape of both key sets.
type keySet struct {
	Keys        []map[string]any `json:"keys"`
	RefreshHint *int64           `json:"spiffe_refresh_hint"`
	Sequence    *uint64          `json:"spiffe_sequence"`
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, body)
	}
	return v
}

func TestBuildEntryKeySets(t *testing.T) {
	es, rs, ed := genKey(t, "ES256", 0), genKey(t, "RS256", 0), genKey(t, "EdDSA", 0)
	e, err := buildEntry(input(es, rs, ed))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rt     route
		use    string
		spiffe bool
	}{{routeJWKS, "sig", false}, {routeSPIFFE, "jwt-svid", true}} {
		t.Run(routeNames[tt.rt], func(t *testing.T) {
			set := decode[keySet](t, e.docs[tt.rt].body)
			var kids []string
			for _, k := range set.Keys {
				kids = append(kids, k["kid"].(string))
				if k["use"] != tt.use {
					t.Errorf("key %v: use = %v, want %q", k["kid"], k["use"], tt.use)
				}
				if k["kty"] == nil || k["alg"] == nil {
					t.Errorf("key %v lacks kty or alg", k["kid"])
				}
			}
			if want := []string{es.KID, rs.KID, ed.KID}; !slices.Equal(kids, want) {
				t.Errorf("kids = %v, want the stored order %v", kids, want)
			}
			if tt.spiffe {
				if set.Sequence == nil || *set.Sequence != 7 || set.RefreshHint == nil || *set.RefreshHint != 300 {
					t.Errorf("spiffe members = %v, %v; want 7, 300", set.Sequence, set.RefreshHint)
				}
			} else if set.Sequence != nil || set.RefreshHint != nil {
				t.Errorf("jwks.json carries spiffe members")
			}
			// A real library reads the set the same way.
			var jset jose.JSONWebKeySet
			if err := json.Unmarshal(e.docs[tt.rt].body, &jset); err != nil || len(jset.Keys) != 3 {
				t.Fatalf("go-jose: %v, %d keys", err, len(jset.Keys))
			}
			for _, k := range jset.Keys {
				if !k.IsPublic() || !k.Valid() {
					t.Errorf("go-jose: key %s not a valid public key", k.KeyID)
				}
			}
		})
	}
}

func TestBuildEntrySPIFFERefreshHintAtLeastOne(t *testing.T) {
	in := input(genKey(t, "ES256", 0))
	in.MaxAge = 0
	e, err := buildEntry(in)
	if err != nil {
		t.Fatal(err)
	}
	if set := decode[keySet](t, e.docs[routeSPIFFE].body); *set.RefreshHint != 1 {
		t.Errorf("spiffe_refresh_hint = %d, want 1", *set.RefreshHint)
	}
	if got := e.docs[routeJWKS].vals[1]; got != "public, max-age=0" {
		t.Errorf("Cache-Control = %q", got)
	}
}

func TestBuildEntryDiscovery(t *testing.T) {
	es0, rs, es1 := genKey(t, "ES256", 0), genKey(t, "RS256", 0), genKey(t, "ES256", 1)
	e, err := buildEntry(input(es0, rs, es1))
	if err != nil {
		t.Fatal(err)
	}
	got := decode[discovery](t, e.docs[routeDiscovery].body)
	base := "https://jwks.example/v2/org/acme/nico/site/" + siteA
	want := discovery{
		Issuer:        "https://issuer.example/acme",
		JWKSURI:       base + "/.well-known/jwks.json",
		SPIFFEJWKSURI: base + "/.well-known/spiffe/jwks.json",
		Algorithms:    []string{"ES256", "RS256"}, // distinct, in key order
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
	}
	if got.Issuer != want.Issuer || got.JWKSURI != want.JWKSURI || got.SPIFFEJWKSURI != want.SPIFFEJWKSURI ||
		!slices.Equal(got.Algorithms, want.Algorithms) || !slices.Equal(got.ResponseTypes, want.ResponseTypes) ||
		!slices.Equal(got.SubjectTypes, want.SubjectTypes) {
		t.Errorf("discovery =\n%+v\nwant\n%+v", got, want)
	}
}

func TestBuildEntryEmptyKeySet(t *testing.T) {
	e, err := buildEntry(input())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.docs[routeJWKS].body); got != `{"keys":[]}` {
		t.Errorf("jwks = %s", got)
	}
	if d := decode[discovery](t, e.docs[routeDiscovery].body); d.Algorithms == nil {
		t.Errorf("algorithms is null, want []")
	}
}

func TestBuildEntryRefusesBadKeys(t *testing.T) {
	k := genKey(t, "ES256", 0)
	other := genKey(t, "ES256", 1)
	rsa := genKey(t, "RS256", 0)
	tests := []struct {
		name string
		key  storedKey
	}{
		{"private EC key (d)", storedKey{k.KID + ".json", []byte(k.private)}},
		{"private RSA key (d p q dp dq qi)", storedKey{rsa.KID + ".json", []byte(rsa.private)}},
		{"symmetric key", storedKey{"sym.json", []byte(`{"kty":"oct","kid":"sym","alg":"HS256","k":"c2VjcmV0"}`)}},
		{"malformed JSON", storedKey{k.KID + ".json", []byte(`{"kty":`)}},
		{"not an object", storedKey{k.KID + ".json", []byte(`[1]`)}},
		{"name is another kid", storedKey{other.KID + ".json", []byte(k.public)}},
		{"name without .json", storedKey{k.KID, []byte(k.public)}},
		{"kid not the thumbprint", storedKey{"abc.json", []byte(strings.Replace(k.public, k.KID, "abc", 1))}},
		{"use enc", storedKey{k.KID + ".json", []byte(strings.Replace(k.public, `"use":"sig"`, `"use":"enc"`, 1))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(other)
			in.Keys = append(in.Keys, tt.key)
			e, err := buildEntry(in)
			if err == nil || e != nil {
				t.Fatalf("buildEntry accepted it")
			}
			for _, secret := range []string{k.d, rsa.d, "c2VjcmV0"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes private material", err)
				}
			}
		})
	}
}

func TestBuildEntryDropsUnknownMembers(t *testing.T) {
	k := genKey(t, "ES256", 0)
	var m map[string]any
	_ = json.Unmarshal([]byte(k.public), &m)
	m["key_ops"] = []string{"verify"}
	m["secretish"] = "should not be relayed"
	raw, _ := json.Marshal(m)
	e, err := buildEntry(tenantInput{Org: "acme", SiteID: siteA, Keys: []storedKey{{k.KID + ".json", raw}}})
	if err != nil {
		t.Fatal(err)
	}
	body := string(e.docs[routeJWKS].body)
	if strings.Contains(body, "key_ops") || strings.Contains(body, "secretish") {
		t.Errorf("unknown members relayed: %s", body)
	}
}

func TestBuildEntryKeepsCertificateMembers(t *testing.T) {
	m, err := keys.Generate("ES256", 0, &keys.CertOptions{
		CommonName: "signet test", NotBefore: epoch, NotAfter: epoch.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := m.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	e, err := buildEntry(tenantInput{Org: "acme", SiteID: siteA, Keys: []storedKey{{m.KID + ".json", pub}}})
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.docs[routeJWKS].body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || len(set.Keys[0].Certificates) != 1 || len(set.Keys[0].CertificateThumbprintSHA256) != 32 {
		t.Errorf("x5c / x5t#S256 not relayed: %s", e.docs[routeJWKS].body)
	}
}

func TestEntityTag(t *testing.T) {
	a, b := entityTag([]byte("a")), entityTag([]byte("b"))
	if a == b || a != entityTag([]byte("a")) {
		t.Errorf("ETags: %s %s", a, b)
	}
	if len(a) != 26 || a[0] != '"' || a[len(a)-1] != '"' || strings.ContainsAny(a[1:len(a)-1], `"+/= `) {
		t.Errorf("ETag %s is not a quoted base64url strong tag", a)
	}
}

func TestBuildEntryDeterministic(t *testing.T) {
	in := input(genKey(t, "ES256", 0), genKey(t, "RS256", 0))
	e1, _ := buildEntry(in)
	e2, _ := buildEntry(in)
	if !e1.sameAs(e2) {
		t.Errorf("same input, different documents")
	}
	in.Sequence++
	e3, _ := buildEntry(in)
	if e1.sameAs(e3) || e1.docs[routeJWKS].etag() != e3.docs[routeJWKS].etag() {
		t.Errorf("a new sequence must change only the SPIFFE document")
	}
}

func TestEntrySameAs(t *testing.T) {
	e, _ := buildEntry(input(genKey(t, "ES256", 0)))
	in := input(genKey(t, "ES256", 0))
	in.MaxAge = 1
	shorter, _ := buildEntry(in)
	tests := []struct {
		name string
		a, b *entry
		want bool
	}{
		{"nil nil", nil, nil, true},
		{"nil entry", nil, e, false},
		{"bad bad", badEntry, &entry{bad: true}, true},
		{"bad entry", badEntry, e, false},
		{"same", e, e, true},
		{"max-age differs", e, shorter, false},
	}
	for _, tt := range tests {
		if got := tt.a.sameAs(tt.b); got != tt.want {
			t.Errorf("%s: sameAs = %v, want %v", tt.name, got, tt.want)
		}
	}
}
