package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// tokenAPI is a token API that follows docs/design.md's "The token API" to the
// letter, with the real parts of the cluster: the bearer token is checked
// with a TokenReview (audience signet), the caller with a
// SubjectAccessReview for create on tenantidentities/token, and the
// TenantIdentity that owns the org/site is looked up in the API. Only the
// signing key is its own (the manager's token API signs with the Active key).
type tokenAPI struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	bodies chan tokenRequest // what the plugin sent, for the test to read
}

var tokenPath = regexp.MustCompile(`^/v2/org/([^/]+)/nico/site/([^/]+)/token$`)

func nicoError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"source": "nico", "message": msg, "data": nil})
}

func (a *tokenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m := tokenPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m == nil:
		nicoError(w, http.StatusNotFound, "not found")
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		nicoError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || bearer == "" {
		nicoError(w, http.StatusUnauthorized, "a bearer token is required")
		return
	}
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: bearer, Audiences: []string{"signet"}}}
	if err := env.Client.Create(ctx, review); err != nil || !review.Status.Authenticated {
		nicoError(w, http.StatusUnauthorized, "the bearer token is not valid")
		return
	}
	ti := a.owner(ctx, m[1], m[2])
	if ti == nil || ti.Spec.Tokens == nil {
		nicoError(w, http.StatusNotFound, "unknown org/site or no token policy")
		return
	}
	user := review.Status.User
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, UID: user.UID,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ti.Namespace, Name: ti.Name, Verb: "create",
			Group: identityv1alpha1.GroupVersion.Group, Resource: "tenantidentities", Subresource: "token",
		},
	}}
	if err := env.Client.Create(ctx, sar); err != nil || !sar.Status.Allowed {
		nicoError(w, http.StatusForbidden, fmt.Sprintf("%s may not create tenantidentities/token %s/%s", user.Username, ti.Namespace, ti.Name))
		return
	}
	var body tokenRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		nicoError(w, http.StatusBadRequest, "bad body: "+err.Error())
		return
	}
	a.bodies <- body
	aud := body.Audience
	if len(aud) == 0 && ti.Spec.Tokens.DefaultAudience != "" {
		aud = []string{ti.Spec.Tokens.DefaultAudience}
	}
	for _, x := range aud {
		if !slices.Contains(ti.Spec.Tokens.AllowedAudiences, x) {
			nicoError(w, http.StatusBadRequest, fmt.Sprintf("audience %q is not allowed", x))
			return
		}
	}
	ttl, _ := time.ParseDuration(ti.Spec.Keys.TokenTTL)
	exp := ttl
	if body.ExpirationSeconds > 0 {
		exp = time.Duration(body.ExpirationSeconds) * time.Second
	}
	if len(aud) == 0 || exp > ttl {
		nicoError(w, http.StatusBadRequest, "no audience, or expirationSeconds above tokenTTL")
		return
	}
	a.sign(w, ti, user.Username, aud, exp)
}

func (a *tokenAPI) owner(ctx context.Context, org, site string) *identityv1alpha1.TenantIdentity {
	var list identityv1alpha1.TenantIdentityList
	if err := env.Client.List(ctx, &list); err != nil {
		return nil
	}
	for i := range list.Items {
		if ti := &list.Items[i]; ti.Spec.Org == org && ti.Spec.SiteID == site {
			return ti
		}
	}
	return nil
}

func (a *tokenAPI) sign(w http.ResponseWriter, ti *identityv1alpha1.TenantIdentity, sub string, aud []string, exp time.Duration) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: a.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", ti.Status.ActiveKeyID))
	if err != nil {
		a.t.Error(err)
		return
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: ti.Status.Issuer, Subject: sub, Audience: aud, ID: "jti-1",
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(exp)),
	}).Serialize()
	if err != nil {
		a.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tokenResponse{Token: tok, ExpiresAt: now.Add(exp).UTC().Format(time.RFC3339), KeyID: ti.Status.ActiveKeyID})
}

// TestToken: the plugin authenticates with a TokenRequest or a token file,
// posts the contract's body to the org/site's path, and prints the token
// (or the whole answer); refusals come back as errors with the status and
// the message, and the bearer token is never printed.
func TestToken(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", func(ti *identityv1alpha1.TenantIdentity) {
		ti.Spec.Tokens = &identityv1alpha1.TokenPolicy{
			AllowedAudiences: []string{"api.acme.example", "db.acme.example"}, DefaultAudience: "api.acme.example",
		}
	})
	ns := ti.Namespace
	ctx := context.Background()
	for _, sa := range []string{"workload", "stranger"} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil {
			t.Fatal(err)
		}
	}
	grant(t, ns, ti.Name, "workload")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	api := &tokenAPI{t: t, key: key, bodies: make(chan tokenRequest, 16)}
	srv := httptest.NewServer(api)
	defer srv.Close()
	base := []string{"token", "-n", ns, ti.Name, "--server", srv.URL}

	r := plugin(t, append(base, "--service-account", "workload", "--audience", "db.acme.example", "--expiration", "10m")...)
	if r.code != 0 {
		t.Fatalf("token: %s", r)
	}
	if got := <-api.bodies; !slices.Equal(got.Audience, []string{"db.acme.example"}) || got.ExpirationSeconds != 600 {
		t.Errorf("request body %+v, want audience [db.acme.example] and expirationSeconds 600", got)
	}
	claims := verify(t, strings.TrimSpace(r.stdout), &key.PublicKey)
	if claims.Subject != "system:serviceaccount:"+ns+":workload" || !slices.Equal([]string(claims.Audience), []string{"db.acme.example"}) ||
		claims.Issuer != ti.Status.Issuer {
		t.Errorf("claims %+v", claims)
	}

	// -o json: the whole answer; no audience asked: the default.
	r = plugin(t, append(base, "--service-account", "workload", "-o", "json")...)
	var resp tokenResponse
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &resp) != nil || resp.KeyID != ti.Status.ActiveKeyID || resp.ExpiresAt == "" {
		t.Fatalf("token -o json: %s", r)
	}
	if got := <-api.bodies; len(got.Audience) != 0 || got.ExpirationSeconds != 0 {
		t.Errorf("request body %+v, want neither audience nor expirationSeconds", got)
	}

	// A token file is sent as it is, and never printed.
	tokenFile := filepath.Join(t.TempDir(), "token")
	bearer := serviceAccountToken(t, ns, "workload")
	if err := os.WriteFile(tokenFile, []byte(bearer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, append(base, "--token-file", tokenFile)...)
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, bearer) {
		t.Errorf("token --token-file: %s", r)
	}
	<-api.bodies

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not allowed", []string{"--service-account", "stranger"}, "403 Forbidden: system:serviceaccount:" + ns + ":stranger may not create"},
		{"audience not allowed", []string{"--service-account", "workload", "--audience", "evil.example"}, `400 Bad Request: audience "evil.example" is not allowed`},
		{"above tokenTTL", []string{"--service-account", "workload", "--expiration", "2h"}, "400 Bad Request"},
		{"wrong review audience", []string{"--service-account", "workload", "--review-audience", "other"}, "401 Unauthorized"},
		{"no such ServiceAccount", []string{"--service-account", "ghost"}, "TokenRequest for serviceaccount " + ns + "/ghost"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := plugin(t, append(base, c.args...)...)
			if r.code != exitFailed || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%s\nwant exit 1 and %q", r, c.want)
			}
			select {
			case <-api.bodies:
			default:
			}
		})
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := plugin(t, append(base, "--token-file", garbage)...); r.code != exitFailed || !strings.Contains(r.stderr, "401 Unauthorized: the bearer token is not valid") {
		t.Errorf("garbage token: %s", r)
	}
}

// grant lets sa create tokens of the TenantIdentity name, as docs/design.md's
// RBAC example does.
func grant(t *testing.T, ns, name, sa string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token-" + name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{identityv1alpha1.GroupVersion.Group}, Resources: []string{"tenantidentities/token"},
		Verbs: []string{"create"}, ResourceNames: []string{name},
	}}}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

func serviceAccountToken(t *testing.T, ns, sa string) string {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"signet"}}}
	if err := env.Client.SubResource("token").Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}, tr); err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func verify(t *testing.T, raw string, pub *ecdsa.PublicKey) jwt.Claims {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("the printed token %q does not parse: %v", raw, err)
	}
	var c jwt.Claims
	if err := tok.Claims(pub, &c); err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	return c
}

// TestTokenFromHostileServer: a server that answers 200 with something
// else than a compact JWS gets no byte of it onto the terminal.
func TestTokenFromHostileServer(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(tokenResponse{Token: "a.b.c\x1b]0;owned\x07", KeyID: "k"})
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("bearer"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := plugin(t, "token", "-n", ti.Namespace, ti.Name, "--server", srv.URL, "--token-file", tokenFile)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not a compact JWS") || strings.Contains(r.stdout+r.stderr, "\x1b") {
		t.Errorf("%s", r)
	}
}
