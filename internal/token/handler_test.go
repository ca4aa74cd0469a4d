package token

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
)

// Every status code the handler writes, each for the reason docs/design.md
// gives, with a NICo error body that names the rule broken.
func TestStatusCodes(t *testing.T) {
	type req struct{ method, path, bearer, body string }
	post := func(f *fixture, body string) req { return req{http.MethodPost, testPath, f.bearer, body} }
	cases := []struct {
		name   string
		setup  func(f *fixture) req
		code   int
		err    *apiError
		header map[string]string
	}{
		{"200", func(f *fixture) req { return post(f, "") }, 200, nil, map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"}},
		{"404 another document", func(f *fixture) req {
			return req{http.MethodPost, strings.TrimSuffix(testPath, "token") + ".well-known/jwks.json", f.bearer, ""}
		}, 404, errUnknownPath, nil},
		{"404 not a NICo path", func(f *fixture) req { return req{http.MethodPost, "/token", f.bearer, ""} }, 404, errUnknownPath, nil},
		{"405 GET", func(f *fixture) req { return req{http.MethodGet, testPath, f.bearer, ""} }, 405, errMethod, map[string]string{"Allow": "POST"}},
		{"405 PUT", func(f *fixture) req { return req{http.MethodPut, testPath, f.bearer, "{}"} }, 405, errMethod, map[string]string{"Allow": "POST"}},
		{"400 malformed siteID", func(f *fixture) req {
			return req{http.MethodPost, "/v2/org/acme/nico/site/7D9F3C1E-5B2A-4C8E-9F10-3A4B5C6D7E8F/token", f.bearer, ""}
		}, 400, errBadSiteID, nil},
		{"503 not synced", func(f *fixture) req { f.pubs.synced = false; return post(f, "") }, 503, errNotSynced, map[string]string{"Retry-After": "1"}},
		{"401 no Authorization", func(f *fixture) req { return req{http.MethodPost, testPath, "", ""} }, 401, errUnauthenticated,
			map[string]string{"Www-Authenticate": `Bearer realm="signet"`}},
		{"401 token the API server refuses", func(f *fixture) req {
			return req{http.MethodPost, testPath, jwtShaped(f.clock.Now().Add(time.Hour), "forged"), ""}
		}, 401, errUnauthenticated, nil},
		{"401 expired token", func(f *fixture) req {
			return req{http.MethodPost, testPath, f.serviceAccountToken(testNS, testSA, -time.Second), ""}
		}, 401, errUnauthenticated, nil},
		{"401 wrong token audience", func(f *fixture) req {
			f.tokens.audiences = []string{"https://kubernetes.default.svc"}
			return post(f, "")
		},
			401, errUnauthenticated, nil},
		{"503 TokenReview fails", func(f *fixture) req { f.tokens.err = errors.New("connection refused"); return post(f, "") },
			503, errReviewUnavailable, map[string]string{"Retry-After": "1"}},
		{"403 not a service account", func(f *fixture) req {
			tok := jwtShaped(f.clock.Now().Add(time.Hour), "alice")
			f.tokens.users[tok] = authnv1.UserInfo{Username: "alice", Groups: []string{"system:masters"}}
			return req{http.MethodPost, testPath, tok, ""}
		}, 403, errNotServiceAccount, nil},
		{"404 org/site not published", func(f *fixture) req {
			return req{http.MethodPost, "/v2/org/acme/nico/site/00000000-0000-4000-8000-000000000000/token", f.bearer, ""}
		}, 404, errNotServed, nil},
		{"404 another org", func(f *fixture) req {
			return req{http.MethodPost, "/v2/org/globex/nico/site/" + testSite + "/token", f.bearer, ""}
		}, 404, errNotServed, nil},
		{"403 no RBAC grant", func(f *fixture) req {
			return req{http.MethodPost, testPath, f.serviceAccountToken(testNS, "intruder", time.Hour), ""}
		}, 403, errForbidden, nil},
		{"403 granted in another namespace", func(f *fixture) req {
			return req{http.MethodPost, testPath, f.serviceAccountToken("tenant-globex", testSA, time.Hour), ""}
		}, 403, errForbidden, nil},
		{"503 SubjectAccessReview fails", func(f *fixture) req { f.access.err = errors.New("timeout"); return post(f, "") },
			503, errReviewUnavailable, nil},
		{"404 TenantIdentity gone from the cache", func(f *fixture) req {
			if err := f.client.Delete(context.Background(), f.ti); err != nil {
				f.t.Fatal(err)
			}
			return post(f, "")
		}, 404, errNotServed, nil},
		{"404 TenantIdentity is another object than the publisher", func(f *fixture) req {
			p := f.pubs.get()
			p.Owner.UID = "someone-else"
			f.pubs.set(p)
			return post(f, "")
		}, 404, errNotServed, nil},
		{"404 no spec.tokens", func(f *fixture) req {
			f.ti.Spec.Tokens = nil
			if err := f.client.Update(context.Background(), f.ti); err != nil {
				f.t.Fatal(err)
			}
			return post(f, "")
		}, 404, errNoTokens, nil},
		{"503 tokenTTL unreadable", func(f *fixture) req {
			f.ti.Spec.Keys.TokenTTL = "soon"
			if err := f.client.Update(context.Background(), f.ti); err != nil {
				f.t.Fatal(err)
			}
			return post(f, "")
		}, 503, errBadPolicy, nil},
		{"400 body not JSON", func(f *fixture) req { return post(f, "audience=x") }, 400, errBodyNotObject, nil},
		{"400 body too large", func(f *fixture) req { return post(f, "{"+strings.Repeat(" ", maxBodyBytes)+"}") }, 400, errBodyTooLarge, nil},
		{"400 unknown field", func(f *fixture) req { return post(f, `{"sub":"admin"}`) }, 400, errUnknownField, nil},
		{"400 too many audiences", func(f *fixture) req {
			return post(f, `{"audience":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}`)
		}, 400, errTooManyAudiences, nil},
		{"400 audience not allowed", func(f *fixture) req { return post(f, `{"audience":["api.acme.example","evil.example"]}`) },
			400, errAudienceNotAllowed, nil},
		{"400 no audience and no default", func(f *fixture) req {
			f.ti.Spec.Tokens.DefaultAudience = ""
			if err := f.client.Update(context.Background(), f.ti); err != nil {
				f.t.Fatal(err)
			}
			return post(f, "{}")
		}, 400, errNoAudience, nil},
		{"400 expirationSeconds above tokenTTL", func(f *fixture) req { return post(f, `{"expirationSeconds":3601}`) }, 400, errTooLong(3600), nil},
		{"400 expirationSeconds zero", func(f *fixture) req { return post(f, `{"expirationSeconds":0}`) }, 400, errExpirationType, nil},
		{"503 key Secret gone", func(f *fixture) req {
			var list corev1.SecretList
			if err := f.client.List(context.Background(), &list); err != nil {
				f.t.Fatal(err)
			}
			for i := range list.Items {
				if err := f.client.Delete(context.Background(), &list.Items[i]); err != nil {
					f.t.Fatal(err)
				}
			}
			return post(f, "")
		}, 503, errKeyUnavailable, map[string]string{"Retry-After": "1"}},
		{"503 documents list no key", func(f *fixture) req {
			p := f.pubs.get()
			p.KIDs = nil
			f.pubs.set(p)
			return post(f, "")
		}, 503, errKeyUnavailable, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newFixture(t, keys.ES256)
			r := tc.setup(f)
			w := f.post(r.method, r.path, r.bearer, r.body)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			for k, v := range tc.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tc.err == nil {
				return
			}
			if got := decodeError(t, w.Body); got != tc.err.message {
				t.Errorf("message %q, want %q", got, tc.err.message)
			}
			if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("error headers %v", w.Header())
			}
		})
	}
}

// 429 with Retry-After: per caller, per namespace (many service accounts
// of one tenant share a budget), and for reviews of unknown tokens per
// client address.
func TestRateLimits(t *testing.T) {
	t.Run("per caller", func(t *testing.T) {
		f, _ := newFixture(t, keys.ES256)
		f.h.perCaller = newBuckets(1, 2)
		for range 2 {
			f.mint("")
		}
		w := f.post(http.MethodPost, testPath, f.bearer, "")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("3rd request within a second: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
		if decodeError(t, w.Body) != errTooManyRequests.message {
			t.Error("wrong message")
		}
		// Another caller is not affected; the first is served again later.
		other := f.serviceAccountToken(testNS, "other", time.Hour)
		if w := f.post(http.MethodPost, testPath, other, ""); w.Code == http.StatusTooManyRequests {
			t.Error("another caller limited for the first one's requests")
		}
		f.clock.Step(time.Second)
		f.mint("")
	})
	t.Run("per namespace", func(t *testing.T) {
		f, _ := newFixture(t, keys.ES256)
		f.h.perNamespace = newBuckets(1, 3)
		for i := range 3 {
			tok := f.serviceAccountToken(testNS, "sa"+string(rune('a'+i)), time.Hour)
			if w := f.post(http.MethodPost, testPath, tok, ""); w.Code == http.StatusTooManyRequests {
				t.Fatalf("request %d limited", i)
			}
		}
		fresh := f.serviceAccountToken(testNS, "yet-another", time.Hour)
		if w := f.post(http.MethodPost, testPath, fresh, ""); w.Code != http.StatusTooManyRequests {
			t.Fatalf("a new service account of the same namespace got %d, want 429", w.Code)
		}
		if w := f.post(http.MethodPost, testPath, f.serviceAccountToken("tenant-globex", "x", time.Hour), ""); w.Code == http.StatusTooManyRequests {
			t.Error("another namespace limited")
		}
	})
	t.Run("reviews per client address", func(t *testing.T) {
		f, _ := newFixture(t, keys.ES256)
		f.h.reviewsPerClient = newBuckets(1, 2)
		for i := range 2 {
			junk := jwtShaped(f.clock.Now().Add(time.Hour), "junk"+string(rune('a'+i)))
			if w := f.post(http.MethodPost, testPath, junk, ""); w.Code != http.StatusUnauthorized {
				t.Fatalf("junk token %d: %d", i, w.Code)
			}
		}
		if w := f.post(http.MethodPost, testPath, jwtShaped(f.clock.Now().Add(time.Hour), "junk-c"), ""); w.Code != http.StatusTooManyRequests {
			t.Fatalf("3rd unknown token from one address: %d, want 429", w.Code)
		}
		if n := f.tokens.count(); n != 2 {
			t.Errorf("%d TokenReviews for 3 unknown tokens, want 2", n)
		}
	})
}

// The claims and header docs/design.md lists, for every algorithm, verified
// with go-jose against the public key.
func TestClaims(t *testing.T) {
	for _, alg := range keys.Algorithms() {
		t.Run(alg, func(t *testing.T) {
			f, m := newFixture(t, alg)
			now := f.clock.Now()
			res := f.mint("")
			v := verify(t, res.Token, m)
			if v.header.Algorithm != alg || v.header.KeyID != m.KID || v.header.ExtraHeaders[jose.HeaderType] != "JWT" {
				t.Errorf("header alg %q kid %q typ %v", v.header.Algorithm, v.header.KeyID, v.header.ExtraHeaders[jose.HeaderType])
			}
			if res.KeyID != m.KID {
				t.Errorf("keyID %q, want %q", res.KeyID, m.KID)
			}
			err := v.claims.Validate(josejwt.Expected{
				Issuer: testIssuer, Subject: "system:serviceaccount:tenant-acme:builder",
				AnyAudience: josejwt.Audience{"api.acme.example"}, Time: now,
			})
			if err != nil {
				t.Error(err)
			}
			if len(v.claims.Audience) != 1 || !v.claims.IssuedAt.Time().Equal(now) || !v.claims.NotBefore.Time().Equal(now) ||
				!v.claims.Expiry.Time().Equal(now.Add(time.Hour)) || len(v.claims.ID) != 22 {
				t.Errorf("claims %+v", v.claims)
			}
			if res.ExpiresAt != now.Add(time.Hour).Format(time.RFC3339) {
				t.Errorf("expiresAt %q", res.ExpiresAt)
			}
			if len(v.raw) != 7 {
				t.Errorf("claims beyond the seven: %v", v.raw)
			}
		})
	}
}

func TestClaimRules(t *testing.T) {
	f, m := newFixture(t, keys.ES256)
	now := f.clock.Now()

	res := f.mint(`{"audience":["db.acme.example","api.acme.example"],"expirationSeconds":600}`)
	v := verify(t, res.Token, m)
	if !slices.Equal(v.claims.Audience, []string{"db.acme.example", "api.acme.example"}) {
		t.Errorf("aud %v, want the requested audiences", v.claims.Audience)
	}
	if !v.claims.Expiry.Time().Equal(now.Add(600*time.Second)) || res.ExpiresAt != "2026-12-01T10:10:00Z" {
		t.Errorf("exp %v, expiresAt %s", v.claims.Expiry.Time(), res.ExpiresAt)
	}

	// One audience is still a list.
	one := f.mint(`{"audience":["db.acme.example"]}`)
	if _, isList := verify(t, one.Token, m).raw["aud"].([]any); !isList {
		t.Error("a single aud is not a JSON list")
	}

	// exp = now + tokenTTL exactly when expirationSeconds is tokenTTL.
	f.ti.Spec.Keys.TokenTTL = "90s"
	f.ti.Spec.Tokens.SubjectPrefix = "spiffe://acme.example/"
	if err := f.client.Update(context.Background(), f.ti); err != nil {
		t.Fatal(err)
	}
	full := verify(t, f.mint(`{"expirationSeconds":90}`).Token, m)
	if !full.claims.Expiry.Time().Equal(now.Add(90 * time.Second)) {
		t.Errorf("exp %v", full.claims.Expiry.Time())
	}
	if full.claims.Subject != "spiffe://acme.example/ns/tenant-acme/sa/builder" {
		t.Errorf("sub with a prefix: %q", full.claims.Subject)
	}
	if w := f.post(http.MethodPost, testPath, f.bearer, `{"expirationSeconds":91}`); w.Code != http.StatusBadRequest {
		t.Errorf("above the new tokenTTL: %d", w.Code)
	}

	// iss follows the publication.
	p := f.pubs.get()
	p.Issuer = "https://id.acme.example/dc1"
	f.pubs.set(p)
	if iss := verify(t, f.mint("").Token, m).claims.Issuer; iss != "https://id.acme.example/dc1" {
		t.Errorf("iss %q", iss)
	}

	// Every token has its own jti.
	seen := map[string]bool{}
	for range 20 {
		id := verify(t, f.mint("").Token, m).claims.ID
		if seen[id] {
			t.Fatalf("jti %s repeated", id)
		}
		seen[id] = true
	}
}

// The key switch at activation is picked up by the first request after
// it, the replaced key leaves memory (at once on a request, within a sweep
// without one), and a revoked key never signs again.
func TestKeySwitch(t *testing.T) {
	f, first := newFixture(t, keys.ES256)
	if kid := f.mint("").KeyID; kid != first.KID {
		t.Fatalf("kid %s, want %s", kid, first.KID)
	}
	second := testKey(t, keys.ES256, 1)
	f.activate(second)
	res := f.mint("")
	verify(t, res.Token, second)
	if res.KeyID != second.KID {
		t.Fatalf("after activation: kid %s, want %s", res.KeyID, second.KID)
	}
	if kid := heldKID(f.h.keys, tenantKey{testOrg, testSite}); kid != second.KID || f.h.keys.heldCount() != 1 {
		t.Errorf("held keys after the switch: %d (%q)", f.h.keys.heldCount(), kid)
	}

	// Revoked: the documents drop it and list another key first; the
	// sweep forgets the revoked one without any request.
	third := testKey(t, keys.ES256, 2)
	f.activate(third)
	p := f.pubs.get()
	p.KIDs = slices.DeleteFunc(p.KIDs, func(kid string) bool { return kid == second.KID })
	f.pubs.set(p)
	f.h.keys.sweep(f.pubs)
	if n := f.h.keys.heldCount(); n != 0 {
		t.Errorf("%d keys held after the Active key was replaced and no request came", n)
	}
	for range 5 {
		if kid := f.mint("").KeyID; kid != third.KID {
			t.Fatalf("signed with %s after its revocation", kid)
		}
	}

	// Unpublished: the sweep drops the key too.
	f.pubs.mu.Lock()
	delete(f.pubs.pubs, tenantKey{testOrg, testSite})
	f.pubs.mu.Unlock()
	f.h.keys.sweep(f.pubs)
	if n := f.h.keys.heldCount(); n != 0 {
		t.Errorf("%d keys held for an unpublished org/site", n)
	}
}

// A rotation that lands while a request is signing: the handler re-checks
// the publication after signing and signs again with the new Active key,
// so it never hands out a token of the key being replaced.
func TestRotationDuringRequest(t *testing.T) {
	f, first := newFixture(t, keys.ES256)
	f.mint("") // the first key is held
	second := testKey(t, keys.ES256, 1)
	start := f.pubs.calls
	f.pubs.afterCall = func(n int) {
		if n == start+1 { // the request's first look: rotate before the re-check
			f.pubs.afterCall = nil
			f.activate(second)
		}
	}
	res := f.mint("")
	if res.KeyID != second.KID {
		t.Fatalf("token of %s, want the key that became Active meanwhile (%s); first was %s", res.KeyID, second.KID, first.KID)
	}
	verify(t, res.Token, second)
}

// The held key belongs to one TenantIdentity object: the same org/site
// published by a new object (same name, new UID) reads its own key.
func TestHeldKeyIsPerOwner(t *testing.T) {
	f, first := newFixture(t, keys.ES256)
	f.mint("")
	ctx := context.Background()
	if err := f.client.Delete(ctx, f.ti); err != nil {
		t.Fatal(err)
	}
	ti := f.ti.DeepCopy()
	ti.ResourceVersion, ti.UID = "", "new-uid"
	if err := f.client.Create(ctx, ti); err != nil {
		t.Fatal(err)
	}
	// The fake client keeps the UID given; its key Secret is controlled by it.
	second := testKey(t, keys.ES256, 1)
	sec := f.keySecret(second, v1alpha1.KeyStateActive)
	sec.OwnerReferences[0].UID = "new-uid"
	if err := f.client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.pubs.set(jwks.Publication{Owner: jwks.Owner{Namespace: testNS, Name: testName, UID: "new-uid"}, Issuer: testIssuer, KIDs: []string{second.KID, first.KID}})
	if kid := f.mint("").KeyID; kid != second.KID {
		t.Errorf("kid %s, want the new object's %s", kid, second.KID)
	}
}

// A key Secret is used only when it is the Active key of the publishing
// TenantIdentity; a tenant can edit Secrets in its namespace, so every
// other shape is refused, and no refusal says anything about the key.
func TestKeySecretChecks(t *testing.T) {
	other := testKey(t, keys.ES256, 1)
	rsa := testKey(t, keys.RS256, 0)
	cases := []struct {
		name   string
		mutate func(s *corev1.Secret)
		want   string
	}{
		{"no owner", func(s *corev1.Secret) { s.OwnerReferences = nil }, "not controlled"},
		{"owner not controller", func(s *corev1.Secret) { s.OwnerReferences[0].Controller = nil }, "not controlled"},
		{"controlled by another object", func(s *corev1.Secret) { s.OwnerReferences[0].UID = "other" }, "not controlled"},
		{"controlled by another kind", func(s *corev1.Secret) { s.OwnerReferences[0].Kind = "Deployment" }, "not controlled"},
		{"kid annotation of another key", func(s *corev1.Secret) { s.Annotations[v1alpha1.AnnotationKID] = other.KID }, "not annotated"},
		{"no kid annotation", func(s *corev1.Secret) { delete(s.Annotations, v1alpha1.AnnotationKID) }, "not annotated"},
		{"recorded Next", func(s *corev1.Secret) { s.Annotations[v1alpha1.AnnotationKeyState] = "Next" }, "identity.signet.dev/state=Active"},
		{"recorded Retired", func(s *corev1.Secret) { s.Annotations[v1alpha1.AnnotationKeyState] = "Retired" }, "identity.signet.dev/state=Active"},
		{"holds another key", func(s *corev1.Secret) { s.Data[dataKeyPEM] = other.PrivatePEM }, "holds another key"},
		{"holds an RSA key for ES256", func(s *corev1.Secret) { s.Data[dataKeyPEM] = rsa.PrivatePEM }, "needs an EC"},
		{"algorithm annotation wrong", func(s *corev1.Secret) { s.Annotations[v1alpha1.AnnotationAlgorithm] = "RS256" }, "needs an RSA"},
		{"no algorithm annotation", func(s *corev1.Secret) { delete(s.Annotations, v1alpha1.AnnotationAlgorithm) }, "unsupported algorithm"},
		{"key.pem garbage", func(s *corev1.Secret) {
			s.Data[dataKeyPEM] = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "PKCS#8"},
		{"no key.pem", func(s *corev1.Secret) { delete(s.Data, dataKeyPEM) }, "private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, m := newFixture(t, keys.ES256)
			sec := f.keySecret(m, v1alpha1.KeyStateActive)
			if err := f.client.Delete(context.Background(), sec); err != nil {
				t.Fatal(err)
			}
			tc.mutate(sec)
			if err := f.client.Create(context.Background(), sec); err != nil {
				t.Fatal(err)
			}
			_, err := f.h.keys.load(context.Background(), f.pubs.get().Owner, m.KID)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v, want an error containing %q", err, tc.want)
			}
			for _, secret := range [][]byte{m.PrivatePEM, other.PrivatePEM, rsa.PrivatePEM} {
				if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(secret[40:80])) {
					t.Errorf("error quotes key material: %v", err)
				}
			}
			if w := f.post(http.MethodPost, testPath, f.bearer, ""); w.Code != http.StatusServiceUnavailable {
				t.Errorf("request with a refused key Secret: %d", w.Code)
			}
		})
	}
}

// Logs carry neither the bearer tokens presented nor the tokens minted
// nor any key material, whatever happens.
func TestNothingSecretInLogs(t *testing.T) {
	f, m := newFixture(t, keys.RS256)
	var minted []string
	for range 3 {
		minted = append(minted, f.mint(`{"audience":["db.acme.example"]}`).Token)
	}
	f.post(http.MethodPost, testPath, f.serviceAccountToken(testNS, "intruder", time.Hour), "")
	f.tokens.err = errors.New("boom")
	f.post(http.MethodPost, testPath, f.serviceAccountToken(testNS, "x", time.Hour), "")
	f.tokens.err = nil
	second := testKey(t, keys.RS256, 1)
	sec := f.keySecret(second, v1alpha1.KeyStateNext) // a Secret the handler refuses
	if err := f.client.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	p := f.pubs.get()
	p.KIDs = []string{second.KID, m.KID}
	f.pubs.set(p)
	f.post(http.MethodPost, testPath, f.bearer, "")

	logs := f.logs.String()
	if !strings.Contains(logs, "token issued") || !strings.Contains(logs, "no signing key") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	forbidden := append([]string{f.bearer, "PRIVATE KEY"}, minted...)
	for _, k := range []*keys.Material{m, second} {
		body := strings.Join(strings.Split(string(k.PrivatePEM), "\n")[1:3], "")
		forbidden = append(forbidden, body)
		jwk, err := k.PrivateJWK()
		if err != nil {
			t.Fatal(err)
		}
		forbidden = append(forbidden, string(jwk))
	}
	for _, s := range forbidden {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret (%.20s...)", s)
		}
	}
	if s := (&heldKey{kid: "k", alg: "RS256"}); strings.Contains(strings.Join([]string{s.String(), s.GoString()}, ""), "signer") {
		t.Error("heldKey prints its signer")
	}
}
