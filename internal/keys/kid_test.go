package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// rfc7638Example is the RSA key of RFC 7638 section 3.1 and its thumbprint.
const (
	rfc7638Example = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	rfc7638KID     = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestKIDKnownAnswer(t *testing.T) {
	t.Parallel()
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(rfc7638Example)); err != nil {
		t.Fatal(err)
	}
	got, err := KID(k.Key)
	if err != nil || got != rfc7638KID {
		t.Fatalf("KID(RFC 7638 example) = %q, %v; want %q", got, err, rfc7638KID)
	}
}

func TestKID(t *testing.T) {
	t.Parallel()
	ec := mustSigner(t, fixture(t, ES512, false)).(*ecdsa.PrivateKey)
	ed := mustSigner(t, fixture(t, EdDSA, false)).(ed25519.PrivateKey)
	tests := []struct {
		name    string
		key     any
		want    string // "" with wantErr
		wantErr string
	}{
		{"EC public", &ec.PublicKey, fixture(t, ES512, false).KID, ""},
		{"EC private reduces to public", ec, fixture(t, ES512, false).KID, ""},
		{"Ed25519 public", ed.Public(), fixture(t, EdDSA, false).KID, ""},
		{"Ed25519 private", ed, fixture(t, EdDSA, false).KID, ""},
		{"nil", nil, "", "unsupported public key type <nil>"},
		{"symmetric", []byte("secret"), "", "unsupported public key type []uint8"},
		{"empty EC", &ecdsa.PublicKey{}, "", "incomplete *ecdsa.PublicKey"},
		{"nil EC", (*ecdsa.PublicKey)(nil), "", "incomplete *ecdsa.PublicKey"},
		{"empty RSA", &rsa.PublicKey{}, "", "incomplete *rsa.PublicKey"},
		{"short Ed25519", ed25519.PublicKey{1, 2, 3}, "", "incomplete ed25519.PublicKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := KID(tc.key)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("KID = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("KID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

var shortKIDPattern = regexp.MustCompile(`^[0-9a-f]{10}$`)

func TestShortKID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kid     string
		want    string
		wantErr string
	}{
		{"RFC 7638 example", rfc7638KID, shortHex(t, rfc7638KID), ""},
		{"exactly five bytes", "AAECAwQ", "0001020304", ""},
		{"url alphabet", "-_-_-_-_", "fbffbffbff", ""},
		{"empty", "", "", "too short"},
		{"four bytes", "AAECAw", "", "too short"},
		{"standard alphabet", "ab+/abcd", "", "not base64url"},
		{"padding", "AAECAwQ=", "", "not base64url"},
		{"newline", "AAEC\nAwQF", "", "not base64url"},
		{"space", "AAEC AwQF", "", "not base64url"},
		{"dot", "AAECAwQF.", "", "not base64url"},
		{"impossible length", "AAECA", "", "not base64url"},
		{"non-canonical trailing bits", "AAECAwR", "", "not base64url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ShortKID(tc.kid)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ShortKID(%q) = %q, %v; want error containing %q", tc.kid, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || !shortKIDPattern.MatchString(got) {
				t.Fatalf("ShortKID(%q) = %q, %v; want %q", tc.kid, got, err, tc.want)
			}
		})
	}
}

func TestShortKIDOfGeneratedKeys(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, alg := range Algorithms() {
		kid := fixture(t, alg, false).KID
		a, errA := ShortKID(kid)
		b, errB := ShortKID(kid)
		if errA != nil || errB != nil || a != b {
			t.Fatalf("ShortKID(%q) not deterministic: %q %v, %q %v", kid, a, errA, b, errB)
		}
		if !shortKIDPattern.MatchString(a) || a != shortHex(t, kid) {
			t.Errorf("ShortKID(%q) = %q, want the first 5 thumbprint bytes in lowercase hex", kid, a)
		}
		if prev, dup := seen[a]; dup {
			t.Errorf("ShortKID collision between %s and %s", prev, alg)
		}
		seen[a] = alg
	}
}

// shortHex is the reference computation of a short kid.
func shortHex(t *testing.T, kid string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(kid)
	if err != nil || len(b) < 5 {
		t.Fatalf("bad kid %q: %v", kid, err)
	}
	return hex.EncodeToString(b[:5])
}
