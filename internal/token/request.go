package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Limits of a request. A body names at most maxAudiences audiences of at
// most 256 characters each (the CRD's bound on allowedAudiences), which
// fits in maxBodyBytes with room for JSON punctuation and whitespace.
const (
	maxBodyBytes    = 8 << 10
	maxAudiences    = 16
	maxBearerLength = 16 << 10
)

const (
	pathOrgPrefix = "/v2/org/"
	pathSiteInfix = "/nico/site/"
	pathSuffix    = "/token"
)

// tokenRequest is a parsed body. Zero values mean "not given".
type tokenRequest struct {
	audiences         []string
	expirationSeconds int64
}

// parsePath splits /v2/org/{org}/nico/site/{siteID}/token. An empty org or
// siteID, or any other shape, is not a route.
func parsePath(path string) (org, site string, ok bool) {
	rest, ok := strings.CutPrefix(path, pathOrgPrefix)
	if !ok {
		return "", "", false
	}
	org, rest, ok = strings.Cut(rest, pathSiteInfix)
	if !ok || org == "" || strings.Contains(org, "/") {
		return "", "", false
	}
	site, ok = strings.CutSuffix(rest, pathSuffix)
	if !ok || site == "" || strings.Contains(site, "/") {
		return "", "", false
	}
	return org, site, true
}

// isLowerUUID reports whether s is a UUID in lowercase hex, as the CRD
// requires of siteID.
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

// bearer returns the token of an "Authorization: Bearer <token>" header:
// exactly one header, the scheme case-insensitive, a non-empty token of
// bounded size without spaces.
func bearer(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > maxBearerLength || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// readBody reads at most maxBodyBytes of body.
func readBody(body io.Reader) ([]byte, *apiError) {
	b, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	switch {
	case err != nil:
		return nil, errBodyNotObject
	case len(b) > maxBodyBytes:
		return nil, errBodyTooLarge
	}
	return b, nil
}

// parseBody decodes {"audience": [...], "expirationSeconds": N}, both
// optional; an empty body is {}. Field names are matched exactly (Go's
// decoder alone would also take "Audience"), so any other field, in any
// spelling, is refused.
func parseBody(b []byte) (tokenRequest, *apiError) {
	var req tokenRequest
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return req, nil
	}
	if b[0] != '{' {
		return req, errBodyNotObject
	}
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(b, &fields); err != nil {
		return req, errBodyNotObject
	}
	for name, raw := range fields {
		switch name {
		case "audience":
			aud, e := parseAudiences(raw)
			if e != nil {
				return req, e
			}
			req.audiences = aud
		case "expirationSeconds":
			if err := strictUnmarshal(raw, &req.expirationSeconds); err != nil || req.expirationSeconds <= 0 {
				return req, errExpirationType
			}
		default:
			return req, errUnknownField
		}
	}
	return req, nil
}

// parseAudiences decodes a list of at most maxAudiences distinct strings.
func parseAudiences(raw json.RawMessage) ([]string, *apiError) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' {
		return nil, errAudienceType
	}
	var aud []string
	if err := strictUnmarshal(raw, &aud); err != nil {
		return nil, errAudienceType
	}
	if len(aud) > maxAudiences {
		return nil, errTooManyAudiences
	}
	for i, a := range aud {
		for _, b := range aud[:i] {
			if a == b {
				return nil, errDuplicateAudience
			}
		}
	}
	return aud, nil
}

// strictUnmarshal is json.Unmarshal (which refuses trailing data) that
// also refuses a literal null (which Unmarshal takes as "leave the zero
// value").
func strictUnmarshal(b []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errors.New("null")
	}
	return json.Unmarshal(b, v)
}
