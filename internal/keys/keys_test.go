package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	want := []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
	if got := Algorithms(); !slices.Equal(got, want) {
		t.Fatalf("Algorithms() = %v, want %v", got, want)
	}
	Algorithms()[0] = "changed"
	if Algorithms()[0] != ES256 {
		t.Fatal("Algorithms() shares its backing array with callers")
	}
}

func TestIsRSA(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		RS256: true, RS384: true, RS512: true, PS256: true, PS384: true, PS512: true,
		ES256: false, ES384: false, ES512: false, EdDSA: false,
		"": false, "rs256": false, "HS256": false, "RSA-OAEP": false,
	}
	for alg, want := range tests {
		if got := IsRSA(alg); got != want {
			t.Errorf("IsRSA(%q) = %v, want %v", alg, got, want)
		}
	}
}

// jwkShape is what a public JWK of each algorithm must look like.
type jwkShape struct {
	kty, crv string
	members  []string // public key members besides kty, kid, alg, use
}

var shapes = map[string]jwkShape{
	ES256: {"EC", "P-256", []string{"crv", "x", "y"}},
	ES384: {"EC", "P-384", []string{"crv", "x", "y"}},
	ES512: {"EC", "P-521", []string{"crv", "x", "y"}},
	RS256: {"RSA", "", []string{"n", "e"}},
	RS384: {"RSA", "", []string{"n", "e"}},
	RS512: {"RSA", "", []string{"n", "e"}},
	PS256: {"RSA", "", []string{"n", "e"}},
	PS384: {"RSA", "", []string{"n", "e"}},
	PS512: {"RSA", "", []string{"n", "e"}},
	EdDSA: {"OKP", "Ed25519", []string{"crv", "x"}},
}

// TestGenerateEveryAlgorithm is the main round trip: generate, publish,
// reload, sign with go-jose and verify with go-jose against the published
// JWK, for every algorithm with and without certificate.
func TestGenerateEveryAlgorithm(t *testing.T) {
	t.Parallel()
	for _, alg := range Algorithms() {
		for _, withCert := range []bool{false, true} {
			name := alg
			if withCert {
				name += "/cert"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				m := fixture(t, alg, withCert)
				if m.Algorithm != alg {
					t.Fatalf("Algorithm = %q, want %q", m.Algorithm, alg)
				}
				if (m.CertPEM != nil) != withCert {
					t.Fatalf("CertPEM present = %v, want %v", m.CertPEM != nil, withCert)
				}
				pub := checkPublicJWK(t, m, withCert)
				checkKeyType(t, m, alg)
				checkLoadRoundTrip(t, m)
				checkPrivateJWK(t, m, pub)
				checkSignVerify(t, m, pub)
				if err := CheckPublic(mustPublicJWK(t, m)); err != nil {
					t.Errorf("CheckPublic(PublicJWK()) = %v", err)
				}
				if withCert {
					checkCert(t, m, pub)
				}
			})
		}
	}
}

func mustPublicJWK(t *testing.T, m *Material) []byte {
	t.Helper()
	raw, err := m.PublicJWK()
	if err != nil {
		t.Fatalf("PublicJWK: %v", err)
	}
	return raw
}

// checkPublicJWK asserts the exact member set and values, and returns the
// JWK as go-jose parses it.
func checkPublicJWK(t *testing.T, m *Material, withCert bool) *jose.JSONWebKey {
	t.Helper()
	raw := mustPublicJWK(t, m)
	if bytes.ContainsAny(raw, " \n\t\r") {
		t.Errorf("PublicJWK is not compact JSON: %s", raw)
	}
	shape := shapes[m.Algorithm]
	obj := members(t, raw)
	want := append([]string{"kty", "kid", "alg", "use"}, shape.members...)
	if withCert {
		want = append(want, "x5c", "x5t#S256")
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(obj)); !slices.Equal(got, want) {
		t.Errorf("PublicJWK members = %v, want %v", got, want)
	}
	for _, p := range PrivateMembers {
		if _, ok := obj[p]; ok {
			t.Errorf("PublicJWK carries private member %q", p)
		}
	}
	for member, want := range map[string]string{"kty": shape.kty, "kid": m.KID, "alg": m.Algorithm, "use": "sig"} {
		if got := str(t, obj, member); got != want {
			t.Errorf("PublicJWK %s = %q, want %q", member, got, want)
		}
	}
	if shape.crv != "" && str(t, obj, "crv") != shape.crv {
		t.Errorf("PublicJWK crv = %q, want %q", str(t, obj, "crv"), shape.crv)
	}

	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(raw); err != nil {
		t.Fatalf("go-jose cannot parse PublicJWK: %v", err)
	}
	if !pub.IsPublic() || !pub.Valid() {
		t.Fatal("go-jose does not see a valid public key")
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.RawURLEncoding.EncodeToString(tp); m.KID != want {
		t.Errorf("KID = %q, go-jose thumbprint = %q", m.KID, want)
	}
	return &pub
}

// checkKeyType asserts the algorithm -> key type/curve/size mapping.
func checkKeyType(t *testing.T, m *Material, alg string) {
	t.Helper()
	s, err := m.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	switch k := s.(type) {
	case *ecdsa.PrivateKey:
		want := map[string]elliptic.Curve{ES256: elliptic.P256(), ES384: elliptic.P384(), ES512: elliptic.P521()}[alg]
		if k.Curve != want {
			t.Errorf("%s key on curve %v", alg, k.Curve.Params().Name)
		}
	case *rsa.PrivateKey:
		if !IsRSA(alg) || k.N.BitLen() != 2048 {
			t.Errorf("%s key is RSA %d", alg, k.N.BitLen())
		}
	case ed25519.PrivateKey:
		if alg != EdDSA {
			t.Errorf("%s key is Ed25519", alg)
		}
	default:
		t.Errorf("%s key has type %T", alg, s)
	}
	if block, _ := pem.Decode(m.PrivatePEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Error(`PrivatePEM is not a "PRIVATE KEY" PEM block`)
	}
}

func checkLoadRoundTrip(t *testing.T, m *Material) {
	t.Helper()
	got, err := Load(m.PrivatePEM, m.Algorithm, m.CertPEM)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.KID != m.KID || got.Algorithm != m.Algorithm ||
		!bytes.Equal(got.PrivatePEM, m.PrivatePEM) || !bytes.Equal(got.CertPEM, m.CertPEM) {
		t.Errorf("Load round trip = %v, want %v (or PEM differs)", got, m)
	}
	noCert, err := Load(m.PrivatePEM, m.Algorithm, nil)
	if err != nil || noCert.KID != m.KID || noCert.CertPEM != nil {
		t.Errorf("Load without cert = %v, %v", noCert, err)
	}
}

func checkPrivateJWK(t *testing.T, m *Material, pub *jose.JSONWebKey) {
	t.Helper()
	raw, err := m.PrivateJWK()
	if err != nil {
		t.Fatalf("PrivateJWK: %v", err)
	}
	var priv jose.JSONWebKey
	if err := priv.UnmarshalJSON(raw); err != nil {
		t.Fatalf("go-jose cannot parse PrivateJWK: %v", err)
	}
	if priv.IsPublic() || priv.KeyID != m.KID || priv.Algorithm != m.Algorithm || priv.Use != "sig" {
		t.Errorf("PrivateJWK: public=%v kid=%q alg=%q use=%q", priv.IsPublic(), priv.KeyID, priv.Algorithm, priv.Use)
	}
	if _, ok := members(t, raw)["d"]; !ok {
		t.Error(`PrivateJWK has no "d"`)
	}
	if !publicEqual(priv.Public().Key, pub.Key) {
		t.Error("PrivateJWK's public half differs from PublicJWK")
	}
}

// checkSignVerify signs a JWT with go-jose using Signer(), directly and as an
// opaque crypto.Signer, and verifies it with go-jose against a JWKS built
// from the parsed public JWK.
func checkSignVerify(t *testing.T, m *Material, pub *jose.JSONWebKey) {
	t.Helper()
	s, err := m.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	alg := jose.SignatureAlgorithm(m.Algorithm)
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*pub}}
	for name, key := range map[string]any{"direct": s, "opaque": cryptosigner.Opaque(s)} {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), m.KID))
		if err != nil {
			t.Fatalf("%s: NewSigner: %v", name, err)
		}
		want := jwt.Claims{Issuer: "https://signet.test", Subject: name, Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}
		token, err := jwt.Signed(signer).Claims(want).Serialize()
		if err != nil {
			t.Fatalf("%s: sign: %v", name, err)
		}
		parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
		if err != nil {
			t.Fatalf("%s: ParseSigned: %v", name, err)
		}
		if kid := parsed.Headers[0].KeyID; kid != m.KID {
			t.Errorf("%s: token kid = %q, want %q", name, kid, m.KID)
		}
		var got jwt.Claims
		if err := parsed.Claims(jwks, &got); err != nil {
			t.Fatalf("%s: verify against published JWK: %v", name, err)
		}
		if err := got.Validate(jwt.Expected{Issuer: want.Issuer, Subject: name}); err != nil {
			t.Errorf("%s: claims: %v", name, err)
		}
		// The same token must not verify once its signature is altered.
		tampered := token[:len(token)-4] + flip(token[len(token)-4:])
		if p, err := jwt.ParseSigned(tampered, []jose.SignatureAlgorithm{alg}); err == nil {
			if p.Claims(jwks, &got) == nil {
				t.Errorf("%s: tampered token verified", name)
			}
		}
	}
}

// flip changes every character of a base64url fragment.
func flip(s string) string {
	return strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, s)
}

func checkCert(t *testing.T, m *Material, pub *jose.JSONWebKey) {
	t.Helper()
	block, rest := pem.Decode(m.CertPEM)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatal("CertPEM is not one CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	obj := members(t, mustPublicJWK(t, m))
	sum := sha256.Sum256(block.Bytes)
	if got := str(t, obj, "x5t#S256"); got != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("x5t#S256 = %q, want SHA-256 of the DER", got)
	}
	var x5c []string
	if err := json.Unmarshal(obj["x5c"], &x5c); err != nil || len(x5c) != 1 || x5c[0] != base64.StdEncoding.EncodeToString(block.Bytes) {
		t.Errorf("x5c = %v (%v), want the DER in standard base64", x5c, err)
	}
	if !publicEqual(pub.Key, cert.PublicKey) {
		t.Error("certificate public key differs from the key")
	}
	if cert.Subject.CommonName != certOpts.CommonName || !cert.NotBefore.Equal(certOpts.NotBefore) || !cert.NotAfter.Equal(certOpts.NotAfter) {
		t.Errorf("cert CN=%q NotBefore=%v NotAfter=%v", cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || cert.IsCA {
		t.Errorf("cert KeyUsage=%v IsCA=%v", cert.KeyUsage, cert.IsCA)
	}
	if cert.SerialNumber.Sign() <= 0 {
		t.Errorf("cert serial %v is not positive", cert.SerialNumber)
	}
	// CheckSignatureFrom would demand a CA parent; this is a self-signed leaf.
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("cert is not self-signed: %v", err)
	}
}

func TestGenerateCertSerialsDiffer(t *testing.T) {
	t.Parallel()
	a, err := Generate(ES256, 0, certOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(ES256, 0, certOpts)
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := parseCertPEM(t, a.CertPEM), parseCertPEM(t, b.CertPEM)
	if ca.SerialNumber.Cmp(cb.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	if a.KID == b.KID {
		t.Error("two generated keys share a kid")
	}
}

func parseCertPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateRSAKeySize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg      string
		bits     int
		wantBits int    // 0: no RSA key expected
		wantErr  string // substring; "" means success
	}{
		{RS256, 0, 2048, ""},
		{PS384, 3072, 3072, ""},
		{RS512, 4096, 4096, ""}, // the one slow case
		{RS256, 1024, 0, "unsupported RSA key size 1024"},
		{RS256, 1000, 0, "unsupported RSA key size 1000"},
		{PS256, 8192, 0, "unsupported RSA key size 8192"},
		{RS256, -1, 0, "unsupported RSA key size -1"},
		{ES256, 1000, 0, ""}, // ignored for non-RSA algorithms
		{EdDSA, 4096, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.alg+"/"+strconv.Itoa(tc.bits), func(t *testing.T) {
			t.Parallel()
			m, err := Generate(tc.alg, tc.bits, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Generate(%s, %d) error = %v, want %q", tc.alg, tc.bits, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Generate(%s, %d): %v", tc.alg, tc.bits, err)
			}
			s, err := m.Signer()
			if err != nil {
				t.Fatal(err)
			}
			k, isRSA := s.(*rsa.PrivateKey)
			if isRSA != (tc.wantBits > 0) || (isRSA && k.N.BitLen() != tc.wantBits) {
				t.Errorf("Generate(%s, %d) key %T, want %d-bit RSA", tc.alg, tc.bits, s, tc.wantBits)
			}
			if _, err := Load(m.PrivatePEM, tc.alg, nil); err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		alg     string
		cert    *CertOptions
		wantErr string
	}{
		{"HMAC", "HS256", nil, `unsupported algorithm "HS256"`},
		{"lower case", "es256", nil, `unsupported algorithm "es256"`},
		{"empty", "", nil, `unsupported algorithm ""`},
		{"RSA encryption", "RSA-OAEP", nil, `unsupported algorithm "RSA-OAEP"`},
		{"unknown alg wins over bad cert", "none", &CertOptions{}, `unsupported algorithm "none"`},
		{"cert without dates", ES256, &CertOptions{CommonName: "x"}, "NotBefore and NotAfter must both be set"},
		{"cert ends before it starts", ES256, &CertOptions{NotBefore: start, NotAfter: start.Add(-time.Hour)}, "NotAfter must be after NotBefore"},
		{"cert of zero length", EdDSA, &CertOptions{NotBefore: start, NotAfter: start}, "NotAfter must be after NotBefore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Generate(tc.alg, 0, tc.cert)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Generate(%q) = %v, %v; want error containing %q", tc.alg, m, err, tc.wantErr)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	rsaM := fixture(t, RS256, false)
	ecM := fixture(t, ES256, true)
	edM := fixture(t, EdDSA, false)
	rsaKey := mustSigner(t, rsaM).(*rsa.PrivateKey)
	ecKey := mustSigner(t, ecM).(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name    string
		pem     []byte
		alg     string
		cert    []byte
		wantErr string
	}{
		{"ES256 label on RSA key", rsaM.PrivatePEM, ES256, nil, "algorithm ES256 needs an EC P-256 key, got an RSA 2048-bit key"},
		{"ES384 label on P-256 key", ecM.PrivatePEM, ES384, nil, "algorithm ES384 needs an EC P-384 key, got an EC P-256 key"},
		{"RS256 label on EC key", ecM.PrivatePEM, RS256, nil, "algorithm RS256 needs an RSA key, got an EC P-256 key"},
		{"EdDSA label on RSA key", rsaM.PrivatePEM, EdDSA, nil, "algorithm EdDSA needs an Ed25519 key, got an RSA 2048-bit key"},
		{"PS256 label on Ed25519 key", edM.PrivatePEM, PS256, nil, "algorithm PS256 needs an RSA key, got an Ed25519 key"},
		{"unknown alg", rsaM.PrivatePEM, "HS256", nil, `unsupported algorithm "HS256"`},
		{"RSA 1024", encodePEM("PRIVATE KEY", smallDER), RS256, nil, "RSA modulus of an RSA 1024-bit key is too small"},
		{"garbage", []byte("not a key at all"), ES256, nil, "private key: no PEM block found"},
		{"empty", nil, ES256, nil, "private key: no PEM block found"},
		{"PKCS#1 block", encodePEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), RS256, nil, `PEM block type "RSA PRIVATE KEY" (PKCS#1), want "PRIVATE KEY"`},
		{"SEC 1 block", encodePEM("EC PRIVATE KEY", sec1), ES256, nil, `PEM block type "EC PRIVATE KEY" (SEC 1), want "PRIVATE KEY"`},
		{"certificate as key", ecM.CertPEM, ES256, nil, `PEM block type "CERTIFICATE", want "PRIVATE KEY"`},
		{"PKCS#1 DER in a PKCS#8 block", encodePEM("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), RS256, nil, "parsing PKCS#8 private key"},
		{"corrupt DER", encodePEM("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01}), ES256, nil, "parsing PKCS#8 private key"},
		{"encrypted PEM", encrypted, ES256, nil, "PEM headers are not supported"},
		{"two keys", append(bytes.Clone(ecM.PrivatePEM), rsaM.PrivatePEM...), ES256, nil, "unexpected data after the PEM block"},
		{"cert of another key", edM.PrivatePEM, EdDSA, ecM.CertPEM, "certificate public key does not match the private key"},
		{"garbage cert", ecM.PrivatePEM, ES256, []byte("nope"), "certificate: no PEM block found"},
		{"key as cert", ecM.PrivatePEM, ES256, ecM.PrivatePEM, `certificate: PEM block type "PRIVATE KEY", want "CERTIFICATE"`},
		{"corrupt cert DER", ecM.PrivatePEM, ES256, encodePEM("CERTIFICATE", []byte{0x30, 0x00}), "parsing certificate"},
	}
	secrets := secretStrings(t, rsaM, ecM, edM)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := Load(tc.pem, tc.alg, tc.cert)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load = %v, %v; want error containing %q", m, err, tc.wantErr)
			}
			assertNoSecrets(t, err.Error(), secrets)
		})
	}
}

func mustSigner(t *testing.T, m *Material) crypto.Signer {
	t.Helper()
	s, err := m.Signer()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMaterialRechecks shows that a Material assembled by hand (say, from a
// Secret) is checked again before it is published or used to sign.
func TestMaterialRechecks(t *testing.T) {
	t.Parallel()
	good := fixture(t, ES384, true)
	other := fixture(t, EdDSA, false)
	tests := []struct {
		name    string
		edit    func(*Material)
		wantErr string
	}{
		{"kid of another key", func(m *Material) { m.KID = other.KID }, "is not the thumbprint of the key"},
		{"empty kid", func(m *Material) { m.KID = "" }, "is not the thumbprint of the key"},
		{"wrong algorithm", func(m *Material) { m.Algorithm = ES256 }, "algorithm ES256 needs an EC P-256 key"},
		{"unknown algorithm", func(m *Material) { m.Algorithm = "HS512" }, `unsupported algorithm "HS512"`},
		{"no key", func(m *Material) { m.PrivatePEM = nil }, "no PEM block found"},
		{"cert of another key", func(m *Material) { m.CertPEM = fixture(t, EdDSA, true).CertPEM }, "certificate public key does not match"},
		{"key as cert", func(m *Material) { m.CertPEM = m.PrivatePEM }, `certificate: PEM block type "PRIVATE KEY"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := fixture(t, ES384, true)
			tc.edit(m)
			_, errPub := m.PublicJWK()
			_, errPriv := m.PrivateJWK()
			_, errSig := m.Signer()
			for what, err := range map[string]error{"PublicJWK": errPub, "PrivateJWK": errPriv, "Signer": errSig} {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s = %v, want error containing %q", what, err, tc.wantErr)
				}
			}
		})
	}
	if _, err := good.PublicJWK(); err != nil {
		t.Fatalf("untouched fixture: %v", err)
	}
}
