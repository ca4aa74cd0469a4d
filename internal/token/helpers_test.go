package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
)

const (
	testOrg    = "acme"
	testSite   = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	testNS     = "tenant-acme"
	testName   = "acme-dc1"
	testUID    = types.UID("0b7e3c52-0000-4000-8000-00000000d0c1")
	testIssuer = "https://signet.example/v2/org/acme/nico/site/7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	testPath   = "/v2/org/acme/nico/site/7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f/token"
	testSA     = "builder"
)

// generated caches one key per algorithm: RSA keys are slow under -race.
var generated = struct {
	sync.Mutex
	m map[string][]*keys.Material
}{m: map[string][]*keys.Material{}}

// testKey is the n-th test key of alg (n from 0), generated once per run.
func testKey(t testing.TB, alg string, n int) *keys.Material {
	t.Helper()
	generated.Lock()
	defer generated.Unlock()
	for len(generated.m[alg]) <= n {
		m, err := keys.Generate(alg, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		generated.m[alg] = append(generated.m[alg], m)
	}
	return generated.m[alg][n]
}

// fakePubs is the JWKS server's view: publications by org/site.
type fakePubs struct {
	mu     sync.Mutex
	pubs   map[tenantKey]jwks.Publication
	synced bool
	// afterCall, when set, runs after every Published call with the
	// number of calls so far (to change what is published mid-request).
	afterCall func(n int)
	calls     int
}

func (f *fakePubs) Published(org, site string) (jwks.Publication, bool) {
	f.mu.Lock()
	p, ok := f.pubs[tenantKey{org, site}]
	if ok {
		p.KIDs = append([]string(nil), p.KIDs...)
	}
	ok = ok && f.synced
	f.calls++
	n, hook := f.calls, f.afterCall
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return p, ok
}

func (f *fakePubs) ReadyCheck() healthz.Checker {
	return func(*http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.synced {
			return errors.New("not synced")
		}
		return nil
	}
}

func (f *fakePubs) set(p jwks.Publication) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubs[tenantKey{testOrg, testSite}] = p
}

func (f *fakePubs) get() jwks.Publication {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pubs[tenantKey{testOrg, testSite}]
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		fmt.Fprintln(&l.b, prefix, args)
	}, funcr.Options{Verbosity: 10})
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is one tenant as the controller leaves it (a TenantIdentity,
// its Active key's Secret, its publication) behind a handler with fake
// reviews: the service account tenant-acme/builder is granted
// tenantidentities/token on acme-dc1.
type fixture struct {
	t      testing.TB
	clock  *clocktesting.FakeClock
	pubs   *fakePubs
	tokens *fakeTokenReviews
	access *fakeAccessReviews
	client client.Client
	logs   *logBuffer
	h      *handler
	ti     *v1alpha1.TenantIdentity
	bearer string // builder's service account token
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

func newFixture(t testing.TB, alg string) (*fixture, *keys.Material) {
	t.Helper()
	f := &fixture{
		t:      t,
		clock:  clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)),
		pubs:   &fakePubs{pubs: map[tenantKey]jwks.Publication{}, synced: true},
		tokens: newFakeTokenReviews(),
		logs:   &logBuffer{},
	}
	f.access = &fakeAccessReviews{allow: func(s authzv1.SubjectAccessReviewSpec) bool {
		ra := s.ResourceAttributes
		return s.User == serviceAccountPrefix+testNS+":"+testSA && ra.Namespace == testNS && ra.Name == testName &&
			ra.Verb == "create" && ra.Resource == "tenantidentities" && ra.Subresource == "token" && ra.Group == "identity.signet.dev"
	}}
	f.ti = &v1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testName, UID: testUID},
		Spec: v1alpha1.TenantIdentitySpec{
			Org: testOrg, SiteID: testSite,
			Keys: v1alpha1.KeyPolicy{Algorithm: v1alpha1.Algorithm(alg), TokenTTL: "1h"},
			Tokens: &v1alpha1.TokenPolicy{
				AllowedAudiences: []string{"api.acme.example", "db.acme.example"},
				DefaultAudience:  "api.acme.example",
			},
		},
	}
	m := testKey(t, alg, 0)
	f.client = fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(f.ti, f.keySecret(m, v1alpha1.KeyStateActive)).Build()
	f.pubs.set(jwks.Publication{Owner: jwks.Owner{Namespace: testNS, Name: testName, UID: testUID}, Issuer: testIssuer, KIDs: []string{m.KID}})
	f.bearer = f.serviceAccountToken(testNS, testSA, time.Hour)
	// No rate limits (a fake clock never refills a bucket): TestRateLimits sets them.
	limits := Limits{}
	f.h = newHandler(handlerConfig{
		pubs: f.pubs, tenants: f.client, secrets: f.client,
		tokenReviews: f.tokens, accessReviews: f.access, audience: "signet",
		limits: limits, clock: f.clock, log: f.logs.logger(),
	})
	return f, m
}

// serviceAccountToken is a token the fake TokenReview accepts for ns/sa.
func (f *fixture) serviceAccountToken(ns, sa string, ttl time.Duration) string {
	tok := jwtShaped(f.clock.Now().Add(ttl), ns+"/"+sa+"/"+newJTI())
	f.tokens.mu.Lock()
	f.tokens.users[tok] = saUser(ns, sa)
	f.tokens.mu.Unlock()
	return tok
}

// keySecret is the Secret the controller stores for m, in state.
func (f *fixture) keySecret(m *keys.Material, state v1alpha1.KeyState) *corev1.Secret {
	short, err := keys.ShortKID(m.KID)
	if err != nil {
		f.t.Fatal(err)
	}
	yes := true
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: testNS, Name: testName + "-" + short,
			Labels: map[string]string{v1alpha1.LabelTenantIdentity: testName, v1alpha1.LabelKID: short},
			Annotations: map[string]string{
				v1alpha1.AnnotationKID: m.KID, v1alpha1.AnnotationAlgorithm: m.Algorithm, v1alpha1.AnnotationKeyState: string(state),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "TenantIdentity", Name: testName, UID: testUID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Immutable: &yes,
		Data:      map[string][]byte{dataKeyPEM: m.PrivatePEM},
	}
}

// activate makes m the Active key as the controller does: the record
// first (m Active, the previous Active key Retired), then the documents
// (m first).
func (f *fixture) activate(m *keys.Material) {
	f.t.Helper()
	ctx := context.Background()
	prev := f.pubs.get()
	var list corev1.SecretList
	if err := f.client.List(ctx, &list, client.InNamespace(testNS)); err != nil {
		f.t.Fatal(err)
	}
	for i := range list.Items {
		if s := &list.Items[i]; s.Annotations[v1alpha1.AnnotationKeyState] == string(v1alpha1.KeyStateActive) {
			s.Annotations[v1alpha1.AnnotationKeyState] = string(v1alpha1.KeyStateRetired)
			if err := f.client.Update(ctx, s); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	if err := f.client.Create(ctx, f.keySecret(m, v1alpha1.KeyStateActive)); err != nil {
		f.t.Fatal(err)
	}
	prev.KIDs = append([]string{m.KID}, prev.KIDs...)
	f.pubs.set(prev)
}

// post sends a request to the handler.
func (f *fixture) post(method, path, bearer, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// mint posts body as builder and expects a 200.
func (f *fixture) mint(body string) response {
	f.t.Helper()
	w := f.post(http.MethodPost, testPath, f.bearer, body)
	if w.Code != http.StatusOK {
		f.t.Fatalf("POST %s: %d %s", body, w.Code, w.Body)
	}
	var res response
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		f.t.Fatalf("response: %v", err)
	}
	return res
}

// verified is a token checked with go-jose against the public key of m.
type verified struct {
	header jose.Header
	claims josejwt.Claims
	raw    map[string]any
}

func verify(t testing.TB, token string, m *keys.Material) verified {
	t.Helper()
	tok, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(m.Algorithm)})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	signer, err := m.Signer()
	if err != nil {
		t.Fatal(err)
	}
	var v verified
	if err := tok.Claims(signer.Public(), &v.claims, &v.raw); err != nil {
		t.Fatalf("verify with key %s: %v", m.KID, err)
	}
	v.header = tok.Headers[0]
	return v
}

// decodeError reads a NICo error body strictly.
func decodeError(t testing.TB, body io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(body)
	var e struct {
		Source  string          `json:"source"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Source != "nico" || string(e.Data) != "null" || e.Message == "" {
		t.Fatalf("not a NICo error: %s (%v)", b, err)
	}
	return e.Message
}
