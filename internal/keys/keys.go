// Package keys generates, stores and encodes the per-tenant JWT signing keys
// that signet owns: PKCS#8 PEM for Secrets, JWKs for publication and for
// signing workloads, RFC 7638 thumbprints as key IDs, and the public-only
// check the JWKS server applies to every stored document.
//
// Private key material never appears in an error message or in the printed
// form of a Material.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Supported signing algorithms (RFC 7518 / RFC 8037 names).
const (
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
	PS256 = "PS256"
	PS384 = "PS384"
	PS512 = "PS512"
	EdDSA = "EdDSA"
)

// DefaultRSABits is the modulus size used when Generate is given 0; it is
// also the smallest modulus Load and CheckPublic accept.
const DefaultRSABits = 2048

// Algorithms returns all supported algorithms. It returns a fresh slice so
// callers cannot change the package's view.
func Algorithms() []string {
	return []string{ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA}
}

func isSupported(alg string) bool { return slices.Contains(Algorithms(), alg) }

// IsRSA reports whether alg signs with an RSA key (RS* and PS*).
func IsRSA(alg string) bool {
	switch alg {
	case RS256, RS384, RS512, PS256, PS384, PS512:
		return true
	}
	return false
}

// curveFor maps an ECDSA algorithm to the only curve RFC 7518 allows for it.
func curveFor(alg string) elliptic.Curve {
	switch alg {
	case ES256:
		return elliptic.P256()
	case ES384:
		return elliptic.P384()
	case ES512:
		return elliptic.P521()
	}
	return nil
}

func errUnsupported(alg string) error {
	return fmt.Errorf("keys: unsupported algorithm %q (supported: %s)", truncate(alg, 32), strings.Join(Algorithms(), ", "))
}

// CertOptions asks Generate for a self-signed certificate of the new key,
// published as x5c / x5t#S256 for verifiers that want one.
type CertOptions struct {
	CommonName          string
	NotBefore, NotAfter time.Time
}

// Generate creates a new key for alg. rsaBits matters only for RS*/PS*
// (2048, 3072 or 4096; 0 means 2048). cert, when non-nil, adds a
// self-signed certificate.
func Generate(alg string, rsaBits int, cert *CertOptions) (*Material, error) {
	// Check every argument before generating: an RSA 4096 key takes seconds.
	if !isSupported(alg) {
		return nil, errUnsupported(alg)
	}
	bits, err := rsaSize(alg, rsaBits)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		if err := cert.validate(); err != nil {
			return nil, err
		}
	}
	key, err := newKey(alg, bits)
	if err != nil {
		return nil, fmt.Errorf("keys: generating %s key: %w", alg, err)
	}
	m, err := fromSigner(alg, key)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		if m.CertPEM, err = selfSign(key, cert); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newKey generates a key for a supported alg; bits is used only for RSA.
func newKey(alg string, bits int) (crypto.Signer, error) {
	if IsRSA(alg) {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	if alg == EdDSA {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return ecdsa.GenerateKey(curveFor(alg), rand.Reader)
}

// rsaSize returns the modulus size for alg: the requested one for RSA
// algorithms (0 meaning the default), and 0 for the others, which ignore it.
func rsaSize(alg string, bits int) (int, error) {
	if !IsRSA(alg) {
		return 0, nil
	}
	switch bits {
	case 0:
		return DefaultRSABits, nil
	case 2048, 3072, 4096:
		return bits, nil
	}
	return 0, fmt.Errorf("keys: unsupported RSA key size %d for %s (want 2048, 3072 or 4096)", bits, alg)
}

func (o *CertOptions) validate() error {
	if o.NotBefore.IsZero() || o.NotAfter.IsZero() {
		return errors.New("keys: certificate NotBefore and NotAfter must both be set")
	}
	if !o.NotAfter.After(o.NotBefore) {
		return errors.New("keys: certificate NotAfter must be after NotBefore")
	}
	return nil
}

func selfSign(key crypto.Signer, o *CertOptions) ([]byte, error) {
	tmpl := &x509.Certificate{
		// SerialNumber is left nil on purpose: crypto/x509 then draws a
		// random RFC 5280 compliant serial (up to 20 octets, positive).
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("keys: creating self-signed certificate: %w", err)
	}
	return encodePEM(pemCertificate, der), nil
}

// fromSigner builds the Material of a freshly generated key.
func fromSigner(alg string, key crypto.Signer) (*Material, error) {
	kid, err := KID(key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding PKCS#8: %w", err)
	}
	return &Material{KID: kid, Algorithm: alg, PrivatePEM: encodePEM(pemPrivateKey, der)}, nil
}

// Load parses stored material (PKCS#8 PEM and an optional certificate PEM),
// checks that alg fits the key, and recomputes the kid, so nothing read back
// from a Secret is trusted blindly.
func Load(privatePEM []byte, alg string, certPEM []byte) (*Material, error) {
	p, err := parse(privatePEM, alg, certPEM)
	if err != nil {
		return nil, err
	}
	kid, err := KID(p.signer.Public())
	if err != nil {
		return nil, err
	}
	m := &Material{KID: kid, Algorithm: alg, PrivatePEM: encodePEM(pemPrivateKey, p.keyDER)}
	if p.cert != nil {
		m.CertPEM = encodePEM(pemCertificate, p.cert.Raw)
	}
	return m, nil
}

// parsed is the decoded form of stored material.
type parsed struct {
	signer crypto.Signer
	keyDER []byte
	cert   *x509.Certificate // nil without a certificate
}

// parse decodes and cross-checks key, algorithm and certificate.
func parse(privatePEM []byte, alg string, certPEM []byte) (*parsed, error) {
	if !isSupported(alg) {
		return nil, errUnsupported(alg)
	}
	der, err := decodePEM(privatePEM, pemPrivateKey, "private key")
	if err != nil {
		return nil, err
	}
	signer, err := parsePKCS8(der)
	if err != nil {
		return nil, err
	}
	if err := checkKeyAlg(alg, signer.Public()); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	p := &parsed{signer: signer, keyDER: der}
	if len(certPEM) > 0 {
		if p.cert, err = parseCert(certPEM, signer.Public()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func parsePKCS8(der []byte) (crypto.Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		// x509/asn1 errors describe structure, never key bytes.
		return nil, fmt.Errorf("keys: parsing PKCS#8 private key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("keys: unsupported private key type %T", key)
}

func parseCert(certPEM []byte, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := decodePEM(certPEM, pemCertificate, "certificate")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("keys: parsing certificate: %w", err)
	}
	if !publicEqual(pub, cert.PublicKey) {
		return nil, errors.New("keys: certificate public key does not match the private key")
	}
	return cert, nil
}

// publicEqual compares public keys with their own Equal methods, which
// compare values rather than pointers.
func publicEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// checkKeyAlg refuses a key that alg cannot sign with, and RSA moduli below
// DefaultRSABits. Load and CheckPublic share it so a key that loads is a
// key that may be published, and the other way round.
func checkKeyAlg(alg string, pub crypto.PublicKey) error {
	switch {
	case IsRSA(alg):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("algorithm %s needs an RSA key, got %s", alg, describeKey(pub))
		}
		if k.N == nil || k.N.BitLen() < DefaultRSABits {
			return fmt.Errorf("RSA modulus of %s is too small (want at least %d bits)", describeKey(pub), DefaultRSABits)
		}
	case curveFor(alg) != nil:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curveFor(alg) {
			return fmt.Errorf("algorithm %s needs an EC %s key, got %s", alg, curveFor(alg).Params().Name, describeKey(pub))
		}
	case alg == EdDSA:
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return fmt.Errorf("algorithm %s needs an Ed25519 key, got %s", alg, describeKey(pub))
		}
	default:
		return fmt.Errorf("unsupported algorithm %q", truncate(alg, 32))
	}
	return nil
}

// describeKey names a public key's type and size for error messages.
func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil {
			return "an RSA key without modulus"
		}
		return fmt.Sprintf("an RSA %d-bit key", k.N.BitLen())
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "an EC key without curve"
		}
		return "an EC " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	}
	return fmt.Sprintf("a key of type %T", pub)
}

// truncate bounds attacker-controlled strings quoted in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
