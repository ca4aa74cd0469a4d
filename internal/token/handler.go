package token

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
)

// Publications is what the JWKS server serves (*jwks.Server): who owns an
// org/site, its issuer and its kids, and whether its cache has synced.
type Publications interface {
	Published(org, siteID string) (jwks.Publication, bool)
	ReadyCheck() healthz.Checker
}

// handlerConfig is what the handler reads from and asks.
type handlerConfig struct {
	pubs          Publications
	tenants       client.Reader // the manager's cache
	secrets       client.Reader // the manager's API reader
	tokenReviews  TokenReviewer
	accessReviews AccessReviewer
	audience      string // of the bearer tokens (--token-review-audience)
	limits        Limits
	clock         clock.PassiveClock
	log           logr.Logger
}

// handler answers POST /v2/org/{org}/nico/site/{siteID}/token.
type handler struct {
	pubs    Publications
	ready   healthz.Checker
	tenants client.Reader
	keys    *keySource
	authn   *authenticator
	authz   *authorizer

	perCaller, perNamespace, reviewsPerClient *buckets

	clock clock.PassiveClock
	log   logr.Logger
}

func newHandler(c handlerConfig) *handler {
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	return &handler{
		pubs:             c.pubs,
		ready:            c.pubs.ReadyCheck(),
		tenants:          c.tenants,
		keys:             newKeySource(c.secrets),
		authn:            newAuthenticator(c.tokenReviews, c.audience, c.log),
		authz:            newAuthorizer(c.accessReviews),
		perCaller:        newBuckets(c.limits.PerCaller, c.limits.PerCallerBurst),
		perNamespace:     newBuckets(c.limits.PerNamespace, c.limits.PerNamespaceBurst),
		reviewsPerClient: newBuckets(c.limits.ReviewsPerClient, c.limits.ReviewsPerClientBurst),
		clock:            c.clock,
		log:              c.log,
	}
}

// response is the body of a 200.
type response struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt"`
	KeyID     string `json:"keyID"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := h.serve(w, r)
	requestsTotal.WithLabelValues(strconv.Itoa(code)).Inc()
}

// serve answers one request and returns its status code. The checks run
// from the cheapest and least revealing to the most expensive: path and
// method, who is calling (and how often), whether the org/site is
// published, whether the caller may use its TenantIdentity, what that
// TenantIdentity allows, and only then a signature.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) int {
	org, site, ok := parsePath(r.URL.Path)
	switch {
	case !ok:
		return writeError(w, errUnknownPath)
	case r.Method != http.MethodPost:
		return writeError(w, errMethod)
	case !isLowerUUID(site):
		return writeError(w, errBadSiteID)
	case h.ready(r) != nil:
		return writeError(w, errNotSynced)
	}
	ctx, now := r.Context(), h.clock.Now()
	caller, e := h.caller(ctx, r, now)
	if e != nil {
		return writeError(w, e)
	}
	pub, ok := h.pubs.Published(org, site)
	if !ok {
		return writeError(w, errNotServed)
	}
	if e := h.authorize(ctx, caller, pub.Owner, now); e != nil {
		return writeError(w, e)
	}
	pol, e := h.policy(ctx, pub.Owner)
	if e != nil {
		return writeError(w, e)
	}
	body, e := readBody(r.Body)
	if e != nil {
		return writeError(w, e)
	}
	req, e := parseBody(body)
	if e != nil {
		return writeError(w, e)
	}
	aud, e := pol.audiences(req)
	if e != nil {
		return writeError(w, e)
	}
	ttl, e := pol.lifetime(req)
	if e != nil {
		return writeError(w, e)
	}
	sub := pol.subject(caller.Namespace, caller.ServiceAccount)
	res, e := h.mint(ctx, tenantKey{org, site}, pub, sub, aud, ttl, now)
	if e != nil {
		return writeError(w, e)
	}
	return writeJSON(w, res)
}

// caller authenticates the bearer token and charges the caller's buckets.
func (h *handler) caller(ctx context.Context, r *http.Request, now time.Time) (*Caller, *apiError) {
	tok, ok := bearer(r)
	if !ok {
		return nil, errUnauthenticated
	}
	c, e := h.authn.authenticate(ctx, tok, now, func() *apiError {
		if d, ok := h.reviewsPerClient.take(clientAddress(r), now); !ok {
			return tooMany(d)
		}
		return nil
	})
	switch {
	case e != nil:
		return nil, e
	case c.Namespace == "":
		return nil, errNotServiceAccount
	}
	if d, ok := h.perCaller.take(c.User, now); !ok {
		return nil, tooMany(d)
	}
	if d, ok := h.perNamespace.take(c.Namespace, now); !ok {
		return nil, tooMany(d)
	}
	return c, nil
}

// clientAddress is the request's source IP (its port changes per connection).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authorize asks whether c may create tokens for the TenantIdentity owner.
func (h *handler) authorize(ctx context.Context, c *Caller, owner jwks.Owner, now time.Time) *apiError {
	ok, err := h.authz.allowed(ctx, c, owner, now)
	switch {
	case err != nil:
		h.log.Info("SubjectAccessReview failed; answering 503", "error", err.Error())
		return errReviewUnavailable
	case !ok:
		h.log.V(1).Info("token refused: no RBAC grant", "user", c.User, "tenantIdentity", owner.Namespace+"/"+owner.Name)
		return errForbidden
	}
	return nil
}

// policy reads the token policy of the TenantIdentity that publishes the
// org/site, from the manager's cache: the object must still be the one
// the documents come from (same UID), and have spec.tokens.
func (h *handler) policy(ctx context.Context, owner jwks.Owner) (policy, *apiError) {
	var ti v1alpha1.TenantIdentity
	// Read-only use of the cached object: no copy needed.
	err := h.tenants.Get(ctx, client.ObjectKey{Namespace: owner.Namespace, Name: owner.Name}, &ti, client.UnsafeDisableDeepCopy)
	if err != nil || ti.UID != owner.UID {
		return policy{}, errNotServed
	}
	pol, ok, perr := policyOf(&ti)
	switch {
	case !ok:
		return pol, errNoTokens
	case perr != nil:
		h.log.Info("tenant identity's token lifetime unreadable", "tenantIdentity", owner.Namespace+"/"+owner.Name, "error", perr.Error())
		return pol, errBadPolicy
	}
	return pol, nil
}

// mint signs the claims with the Active key. The publication is checked
// again after signing: a token is handed out only when its key is still
// the one the documents list first, so that a rotation or a revocation
// racing the request never yields a token of a key that is on its way out.
func (h *handler) mint(ctx context.Context, t tenantKey, pub jwks.Publication, sub string, aud []string, ttl time.Duration, now time.Time) (*response, *apiError) {
	jti := newJTI()
	for range 2 {
		key, err := h.keys.active(ctx, t, pub)
		if err != nil {
			h.log.Info("no signing key; answering 503", "org", t.org, "siteID", t.site, "kid", pub.ActiveKID(), "error", err.Error())
			return nil, errKeyUnavailable
		}
		c := newClaims(pub.Issuer, sub, aud, now, ttl, jti)
		payload, err := json.Marshal(c)
		if err != nil {
			return nil, errKeyUnavailable
		}
		raw, err := key.sign(payload)
		if err != nil {
			h.log.Info("signing failed; answering 503", "kid", key.kid, "error", err.Error())
			return nil, errKeyUnavailable
		}
		cur, ok := h.pubs.Published(t.org, t.site)
		if !ok || cur.Owner != pub.Owner {
			return nil, errKeyUnavailable
		}
		if cur.ActiveKID() == key.kid && cur.Issuer == pub.Issuer {
			exp := time.Unix(c.Expiry, 0).UTC()
			h.log.Info("token issued", "tenantIdentity", pub.Owner.Namespace+"/"+pub.Owner.Name, "sub", sub, "aud", aud, "kid", key.kid, "jti", jti, "exp", exp)
			return &response{Token: raw, ExpiresAt: exp.Format(time.RFC3339), KeyID: key.kid}, nil
		}
		pub = cur // the key changed meanwhile: sign again with the new one
	}
	return nil, errKeyUnavailable
}

// writeJSON writes a 200 with v as its body.
func writeJSON(w http.ResponseWriter, v *response) int {
	body, err := json.Marshal(v)
	if err != nil {
		return writeError(w, errKeyUnavailable)
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNoSniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return http.StatusOK
}
