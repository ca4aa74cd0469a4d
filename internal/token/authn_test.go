package token

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeTokenReviews answers TokenReviews from a table of tokens.
type fakeTokenReviews struct {
	mu        sync.Mutex
	users     map[string]authnv1.UserInfo // accepted tokens
	audiences []string                    // answered audiences; nil: those asked for
	err       error
	calls     int
	last      authnv1.TokenReviewSpec
}

func newFakeTokenReviews() *fakeTokenReviews {
	return &fakeTokenReviews{users: map[string]authnv1.UserInfo{}}
}

func (f *fakeTokenReviews) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.last = tr.Spec
	if f.err != nil {
		return nil, f.err
	}
	out := tr.DeepCopy()
	if u, ok := f.users[tr.Spec.Token]; ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u, Audiences: tr.Spec.Audiences}
		if f.audiences != nil {
			out.Status.Audiences = f.audiences
		}
	} else {
		out.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	return out, nil
}

func (f *fakeTokenReviews) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// jwtShaped is a token with the given exp in its payload, as a service
// account token has (the signature is not checked here: the review is).
func jwtShaped(exp time.Time, id string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(fmt.Appendf(nil, `{"exp":%d,"jti":%q}`, exp.Unix(), id)) + ".c2ln"
}

func saUser(ns, name string) authnv1.UserInfo {
	return authnv1.UserInfo{
		Username: "system:serviceaccount:" + ns + ":" + name, UID: "uid-" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		Extra:  map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"pod-1"}},
	}
}

func noLimit() *apiError { return nil }

func TestTokenExpiry(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := func(payload string) string { return enc([]byte(`{}`)) + "." + enc([]byte(payload)) + ".sig" }
	cases := []struct {
		name  string
		token string
		want  time.Time
		ok    bool
	}{
		{"exp", tok(`{"exp":1796119200}`), time.Unix(1796119200, 0), true},
		{"fractional exp", tok(`{"exp":1796119200.5}`), time.Unix(1796119200, 500_000_000), true},
		{"no exp", tok(`{"sub":"x"}`), time.Time{}, false},
		{"exp a string", tok(`{"exp":"1796119200"}`), time.Time{}, false},
		{"exp negative", tok(`{"exp":-1}`), time.Time{}, false},
		{"exp absurd", tok(`{"exp":1e300}`), time.Time{}, false},
		{"payload not JSON", tok(`exp`), time.Time{}, false},
		{"payload not base64url", "e30.!!!.sig", time.Time{}, false},
		{"two parts", "e30.e30", time.Time{}, false},
		{"four parts", "e30.e30.e30.e30", time.Time{}, false},
		{"opaque", "abcdef", time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := tokenExpiry(tc.token)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCallerOf(t *testing.T) {
	cases := []struct {
		user   string
		ns, sa string
	}{
		{"system:serviceaccount:tenant-acme:builder", "tenant-acme", "builder"},
		{"system:serviceaccount:tenant-acme", "", ""},
		{"system:serviceaccount::builder", "", ""},
		{"system:serviceaccount:tenant-acme:", "", ""},
		{"system:serviceaccount:a:b:c", "", ""},
		{"alice", "", ""},
		{"system:node:n1", "", ""},
	}
	for _, tc := range cases {
		c := callerOf(authnv1.UserInfo{Username: tc.user})
		if c.Namespace != tc.ns || c.ServiceAccount != tc.sa || c.User != tc.user {
			t.Errorf("%q: namespace %q, service account %q", tc.user, c.Namespace, c.ServiceAccount)
		}
	}
}

// The SubjectAccessReview cache key tells apart every difference in the
// reviewed user, including ones a naive concatenation would merge.
func TestFingerprint(t *testing.T) {
	base := authnv1.UserInfo{Username: "u", UID: "1", Groups: []string{"ab", "c"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}}
	same := authnv1.UserInfo{Username: "u", UID: "1", Groups: []string{"ab", "c"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}}
	if callerOf(base).fingerprint != callerOf(same).fingerprint {
		t.Fatal("equal users, different fingerprints")
	}
	for name, u := range map[string]authnv1.UserInfo{
		"user":         {Username: "v", UID: "1", Groups: base.Groups, Extra: base.Extra},
		"uid":          {Username: "u", UID: "2", Groups: base.Groups, Extra: base.Extra},
		"groups split": {Username: "u", UID: "1", Groups: []string{"a", "bc"}, Extra: base.Extra},
		"no groups":    {Username: "u", UID: "1", Extra: base.Extra},
		"extra value":  {Username: "u", UID: "1", Groups: base.Groups, Extra: map[string]authnv1.ExtraValue{"k": {"w"}}},
		"extra key":    {Username: "u", UID: "1", Groups: base.Groups, Extra: map[string]authnv1.ExtraValue{"j": {"v"}}},
		"no extra":     {Username: "u", UID: "1", Groups: base.Groups},
		"user/uid":     {Username: "u1", UID: "", Groups: base.Groups, Extra: base.Extra},
	} {
		if callerOf(u).fingerprint == callerOf(base).fingerprint {
			t.Errorf("%s: same fingerprint as the base user", name)
		}
	}
}

func TestAuthenticateReviewsWithTheAudience(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reviews := newFakeTokenReviews()
	tok := jwtShaped(now.Add(time.Hour), "a")
	reviews.users[tok] = saUser("tenant-acme", "builder")
	a := newAuthenticator(reviews, "signet", logr.Discard())
	c, e := a.authenticate(context.Background(), tok, now, noLimit)
	if e != nil {
		t.Fatal(e.message)
	}
	if reviews.last.Token != tok || !slices.Equal(reviews.last.Audiences, []string{"signet"}) {
		t.Errorf("review spec %+v", reviews.last)
	}
	if c.Namespace != "tenant-acme" || c.ServiceAccount != "builder" || c.UID != "uid-builder" ||
		!slices.Contains(c.Groups, "system:serviceaccounts:tenant-acme") || c.Extra["authentication.kubernetes.io/pod-name"][0] != "pod-1" {
		t.Errorf("caller %+v", c)
	}

	// An authenticator that says the token is valid but not for our
	// audience (or for none in particular) is not enough.
	for _, answered := range [][]string{{}, {"https://kubernetes.default.svc"}} {
		reviews.audiences = answered
		other := jwtShaped(now.Add(time.Hour), fmt.Sprint(answered))
		reviews.users[other] = saUser("tenant-acme", "builder")
		if _, e := a.authenticate(context.Background(), other, now, noLimit); e != errUnauthenticated {
			t.Errorf("review answered audiences %q: %v, want 401", answered, e)
		}
	}
}

// A review is trusted no longer than the token's exp, and no longer than
// maxReviewAge; a refusal for refusedAge; a failed review not at all.
func TestAuthenticateCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	reviews := newFakeTokenReviews()
	a := newAuthenticator(reviews, "signet", logr.Discard())
	expect := func(what, tok string, at time.Time, wantErr *apiError, wantCalls int) {
		t.Helper()
		_, e := a.authenticate(ctx, tok, at, noLimit)
		if e != wantErr {
			t.Errorf("%s: %v, want %v", what, e, wantErr)
		}
		if n := reviews.count(); n != wantCalls {
			t.Errorf("%s: %d reviews so far, want %d", what, n, wantCalls)
		}
	}

	short := jwtShaped(now.Add(30*time.Second), "short")
	reviews.users[short] = saUser("ns", "a")
	expect("first use", short, now, nil, 1)
	expect("again", short, now.Add(29*time.Second), nil, 1)
	// At its exp the token is refused without asking: a cached review must
	// not outlive the token.
	expect("at exp", short, now.Add(30*time.Second), errUnauthenticated, 1)

	long := jwtShaped(now.Add(time.Hour), "long")
	reviews.users[long] = saUser("ns", "b")
	expect("long-lived, first use", long, now, nil, 2)
	expect("long-lived, within maxReviewAge", long, now.Add(maxReviewAge-time.Second), nil, 2)
	// The API server may have invalidated it (pod deleted): ask again.
	delete(reviews.users, long)
	expect("long-lived, after maxReviewAge, now invalid", long, now.Add(maxReviewAge), errUnauthenticated, 3)

	bad := jwtShaped(now.Add(time.Hour), "bad")
	expect("refused", bad, now, errUnauthenticated, 4)
	expect("refused, again", bad, now.Add(refusedAge-time.Second), errUnauthenticated, 4)
	reviews.users[bad] = saUser("ns", "c")
	expect("refused, after refusedAge", bad, now.Add(refusedAge), nil, 5)

	expired := jwtShaped(now.Add(-time.Second), "expired")
	reviews.users[expired] = saUser("ns", "d")
	expect("expired: no review", expired, now, errUnauthenticated, 5)
	expect("not a JWT: no review", "opaque-token", now, errUnauthenticated, 5)

	flaky := jwtShaped(now.Add(time.Hour), "flaky")
	reviews.users[flaky] = saUser("ns", "e")
	reviews.err = errors.New("connection refused")
	expect("review failed", flaky, now, errReviewUnavailable, 6)
	reviews.err = nil
	expect("failure not cached", flaky, now, nil, 7)
}

// beforeReview runs for every review the cache does not answer, and only
// then, and may refuse it.
func TestAuthenticateBeforeReview(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reviews := newFakeTokenReviews()
	a := newAuthenticator(reviews, "signet", logr.Discard())
	tok := jwtShaped(now.Add(time.Hour), "x")
	reviews.users[tok] = saUser("ns", "a")
	limited := 0
	refuse := func() *apiError { limited++; return errTooManyRequests }
	if _, e := a.authenticate(context.Background(), tok, now, refuse); e != errTooManyRequests || reviews.count() != 0 {
		t.Fatalf("refused before review: %v, %d reviews", e, reviews.count())
	}
	if _, e := a.authenticate(context.Background(), tok, now, noLimit); e != nil {
		t.Fatal(e.message)
	}
	if _, e := a.authenticate(context.Background(), tok, now, refuse); e != nil || limited != 1 {
		t.Errorf("a cached review went through the limit: %v, limited %d times", e, limited)
	}
}

// A flood of distinct tokens cannot grow the cache past its bound.
func TestAuthenticateCacheIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reviews := newFakeTokenReviews()
	a := newAuthenticator(reviews, "signet", logr.Discard())
	for i := range reviewCacheSz + 500 {
		_, _ = a.authenticate(context.Background(), jwtShaped(now.Add(time.Hour), fmt.Sprint(i)), now, noLimit)
	}
	if n := a.cache.len(); n != reviewCacheSz {
		t.Errorf("%d cached reviews after %d distinct tokens, want the bound %d", n, reviewCacheSz+500, reviewCacheSz)
	}
}
