package token

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	const site = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	cases := []struct {
		path      string
		org, site string
		ok        bool
	}{
		{"/v2/org/acme/nico/site/" + site + "/token", "acme", site, true},
		{"/v2/org/acme/nico/site/NOT-A-UUID/token", "acme", "NOT-A-UUID", true}, // the handler refuses it: 400
		{"/v2/org/acme/nico/site/" + site + "/token/", "", "", false},
		{"/v2/org/acme/nico/site/" + site + "/.well-known/jwks.json", "", "", false},
		{"/v2/org/acme/nico/site/" + site, "", "", false},
		{"/v2/org//nico/site/" + site + "/token", "", "", false},
		{"/v2/org/acme/nico/site//token", "", "", false},
		{"/v2/org/a/b/nico/site/" + site + "/token", "", "", false},
		{"/v2/org/acme/nico/site/" + site + "/x/token", "", "", false},
		{"/v1/org/acme/nico/site/" + site + "/token", "", "", false},
		{"/", "", "", false},
	}
	for _, tc := range cases {
		org, s, ok := parsePath(tc.path)
		if org != tc.org || s != tc.site || ok != tc.ok {
			t.Errorf("parsePath(%q) = %q, %q, %v; want %q, %q, %v", tc.path, org, s, ok, tc.org, tc.site, tc.ok)
		}
	}
}

func TestIsLowerUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f":  true,
		"7D9F3C1E-5B2A-4C8E-9F10-3A4B5C6D7E8F":  false,
		"7d9f3c1e5b2a4c8e9f103a4b5c6d7e8f":      false,
		"7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8":   false,
		"7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8g":  false,
		"7d9f3c1e_5b2a-4c8e-9f10-3a4b5c6d7e8f":  false,
		"7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8ff": false,
	} {
		if got := isLowerUUID(s); got != want {
			t.Errorf("isLowerUUID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestBearer(t *testing.T) {
	cases := []struct {
		name    string
		headers []string
		want    string
		ok      bool
	}{
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", true},
		{"scheme is case-insensitive", []string{"bearer abc"}, "abc", true},
		{"trailing space", []string{"Bearer abc "}, "abc", true},
		{"none", nil, "", false},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", false},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", false},
		{"no token", []string{"Bearer "}, "", false},
		{"no space", []string{"Bearerabc"}, "", false},
		{"space inside", []string{"Bearer abc def"}, "", false},
		{"too long", []string{"Bearer " + strings.Repeat("a", maxBearerLength+1)}, "", false},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		for _, h := range tc.headers {
			r.Header.Add("Authorization", h)
		}
		got, ok := bearer(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: bearer = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadBody(t *testing.T) {
	if _, e := readBody(strings.NewReader(strings.Repeat(" ", maxBodyBytes))); e != nil {
		t.Errorf("a body of exactly %d bytes: %v", maxBodyBytes, e.message)
	}
	if _, e := readBody(strings.NewReader(strings.Repeat(" ", maxBodyBytes+1))); e != errBodyTooLarge {
		t.Errorf("a body of %d bytes: %v, want errBodyTooLarge", maxBodyBytes+1, e)
	}
}

func TestParseBody(t *testing.T) {
	sixteen := `["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p"]`
	seventeen := `["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]`
	cases := []struct {
		name string
		body string
		want tokenRequest
		err  *apiError
	}{
		{"empty body", "", tokenRequest{}, nil},
		{"whitespace", " \n", tokenRequest{}, nil},
		{"empty object", "{}", tokenRequest{}, nil},
		{"both", `{"audience":["x","y"],"expirationSeconds":600}`, tokenRequest{audiences: []string{"x", "y"}, expirationSeconds: 600}, nil},
		{"audience only", `{"audience":["x"]}`, tokenRequest{audiences: []string{"x"}}, nil},
		{"empty audience list", `{"audience":[]}`, tokenRequest{audiences: []string{}}, nil},
		{"sixteen audiences", `{"audience":` + sixteen + `}`, tokenRequest{audiences: strings.Split("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p", ",")}, nil},
		{"seventeen audiences", `{"audience":` + seventeen + `}`, tokenRequest{}, errTooManyAudiences},
		{"duplicate audience", `{"audience":["x","x"]}`, tokenRequest{}, errDuplicateAudience},
		{"audience a string", `{"audience":"x"}`, tokenRequest{}, errAudienceType},
		{"audience null", `{"audience":null}`, tokenRequest{}, errAudienceType},
		{"audience of numbers", `{"audience":[1]}`, tokenRequest{}, errAudienceType},
		{"expiration zero", `{"expirationSeconds":0}`, tokenRequest{}, errExpirationType},
		{"expiration negative", `{"expirationSeconds":-5}`, tokenRequest{}, errExpirationType},
		{"expiration fraction", `{"expirationSeconds":1.5}`, tokenRequest{}, errExpirationType},
		{"expiration exponent", `{"expirationSeconds":1e3}`, tokenRequest{}, errExpirationType},
		{"expiration string", `{"expirationSeconds":"600"}`, tokenRequest{}, errExpirationType},
		{"expiration null", `{"expirationSeconds":null}`, tokenRequest{}, errExpirationType},
		{"expiration overflows int64", `{"expirationSeconds":99999999999999999999}`, tokenRequest{}, errExpirationType},
		{"unknown field", `{"aud":["x"]}`, tokenRequest{}, errUnknownField},
		{"field in another case", `{"Audience":["x"]}`, tokenRequest{}, errUnknownField},
		{"array", `[]`, tokenRequest{}, errBodyNotObject},
		{"null", `null`, tokenRequest{}, errBodyNotObject},
		{"not JSON", `audience=x`, tokenRequest{}, errBodyNotObject},
		{"truncated", `{"audience":["x"]`, tokenRequest{}, errBodyNotObject},
		{"trailing data", `{} {}`, tokenRequest{}, errBodyNotObject},
	}
	for _, tc := range cases {
		got, e := parseBody([]byte(tc.body))
		if e != tc.err {
			t.Errorf("%s: error %v, want %v", tc.name, e, tc.err)
			continue
		}
		if e == nil && (!slices.Equal(got.audiences, tc.want.audiences) || got.expirationSeconds != tc.want.expirationSeconds) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// Every error answer has NICo's shape, with a message.
func TestErrorBodiesAreNICoShaped(t *testing.T) {
	for _, e := range []*apiError{errUnknownPath, errMethod, errBadSiteID, errUnauthenticated, errNotServiceAccount,
		errForbidden, errTooManyRequests, errNotServed, errNoTokens, errBodyTooLarge, errBodyNotObject, errUnknownField,
		errAudienceType, errTooManyAudiences, errDuplicateAudience, errExpirationType, errAudienceNotAllowed,
		errNoAudience, errTooLong(3600), errNotSynced, errReviewUnavailable, errKeyUnavailable, errBadPolicy} {
		body := string(e.body())
		if !strings.HasPrefix(body, `{"source":"nico","message":"`) || !strings.HasSuffix(body, `","data":null}`) || e.message == "" {
			t.Errorf("%d %q: body %s", e.code, e.message, body)
		}
	}
}
