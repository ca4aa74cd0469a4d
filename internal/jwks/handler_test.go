package jwks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// servedFixture is a synced server with two tenants: acme/siteA serves
// three keys (Active ES256, Next RS256, Retired EdDSA); evil/siteA stores a
// private key and must answer 502.
type servedFixture struct {
	s                     *Server
	active, next, retired *testKey
	leaked                *testKey
}

func newServedFixture(t *testing.T) *servedFixture {
	t.Helper()
	f := &servedFixture{
		s:      testServer(t, Options{PublicBaseURL: "https://jwks.example/", MaxCacheAge: 5 * time.Minute}),
		active: genKey(t, "ES256", 0), next: genKey(t, "RS256", 0), retired: genKey(t, "EdDSA", 0),
		leaked: genKey(t, "ES384", 0),
	}
	good := newTI("tenant-acme", "acme", "acme", siteA, epoch, metav1.ConditionTrue)
	f.s.put(t, good, jwksConfigMap(good, "3", f.active, f.next, f.retired))
	bad := newTI("tenant-evil", "evil", "evil", siteA, epoch, metav1.ConditionTrue)
	cm := jwksConfigMap(bad, "1", f.leaked)
	cm.Data[f.leaked.KID+".json"] = f.leaked.private
	f.s.put(t, bad, cm)
	f.s.synced.Store(true)
	return f
}

func TestServeDocuments(t *testing.T) {
	f := newServedFixture(t)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for rt := range numDocs {
			t.Run(method+" "+routeNames[rt], func(t *testing.T) {
				rec := get(f.s, method, docPath("acme", siteA, rt))
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				want := f.s.store.get(tenantKey{"acme", siteA}).docs[rt]
				h := rec.Header()
				for name, value := range map[string]string{
					"Content-Type":           "application/json",
					"Content-Length":         strconv.Itoa(len(want.body)),
					"Cache-Control":          "public, max-age=300",
					"Etag":                   want.etag(),
					"X-Content-Type-Options": "nosniff",
				} {
					if got := h.Get(name); got != value {
						t.Errorf("%s = %q, want %q", name, got, value)
					}
				}
				if method == http.MethodHead && rec.Body.Len() != 0 {
					t.Errorf("HEAD wrote a body")
				}
				if method == http.MethodGet && rec.Body.String() != string(want.body) {
					t.Errorf("body differs from the stored document")
				}
			})
		}
	}
}

func TestServedKeyOrder(t *testing.T) {
	f := newServedFixture(t)
	for _, rt := range []route{routeJWKS, routeSPIFFE} {
		rec := get(f.s, http.MethodGet, docPath("acme", siteA, rt))
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.KeyID)
		}
		want := []string{f.active.KID, f.next.KID, f.retired.KID}
		if fmt.Sprint(kids) != fmt.Sprint(want) {
			t.Errorf("%s: kids %v, want Active, Next, Retired %v", routeNames[rt], kids, want)
		}
	}
}

// TestServedJWKSVerifiesTokens signs a JWS with each published key and
// verifies it with go-jose against the served JWKS, picking the key by kid
// as a verifier does.
func TestServedJWKSVerifiesTokens(t *testing.T) {
	f := newServedFixture(t)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(get(f.s, http.MethodGet, docPath("acme", siteA, routeJWKS)).Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range []*testKey{f.active, f.next, f.retired} {
		t.Run(k.Algorithm, func(t *testing.T) {
			compact, alg := signCompact(t, k, `{"iss":"acme"}`)
			parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{alg})
			if err != nil {
				t.Fatal(err)
			}
			found := set.Key(parsed.Signatures[0].Header.KeyID)
			if len(found) != 1 {
				t.Fatalf("kid %s: %d keys in the served set", k.KID, len(found))
			}
			payload, err := parsed.Verify(found[0])
			if err != nil || string(payload) != `{"iss":"acme"}` {
				t.Errorf("verify: %v", err)
			}
		})
	}
}

func TestIfNoneMatch(t *testing.T) {
	f := newServedFixture(t)
	path := docPath("acme", siteA, routeJWKS)
	etag := f.s.store.get(tenantKey{"acme", siteA}).docs[routeJWKS].etag()
	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"exact", []string{etag}, http.StatusNotModified},
		{"in a list", []string{`"nope", ` + etag + `, "other"`}, http.StatusNotModified},
		{"in a second field", []string{`"nope"`, etag}, http.StatusNotModified},
		{"weak form", []string{"W/" + etag}, http.StatusNotModified},
		{"star", []string{"*"}, http.StatusNotModified},
		{"list without spaces", []string{`"a",` + etag}, http.StatusNotModified},
		{"stale tag", []string{`"stale"`}, http.StatusOK},
		{"unquoted tag", []string{strings.Trim(etag, `"`)}, http.StatusOK},
		{"tag with a comma", []string{`"a,` + strings.Trim(etag, `"`) + `"`}, http.StatusOK},
		{"empty", []string{""}, http.StatusOK},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				var hdr []string
				for _, v := range tt.values {
					hdr = append(hdr, "If-None-Match", v)
				}
				rec := get(f.s, method, path, hdr...)
				if rec.Code != tt.want {
					t.Fatalf("status %d, want %d", rec.Code, tt.want)
				}
				if rec.Header().Get("Etag") != etag || rec.Header().Get("Cache-Control") != "public, max-age=300" {
					t.Errorf("ETag %q, Cache-Control %q", rec.Header().Get("Etag"), rec.Header().Get("Cache-Control"))
				}
				if tt.want == http.StatusNotModified && rec.Body.Len() != 0 {
					t.Errorf("304 with a body")
				}
			})
		}
	}
}

func TestETagChangesWithKeys(t *testing.T) {
	f := newServedFixture(t)
	path := docPath("acme", siteA, routeJWKS)
	before := get(f.s, http.MethodGet, path).Header().Get("Etag")

	ti := newTI("tenant-acme", "acme", "acme", siteA, epoch, metav1.ConditionTrue)
	f.s.put(t, ti, jwksConfigMap(ti, "4", f.next, f.retired)) // rotation: Next became Active
	rec := get(f.s, http.MethodGet, path, "If-None-Match", before)
	if rec.Code != http.StatusOK {
		t.Fatalf("old ETag still matches: %d", rec.Code)
	}
	if after := rec.Header().Get("Etag"); after == before || after == "" {
		t.Errorf("ETag %q unchanged", after)
	}
	if strings.Contains(rec.Body.String(), f.active.KID) {
		t.Errorf("removed key still served")
	}
}

func TestErrors(t *testing.T) {
	f := newServedFixture(t)
	unsynced := testServer(t, Options{})
	jwks := docPath("acme", siteA, routeJWKS)
	tests := []struct {
		name    string
		s       *Server
		method  string
		path    string
		code    int
		message string // a part of the message
	}{
		{"unknown org", f.s, "GET", docPath("nobody", siteA, routeJWKS), 404, "no published tenant identity"},
		{"unknown site", f.s, "GET", docPath("acme", siteB, routeDiscovery), 404, "no published tenant identity"},
		{"unknown document", f.s, "GET", "/v2/org/acme/nico/site/" + siteA + "/.well-known/other", 404, "not a tenant identity document"},
		{"root", f.s, "GET", "/", 404, "not a tenant identity document"},
		{"trailing slash", f.s, "GET", jwks + "/", 404, "not a tenant identity document"},
		{"base path only", f.s, "GET", "/v2/org/acme/nico/site/" + siteA, 404, "not a tenant identity document"},
		{"empty org", f.s, "GET", docPath("", siteA, routeJWKS), 404, "not a tenant identity document"},
		{"extra segment", f.s, "GET", "/v2/org/acme/x/nico/site/" + siteA + "/.well-known/jwks.json", 404, "not a tenant identity document"},
		{"uppercase siteID", f.s, "GET", docPath("acme", strings.ToUpper(siteA), routeJWKS), 400, "malformed siteID"},
		{"short siteID", f.s, "GET", docPath("acme", "7d9f3c1e", routeSPIFFE), 400, "malformed siteID"},
		{"siteID without dashes", f.s, "GET", docPath("acme", strings.ReplaceAll(siteA, "-", "0")[:36], routeJWKS), 400, "malformed siteID"},
		{"POST", f.s, "POST", jwks, 405, "method not allowed"},
		{"PUT", f.s, "PUT", jwks, 405, "method not allowed"},
		{"DELETE", f.s, "DELETE", jwks, 405, "method not allowed"},
		{"OPTIONS", f.s, "OPTIONS", jwks, 405, "method not allowed"},
		{"stored private key", f.s, "GET", docPath("evil", siteA, routeJWKS), 502, "invalid"},
		{"stored private key, SPIFFE", f.s, "GET", docPath("evil", siteA, routeSPIFFE), 502, "invalid"},
		{"stored private key, discovery", f.s, "GET", docPath("evil", siteA, routeDiscovery), 502, "invalid"},
		{"not synced", unsynced, "GET", jwks, 503, "has not synced"},
		{"not synced, discovery", unsynced, "GET", docPath("acme", siteA, routeDiscovery), 503, "has not synced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(tt.s, tt.method, tt.path)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Cache-Control") != "no-store" || h.Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("headers %v", h)
			}
			if allow := h.Get("Allow"); (tt.code == 405) != (allow == "GET, HEAD") {
				t.Errorf("Allow = %q", allow)
			}
			e := decode[nicoError](t, rec.Body.Bytes())
			if e.Source != "nico" || string(e.Data) != "null" || !strings.Contains(e.Message, tt.message) {
				t.Errorf("body %s, want message containing %q", rec.Body, tt.message)
			}
			if strings.Contains(rec.Body.String(), f.leaked.d) {
				t.Errorf("response carries the private key")
			}
		})
	}
}

// TestBadTenantIsolated: one org/site with a private key answers 502 on
// every document and never shows the key; the other keeps serving.
func TestBadTenantIsolated(t *testing.T) {
	f := newServedFixture(t)
	for rt := range numDocs {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			bad := get(f.s, method, docPath("evil", siteA, rt), "If-None-Match", "*")
			if bad.Code != http.StatusBadGateway || strings.Contains(bad.Body.String(), f.leaked.d) ||
				strings.Contains(bad.Body.String(), f.leaked.KID) {
				t.Errorf("%s %s: %d %s", method, routeNames[rt], bad.Code, bad.Body)
			}
			if good := get(f.s, method, docPath("acme", siteA, rt)); good.Code != http.StatusOK {
				t.Errorf("%s %s: healthy tenant got %d", method, routeNames[rt], good.Code)
			}
		}
	}
}

func TestMaxAgeHeader(t *testing.T) {
	tests := []struct {
		name       string
		prePublish string
		max        time.Duration
		want       string
	}{
		{"max-cache-age binds", "1h", 5 * time.Minute, "public, max-age=300"},
		{"half of prePublish binds", "45s", 5 * time.Minute, "public, max-age=22"},
		{"no caching", "1h", 0, "public, max-age=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, Options{MaxCacheAge: tt.max})
			s.synced.Store(true)
			ti := newTI("ns", "x", "acme", siteA, epoch, metav1.ConditionTrue)
			ti.Spec.Keys.PrePublish = tt.prePublish
			s.put(t, ti, jwksConfigMap(ti, "1", genKey(t, "ES256", 0)))
			for rt := range numDocs {
				rec := get(s, http.MethodGet, docPath("acme", siteA, rt))
				if got := rec.Header().Get("Cache-Control"); got != tt.want {
					t.Errorf("%s: Cache-Control %q, want %q", routeNames[rt], got, tt.want)
				}
			}
			set := decode[keySet](t, get(s, http.MethodGet, docPath("acme", siteA, routeSPIFFE)).Body.Bytes())
			hint, _ := strconv.ParseInt(strings.TrimPrefix(tt.want, "public, max-age="), 10, 64)
			if *set.RefreshHint != max(hint, 1) {
				t.Errorf("spiffe_refresh_hint %d, want %d", *set.RefreshHint, max(hint, 1))
			}
		})
	}
}

func TestServedSPIFFEAndDiscovery(t *testing.T) {
	f := newServedFixture(t)
	set := decode[keySet](t, get(f.s, http.MethodGet, docPath("acme", siteA, routeSPIFFE)).Body.Bytes())
	if *set.Sequence != 3 || *set.RefreshHint != 300 || len(set.Keys) != 3 {
		t.Errorf("spiffe: sequence %d, hint %d, %d keys", *set.Sequence, *set.RefreshHint, len(set.Keys))
	}
	for _, k := range set.Keys {
		if k["use"] != "jwt-svid" {
			t.Errorf("spiffe key use %v", k["use"])
		}
	}
	d := decode[discovery](t, get(f.s, http.MethodGet, docPath("acme", siteA, routeDiscovery)).Body.Bytes())
	base := "https://jwks.example/v2/org/acme/nico/site/" + siteA
	if d.Issuer != base || d.JWKSURI != base+"/.well-known/jwks.json" || d.SPIFFEJWKSURI != base+"/.well-known/spiffe/jwks.json" ||
		fmt.Sprint(d.Algorithms) != "[ES256 RS256 EdDSA]" {
		t.Errorf("discovery %+v", d)
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path      string
		org, site string
		rt        route
		ok        bool
	}{
		{"/v2/org/acme/nico/site/s/.well-known/jwks.json", "acme", "s", routeJWKS, true},
		{"/v2/org/acme/nico/site/s/.well-known/spiffe/jwks.json", "acme", "s", routeSPIFFE, true},
		{"/v2/org/acme/nico/site/s/.well-known/openid-configuration", "acme", "s", routeDiscovery, true},
		{"/v2/org/acme/nico/site/s/.well-known/openid-configuration/", "", "", 0, false},
		{"/v2/org/acme/nico/site//.well-known/jwks.json", "", "", 0, false},
		{"/v2/org//nico/site/s/.well-known/jwks.json", "", "", 0, false},
		{"/v2/org/acme/nico/sites/s/.well-known/jwks.json", "", "", 0, false},
		{"/v1/org/acme/nico/site/s/.well-known/jwks.json", "", "", 0, false},
		{"/v2/org/acme", "", "", 0, false},
		{"", "", "", 0, false},
	}
	for _, tt := range tests {
		org, site, rt, ok := parsePath(tt.path)
		if org != tt.org || site != tt.site || rt != tt.rt || ok != tt.ok {
			t.Errorf("parsePath(%q) = %q %q %d %v", tt.path, org, site, rt, ok)
		}
	}
}

func TestIsLowerUUID(t *testing.T) {
	for s, want := range map[string]bool{
		siteA: true, siteB: true,
		strings.ToUpper(siteA): false, siteA[:35]: false, siteA + "0": false,
		"7d9f3c1e-5b2a-4c8e-9f10_3a4b5c6d7e8f": false, "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8g": false,
		"": false,
	} {
		if got := isLowerUUID(s); got != want {
			t.Errorf("isLowerUUID(%q) = %v", s, got)
		}
	}
}

func TestCodeIndex(t *testing.T) {
	seen := map[int]bool{}
	for _, code := range statusCodes {
		i := codeIndex(code)
		if statusCodes[i] != code || seen[i] {
			t.Errorf("codeIndex(%d) = %d", code, i)
		}
		seen[i] = true
	}
	for _, e := range []*errorResponse{errUnknownPath, errNotServed, errBadSiteID, errMethod, errBadKeys, errNotSynced} {
		if statusCodes[codeIndex(e.code)] != e.code {
			t.Errorf("error status %d has no metric slot", e.code)
		}
	}
}
