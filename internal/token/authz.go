package token

import (
	"context"
	"crypto/sha256"
	"time"

	"golang.org/x/sync/singleflight"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
)

// AccessReviewer creates SubjectAccessReviews: the clientset's
// AuthorizationV1().SubjectAccessReviews() in the manager, a fake in tests.
type AccessReviewer interface {
	Create(ctx context.Context, review *authzv1.SubjectAccessReview, opts metav1.CreateOptions) (*authzv1.SubjectAccessReview, error)
}

// What a caller needs on the TenantIdentity that owns an org/site:
//
//	resources: ["tenantidentities/token"], verbs: ["create"], resourceNames: [<name>]
const (
	tokenVerb        = "create"
	tokenResource    = "tenantidentities"
	tokenSubresource = "token"
)

// How long a decision is trusted: a granted right is used for at most
// allowedAge after it was revoked, a refusal is remembered for deniedAge
// (so a new RoleBinding works within seconds).
const (
	allowedAge    = 30 * time.Second
	deniedAge     = 5 * time.Second
	accessCacheSz = 10000
)

// authorizer asks the API server whether a caller may create tokens for a
// TenantIdentity, caching the answer by caller and object.
type authorizer struct {
	reviews AccessReviewer
	cache   *lru[[sha256.Size]byte, bool]
	flight  singleflight.Group
}

func newAuthorizer(reviews AccessReviewer) *authorizer {
	return &authorizer{reviews: reviews, cache: newLRU[[sha256.Size]byte, bool](accessCacheSz)}
}

// allowed says whether c may create tokens for owner at now. An error
// means the API server did not answer; it is not cached.
func (a *authorizer) allowed(ctx context.Context, c *Caller, owner jwks.Owner, now time.Time) (bool, error) {
	key := accessKey(c, owner)
	if ok, hit := a.cache.get(key, now); hit {
		return ok, nil
	}
	v, err, _ := a.flight.Do(string(key[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		return a.review(rctx, c, owner)
	})
	if err != nil {
		return false, err
	}
	ok := v.(bool)
	age := deniedAge
	if ok {
		age = allowedAge
	}
	a.cache.add(key, ok, now.Add(age))
	return ok, nil
}

// review sends the SubjectAccessReview for the reviewed user as it is:
// user, uid, groups and extra (extra carries the pod binding of a
// projected token, which an authorizer may use).
func (a *authorizer) review(ctx context.Context, c *Caller, owner jwks.Owner) (bool, error) {
	var extra map[string]authzv1.ExtraValue
	if len(c.Extra) > 0 {
		extra = make(map[string]authzv1.ExtraValue, len(c.Extra))
		for k, v := range c.Extra {
			extra[k] = v
		}
	}
	res, err := a.reviews.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   c.User,
		UID:    c.UID,
		Groups: c.Groups,
		Extra:  extra,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace:   owner.Namespace,
			Verb:        tokenVerb,
			Group:       v1alpha1.GroupVersion.Group,
			Resource:    tokenResource,
			Subresource: tokenSubresource,
			Name:        owner.Name,
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return res.Status.Allowed && !res.Status.Denied, nil
}

// accessKey is the cache key of one decision: the caller's fingerprint and
// the object's namespace and name.
func accessKey(c *Caller, owner jwks.Owner) [sha256.Size]byte {
	h := sha256.New()
	_, _ = h.Write(c.fingerprint[:])
	for _, s := range []string{owner.Namespace, owner.Name} {
		_, _ = h.Write([]byte{byte(len(s))}) // names are at most 253 characters
		_, _ = h.Write([]byte(s))
	}
	return sum(h)
}
