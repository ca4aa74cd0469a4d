package keys

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestCheckPublicAccepts(t *testing.T) {
	t.Parallel()
	tests := map[string][]byte{
		"RFC 7638 example with its thumbprint": edit(t, []byte(rfc7638Example), map[string]any{"kid": rfc7638KID}),
		"without use":                          edit(t, mustPublicJWK(t, fixture(t, ES256, false)), nil, "use"),
		"unknown public member":                edit(t, mustPublicJWK(t, fixture(t, ES256, false)), map[string]any{"key_ops": []string{"verify"}}),
		"x5c without x5t#S256":                 edit(t, mustPublicJWK(t, fixture(t, EdDSA, true)), nil, "x5t#S256"),
	}
	for _, alg := range Algorithms() {
		tests[alg] = mustPublicJWK(t, fixture(t, alg, false))
		tests[alg+" with cert"] = mustPublicJWK(t, fixture(t, alg, true))
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := CheckPublic(raw); err != nil {
				t.Fatalf("CheckPublic(%s) = %v", raw, err)
			}
		})
	}
}

// marker stands in for private values that have no real counterpart.
const marker = "U0VDUkVULU1BUktFUi1kby1ub3QtbGVhaw"

func TestCheckPublicRefuses(t *testing.T) {
	t.Parallel()
	ec := fixture(t, ES256, true)
	rsaM := fixture(t, RS256, false)
	ed := fixture(t, EdDSA, false)
	ecPub, rsaPub, edPub := mustPublicJWK(t, ec), mustPublicJWK(t, rsaM), mustPublicJWK(t, ed)
	ecPriv, rsaPriv := privMembers(t, ec), privMembers(t, rsaM)
	weak := weakRSAJWK(t)

	type tc struct {
		raw     []byte
		kid     string // expected PublicKeyError.KID
		reason  string // substring of the message
		secrets []string
	}
	tests := map[string]tc{
		"not JSON":          {[]byte(`{"kty":`), "", "not valid JSON", nil},
		"empty":             {nil, "", "not valid JSON", nil},
		"trailing garbage":  {append(slices.Clone(ecPub), 'x'), "", "not valid JSON", nil},
		"JSON array":        {[]byte(`[` + string(ecPub) + `]`), "", "not a JSON object", nil},
		"JSON string":       {[]byte(`"` + marker + `"`), "", "not a JSON object", []string{marker}},
		"JSON null":         {[]byte(`null`), "", "not a JSON object", nil},
		"duplicate kid":     {[]byte(`{"kid":"a","kty":"EC","kid":"b"}`), "", `member "kid" appears more than once`, nil},
		"kid in two cases":  {[]byte(`{"kid":"a","KID":"b"}`), "", `member "KID" appears more than once`, nil},
		"symmetric oct key": {[]byte(`{"kty":"oct","kid":"s","alg":"HS256","k":"` + marker + `"}`), "s", `symmetric key (kty "oct")`, []string{marker}},
		"oth": {edit(t, rsaPub, map[string]any{"oth": []map[string]string{{"r": marker, "d": marker, "t": marker}}}),
			rsaM.KID, `carries private member "oth"`, []string{marker}},
		"k on an EC key":          {edit(t, ecPub, map[string]any{"k": marker}), ec.KID, `carries private member "k"`, []string{marker}},
		"upper-case D":            {edit(t, ecPub, map[string]any{"D": ecPriv["d"]}), ec.KID, `carries private member "D"`, []string{ecPriv["d"]}},
		"d on an Ed25519 key":     {edit(t, edPub, map[string]any{"d": marker}), ed.KID, `carries private member "d"`, []string{marker}},
		"d as a number":           {edit(t, ecPub, map[string]any{"d": 12345678987654321}), ec.KID, `carries private member "d"`, []string{"12345678987654321"}},
		"missing kid":             {edit(t, ecPub, nil, "kid"), "", `missing member "kid"`, nil},
		"empty kid":               {edit(t, ecPub, map[string]any{"kid": ""}), "", `missing member "kid"`, nil},
		"numeric kid":             {edit(t, ecPub, map[string]any{"kid": 7}), "", `missing member "kid"`, nil},
		"missing kty":             {edit(t, ecPub, nil, "kty"), ec.KID, `missing member "kty"`, nil},
		"missing alg":             {edit(t, ecPub, nil, "alg"), ec.KID, `missing member "alg"`, nil},
		"unknown alg":             {edit(t, ecPub, map[string]any{"alg": "HS256"}), ec.KID, `unsupported alg "HS256"`, nil},
		"alg none":                {edit(t, ecPub, map[string]any{"alg": "none"}), ec.KID, `unsupported alg "none"`, nil},
		"lower-case alg":          {edit(t, ecPub, map[string]any{"alg": "es256"}), ec.KID, `unsupported alg "es256"`, nil},
		"RS256 on EC key":         {edit(t, ecPub, map[string]any{"alg": RS256}), ec.KID, "algorithm RS256 needs an RSA key, got an EC P-256 key", nil},
		"ES384 on P-256 key":      {edit(t, ecPub, map[string]any{"alg": ES384}), ec.KID, "algorithm ES384 needs an EC P-384 key, got an EC P-256 key", nil},
		"ES256 on RSA key":        {edit(t, rsaPub, map[string]any{"alg": ES256}), rsaM.KID, "algorithm ES256 needs an EC P-256 key, got an RSA 2048-bit key", nil},
		"EdDSA on RSA key":        {edit(t, rsaPub, map[string]any{"alg": EdDSA}), rsaM.KID, "algorithm EdDSA needs an Ed25519 key", nil},
		"PS256 on Ed25519 key":    {edit(t, edPub, map[string]any{"alg": PS256}), ed.KID, "algorithm PS256 needs an RSA key, got an Ed25519 key", nil},
		"kty EC with RSA members": {edit(t, rsaPub, map[string]any{"kty": "EC"}), rsaM.KID, "not a valid JWK", nil},
		"unsupported kty":         {edit(t, ecPub, map[string]any{"kty": "AKP"}), ec.KID, "not a valid JWK", nil},
		"wrong kid":               {edit(t, ecPub, map[string]any{"kid": rsaM.KID}), rsaM.KID, "kid is not the RFC 7638 SHA-256 thumbprint of the key", nil},
		"free-form kid":           {edit(t, ecPub, map[string]any{"kid": "2026-01-key"}), "2026-01-key", "kid is not the RFC 7638 SHA-256 thumbprint", nil},
		"point not on curve":      {edit(t, ecPub, map[string]any{"y": str(t, members(t, ecPub), "x")}), ec.KID, "not a valid JWK", nil},
		"use enc":                 {edit(t, ecPub, map[string]any{"use": "enc"}), ec.KID, `member "use" must be "sig"`, nil},
		"x5u":                     {edit(t, ecPub, map[string]any{"x5u": "https://" + marker + ".test/"}), ec.KID, `member "x5u" is not allowed`, []string{marker}},
		"x5c of another key":      {edit(t, edPub, map[string]any{"x5c": members(t, ecPub)["x5c"]}), ed.KID, "not a valid JWK", nil},
		"x5t#S256 mismatch":       {edit(t, ecPub, map[string]any{"x5t#S256": ed.KID}), ec.KID, "not a valid JWK", nil},
		"RSA 1024":                {weak.raw, weak.kid, "RSA modulus of an RSA 1024-bit key is too small", nil},
	}
	// Each private member, with the real private value where the key has one.
	for _, p := range PrivateMembers {
		v, ok := rsaPriv[p]
		if !ok {
			v = marker
		}
		tests["RSA with "+p] = tc{edit(t, rsaPub, map[string]any{p: v}), rsaM.KID, `carries private member "` + p + `"`, []string{v}}
	}
	tests["EC with its real d"] = tc{edit(t, ecPub, map[string]any{"d": ecPriv["d"]}), ec.KID, `carries private member "d"`, []string{ecPriv["d"]}}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := CheckPublic(tc.raw)
			var pke *PublicKeyError
			if !errors.As(err, &pke) {
				t.Fatalf("CheckPublic = %v, want a *PublicKeyError", err)
			}
			if pke.KID != tc.kid {
				t.Errorf("KID = %q, want %q", pke.KID, tc.kid)
			}
			if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(pke.Reason, tc.reason) {
				t.Errorf("error = %q, want it to say %q", err, tc.reason)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q echoes the injected value", err)
				}
			}
		})
	}
}

// privMembers returns the private JWK members of m as strings.
func privMembers(t *testing.T, m *Material) map[string]string {
	t.Helper()
	raw, err := m.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}
	obj := members(t, raw)
	out := map[string]string{}
	for _, p := range PrivateMembers {
		if _, ok := obj[p]; ok {
			out[p] = str(t, obj, p)
		}
	}
	return out
}

type weakKey struct {
	raw []byte
	kid string
}

// weakRSAJWK is a well-formed RS256 JWK with a 1024-bit modulus and a
// correct kid, so only the size check can refuse it.
func weakRSAJWK(t *testing.T) weakKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := KID(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: RS256, Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return weakKey{raw, kid}
}

func TestPublicKeyErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  PublicKeyError
		want string
	}{
		{PublicKeyError{KID: "abc", Reason: `carries private member "d"`}, `jwk "abc": carries private member "d"`},
		{PublicKeyError{Reason: "not valid JSON"}, "jwk: not valid JSON"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestCheckPublicKIDTruncated(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 500)
	err := CheckPublic(edit(t, mustPublicJWK(t, fixture(t, ES256, false)), map[string]any{"kid": long}))
	var pke *PublicKeyError
	if !errors.As(err, &pke) || len(pke.KID) > 70 || strings.Contains(err.Error(), long) {
		t.Fatalf("CheckPublic with a 500-byte kid = %v", err)
	}
}
