package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenReviewer creates TokenReviews: the clientset's
// AuthenticationV1().TokenReviews() in the manager, a fake in tests.
type TokenReviewer interface {
	Create(ctx context.Context, review *authnv1.TokenReview, opts metav1.CreateOptions) (*authnv1.TokenReview, error)
}

// serviceAccountPrefix starts the user name of every service account.
const serviceAccountPrefix = "system:serviceaccount:"

// Caller is who presented a bearer token, as a TokenReview said.
type Caller struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string
	// Namespace and ServiceAccount are set only when User is a service
	// account (system:serviceaccount:<namespace>:<name>).
	Namespace, ServiceAccount string

	// fingerprint hashes all of the above: the caller's part of the
	// SubjectAccessReview cache key.
	fingerprint [sha256.Size]byte
}

// callerOf turns a reviewed user into a Caller.
func callerOf(u authnv1.UserInfo) *Caller {
	c := &Caller{User: u.Username, UID: u.UID, Groups: slices.Clone(u.Groups)}
	if len(u.Extra) > 0 {
		c.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			c.Extra[k] = slices.Clone(v)
		}
	}
	if rest, ok := strings.CutPrefix(u.Username, serviceAccountPrefix); ok {
		ns, sa, ok := strings.Cut(rest, ":")
		if ok && ns != "" && sa != "" && !strings.Contains(sa, ":") {
			c.Namespace, c.ServiceAccount = ns, sa
		}
	}
	c.fingerprint = fingerprint(c)
	return c
}

// fingerprint hashes a caller's user, uid, groups and extra without
// ambiguity (every string length-prefixed, extra in key order).
func fingerprint(c *Caller) [sha256.Size]byte {
	h := sha256.New()
	write := func(s string) {
		_ = binary.Write(h, binary.BigEndian, uint32(len(s)))
		_, _ = h.Write([]byte(s))
	}
	writeList := func(l []string) {
		_ = binary.Write(h, binary.BigEndian, uint32(len(l)))
		for _, s := range l {
			write(s)
		}
	}
	write(c.User)
	write(c.UID)
	writeList(c.Groups)
	keys := slices.Sorted(maps.Keys(c.Extra))
	writeList(keys)
	for _, k := range keys {
		writeList(c.Extra[k])
	}
	return sum(h)
}

func sum(h hash.Hash) (out [sha256.Size]byte) {
	h.Sum(out[:0])
	return out
}

// How long a review is trusted. An accepted token is trusted at most
// maxReviewAge (kube-apiserver's own webhook token cache default) and
// never past its exp; a refused one is remembered briefly, so that the
// same bad token presented in a loop costs one review per refusedAge.
const (
	maxReviewAge  = 2 * time.Minute
	refusedAge    = 10 * time.Second
	reviewTimeout = 10 * time.Second
	reviewCacheSz = 10000
)

// authenticator reviews bearer tokens, caching the results by the token's
// SHA-256 (the token itself is never kept).
type authenticator struct {
	reviews  TokenReviewer
	audience string
	cache    *lru[[sha256.Size]byte, *Caller] // nil: refused
	flight   singleflight.Group
	log      logr.Logger
}

func newAuthenticator(reviews TokenReviewer, audience string, log logr.Logger) *authenticator {
	return &authenticator{reviews: reviews, audience: audience, cache: newLRU[[sha256.Size]byte, *Caller](reviewCacheSz), log: log}
}

// authenticate says who presents token at now. A token that is not a JWT
// with an exp after now is refused without a review (a TokenReview would
// refuse it too, and the exp bounds the cache). beforeReview runs before
// every review that the cache does not answer, and may refuse it (rate
// limit).
func (a *authenticator) authenticate(ctx context.Context, token string, now time.Time, beforeReview func() *apiError) (*Caller, *apiError) {
	key := sha256.Sum256([]byte(token))
	// A cached review expires no later than its token: a hit is unexpired.
	if c, ok := a.cache.get(key, now); ok {
		return orRefused(c)
	}
	exp, ok := tokenExpiry(token)
	if !ok || !now.Before(exp) {
		return nil, errUnauthenticated
	}
	if e := beforeReview(); e != nil {
		return nil, e
	}
	// Concurrent requests with one token share one review. It runs on a
	// context of its own: one caller going away must not fail the others.
	v, err, _ := a.flight.Do(string(key[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		return a.review(rctx, token)
	})
	if err != nil {
		a.log.Info("TokenReview failed; answering 503", "error", err.Error())
		return nil, errReviewUnavailable
	}
	c := v.(*Caller)
	age := maxReviewAge
	if c == nil {
		age = refusedAge
	}
	a.cache.add(key, c, minTime(now.Add(age), exp))
	return orRefused(c)
}

func orRefused(c *Caller) (*Caller, *apiError) {
	if c == nil {
		return nil, errUnauthenticated
	}
	return c, nil
}

// review asks the API server who token is. A token it does not accept for
// the token API's audience is refused: nil, no error.
func (a *authenticator) review(ctx context.Context, token string) (*Caller, error) {
	res, err := a.reviews.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{
		Token:     token,
		Audiences: []string{a.audience},
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	st := res.Status
	// An authenticator that ignores audiences answers with none: a token
	// for any audience would pass. Only an explicit match counts.
	if !st.Authenticated || !slices.Contains(st.Audiences, a.audience) {
		return nil, nil
	}
	return callerOf(st.User), nil
}

// tokenExpiry reads the exp claim of a JWT's payload without verifying
// anything: it only bounds how long a review of the token is cached, and
// refuses early what cannot be valid.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[1] == "" {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	// A NumericDate; beyond the year 2242 it is nonsense.
	f := *c.Exp
	if f <= 0 || f > math.MaxInt32*4 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
