package jwks

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The request path: parse the path by hand, look the org/site up in the
// immutable store, assign pre-built header values, write pre-serialized
// bytes. No regular expression, no router, no JSON encoding, no lock.

const (
	pathOrgPrefix = "/v2/org/"
	pathSiteInfix = "/nico/site/"
)

// Header values shared by every response. Single-element slices, never
// appended to, so handing the same slice to every response is safe.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoSniff = []string{"nosniff"}
	hdrNoStore = []string{"no-store"}
	hdrAllow   = []string{"GET, HEAD"}
)

// errorResponse is a pre-serialized NICo error: {"source":"nico","message":...,"data":null}.
type errorResponse struct {
	code   int
	body   []byte
	lenHdr []string
}

func newError(code int, message string) *errorResponse {
	body := []byte(`{"source":"nico","message":` + strconv.Quote(message) + `,"data":null}`)
	return &errorResponse{code: code, body: body, lenHdr: []string{strconv.Itoa(len(body))}}
}

// The errors, one message each, fixed: a message never echoes the request.
var (
	errUnknownPath = newError(http.StatusNotFound, "not found: the path is not a tenant identity document")
	errNotServed   = newError(http.StatusNotFound, "not found: no published tenant identity for this org and site")
	errBadSiteID   = newError(http.StatusBadRequest, "malformed siteID: it must be a lowercase UUID")
	errMethod      = newError(http.StatusMethodNotAllowed, "method not allowed: use GET or HEAD")
	errBadKeys     = newError(http.StatusBadGateway, "the stored keys of this org and site are invalid; they are not served")
	errNotSynced   = newError(http.StatusServiceUnavailable, "the server is starting: its cache has not synced yet")
)

// ServeHTTP answers the three documents of every served org/site.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, code := s.serve(w, r)
	s.metrics.observe(rt, code, time.Since(start))
}

// serve writes the response and returns what the metrics record.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) (route, int) {
	org, site, rt, ok := parsePath(r.URL.Path)
	if !ok {
		return routeUnknown, writeError(w, r, errUnknownPath)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return rt, writeError(w, r, errMethod)
	}
	if !isLowerUUID(site) {
		return rt, writeError(w, r, errBadSiteID)
	}
	if !s.synced.Load() {
		return rt, writeError(w, r, errNotSynced)
	}
	e := s.store.get(tenantKey{org, site})
	switch {
	case e == nil:
		return rt, writeError(w, r, errNotServed)
	case e.bad:
		return rt, writeError(w, r, errBadKeys)
	}
	return rt, writeDocument(w, r, &e.docs[rt])
}

// writeDocument writes d, or 304 when the client holds it already.
func writeDocument(w http.ResponseWriter, r *http.Request, d *document) int {
	h := w.Header()
	h["Etag"] = d.vals[0:1:1]
	h["Cache-Control"] = d.vals[1:2:2]
	h["X-Content-Type-Options"] = hdrNoSniff
	if inm, ok := r.Header["If-None-Match"]; ok && noneMatchHits(inm, d.etag()) {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = d.vals[2:3:3]
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(d.body)
	}
	return http.StatusOK
}

// writeError writes a NICo error. Errors are not cached: a 503 or a 404
// must not outlive the condition that caused it.
func writeError(w http.ResponseWriter, r *http.Request, e *errorResponse) int {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = e.lenHdr
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNoSniff
	if e.code == http.StatusMethodNotAllowed {
		h["Allow"] = hdrAllow
	}
	w.WriteHeader(e.code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
	return e.code
}

// parsePath splits /v2/org/{org}/nico/site/{siteID}/<document>. The
// substrings alias path: nothing is allocated. An empty org or siteID, an
// extra segment or an unknown document is not a route.
func parsePath(path string) (org, site string, rt route, ok bool) {
	rest, ok := strings.CutPrefix(path, pathOrgPrefix)
	if !ok {
		return "", "", 0, false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", 0, false
	}
	org, rest = rest[:i], rest[i:]
	if rest, ok = strings.CutPrefix(rest, pathSiteInfix); !ok {
		return "", "", 0, false
	}
	i = strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", 0, false
	}
	site, rest = rest[:i], rest[i:]
	for r, suffix := range routeSuffixes {
		if rest == suffix {
			return org, site, route(r), true
		}
	}
	return "", "", 0, false
}

// isLowerUUID reports whether s is a UUID in the canonical lowercase form
// the CRD requires of spec.siteID (8-4-4-4-12 hex digits).
func isLowerUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// noneMatchHits reports whether an If-None-Match field (possibly repeated,
// each a comma-separated list) matches etag, with the weak comparison RFC
// 9110 13.1.2 prescribes for If-None-Match: W/ prefixes are ignored. "*"
// matches any current representation, and a served document is one.
func noneMatchHits(fields []string, etag string) bool {
	for _, field := range fields {
		for field != "" {
			var tag string
			tag, field = nextEntityTag(field)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// nextEntityTag returns the first element of a comma-separated list of
// entity-tags and the rest. A quoted tag may contain commas (RFC 9110
// allows any etagc except '"'), so the scan skips over quotes.
func nextEntityTag(list string) (tag, rest string) {
	list = strings.TrimLeft(list, " \t,")
	inQuotes := false
	for i := 0; i < len(list); i++ {
		switch list[i] {
		case '"':
			inQuotes = !inQuotes
		case ',':
			if !inQuotes {
				return strings.TrimRight(list[:i], " \t"), list[i+1:]
			}
		}
	}
	return strings.TrimRight(list, " \t"), ""
}
