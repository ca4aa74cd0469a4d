package token

import (
	"net/http"
	"strconv"
)

// apiError is one NICo error answer: {"source":"nico","message":...,"data":null}.
// Messages are fixed text chosen here: they never echo the request, the
// bearer token or anything read from a Secret.
type apiError struct {
	code    int
	message string
	// retryAfter, when set, is sent as Retry-After (seconds).
	retryAfter int
}

func (e *apiError) body() []byte {
	return []byte(`{"source":"nico","message":` + strconv.Quote(e.message) + `,"data":null}`)
}

func newError(code int, message string) *apiError { return &apiError{code: code, message: message} }

// withRetry is e with a Retry-After of at least one second.
func (e *apiError) withRetry(seconds int) *apiError {
	c := *e
	c.retryAfter = max(seconds, 1)
	return &c
}

// Path and method.
var (
	errUnknownPath = newError(http.StatusNotFound, "not found: the path is not a token endpoint (POST /v2/org/{org}/nico/site/{siteID}/token)")
	errMethod      = newError(http.StatusMethodNotAllowed, "method not allowed: use POST")
	errBadSiteID   = newError(http.StatusBadRequest, "malformed siteID: it must be a lowercase UUID")
)

// Caller.
var (
	errUnauthenticated   = newError(http.StatusUnauthorized, "unauthorized: present a valid, unexpired Kubernetes service account token of the token API's audience as Authorization: Bearer <token>")
	errNotServiceAccount = newError(http.StatusForbidden, "forbidden: only Kubernetes service accounts can get tokens")
	errForbidden         = newError(http.StatusForbidden, "forbidden: the caller may not create tokens for the tenant identity of this org and site (it needs create on tenantidentities/token)")
	errTooManyRequests   = newError(http.StatusTooManyRequests, "too many requests: retry after the delay in Retry-After")
)

// Tenant.
var (
	errNotServed = newError(http.StatusNotFound, "not found: no published tenant identity for this org and site")
	errNoTokens  = newError(http.StatusNotFound, "not found: the tenant identity of this org and site does not issue tokens (it has no spec.tokens)")
)

// Body.
var (
	errBodyTooLarge       = newError(http.StatusBadRequest, "bad request: the body is larger than "+strconv.Itoa(maxBodyBytes)+" bytes")
	errBodyNotObject      = newError(http.StatusBadRequest, "bad request: the body must be empty or one JSON object")
	errUnknownField       = newError(http.StatusBadRequest, "bad request: the body may hold only the fields audience and expirationSeconds")
	errAudienceType       = newError(http.StatusBadRequest, "bad request: audience must be a list of strings")
	errTooManyAudiences   = newError(http.StatusBadRequest, "bad request: at most "+strconv.Itoa(maxAudiences)+" audiences per request")
	errDuplicateAudience  = newError(http.StatusBadRequest, "bad request: audience lists the same value twice")
	errExpirationType     = newError(http.StatusBadRequest, "bad request: expirationSeconds must be a whole number of seconds above 0")
	errAudienceNotAllowed = newError(http.StatusBadRequest, "bad request: an audience is not among the tenant identity's spec.tokens.allowedAudiences")
	errNoAudience         = newError(http.StatusBadRequest, "bad request: name an audience: the tenant identity has no spec.tokens.defaultAudience")
)

// errTooLong says how long a token may live at most; that is policy, not
// request input.
func errTooLong(maxSeconds int64) *apiError {
	return newError(http.StatusBadRequest, "bad request: expirationSeconds is above the tenant identity's spec.keys.tokenTTL ("+strconv.FormatInt(maxSeconds, 10)+" seconds)")
}

// Unavailable: retry.
var (
	errNotSynced         = newError(http.StatusServiceUnavailable, "the server is starting: its cache has not synced yet").withRetry(1)
	errReviewUnavailable = newError(http.StatusServiceUnavailable, "the caller could not be checked now: the Kubernetes API did not answer the review").withRetry(1)
	errKeyUnavailable    = newError(http.StatusServiceUnavailable, "the signing key of this org and site is not available now").withRetry(1)
	errBadPolicy         = newError(http.StatusServiceUnavailable, "the tenant identity's key policy cannot be read (spec.keys.tokenTTL)").withRetry(5)
)

// Header values shared by every error answer; never appended to.
var (
	hdrJSON      = []string{"application/json"}
	hdrNoStore   = []string{"no-store"}
	hdrNoSniff   = []string{"nosniff"}
	hdrAllowPost = []string{http.MethodPost}
	hdrBearer    = []string{`Bearer realm="signet"`}
)

// writeError writes e and returns its status code.
func writeError(w http.ResponseWriter, e *apiError) int {
	h := w.Header()
	body := e.body()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNoSniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	switch e.code {
	case http.StatusMethodNotAllowed:
		h["Allow"] = hdrAllowPost
	case http.StatusUnauthorized:
		h["Www-Authenticate"] = hdrBearer
	}
	if e.retryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(e.retryAfter)}
	}
	w.WriteHeader(e.code)
	_, _ = w.Write(body)
	return e.code
}
