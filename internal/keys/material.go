package keys

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	jose "github.com/go-jose/go-jose/v4"
)

// Material is one generated key. It holds private material: every printing,
// logging and JSON path below shows only kid and alg, so an accidental
// %v, %+v, %#v, %d, log or json.Marshal never prints the key.
type Material struct {
	KID        string // RFC 7638 JWK thumbprint, SHA-256, base64url without padding
	Algorithm  string
	PrivatePEM []byte // PKCS#8 "PRIVATE KEY" PEM
	CertPEM    []byte // optional self-signed certificate PEM, nil when not requested
}

// String returns only the kid and algorithm.
func (m Material) String() string {
	return fmt.Sprintf("keys.Material{kid=%s, alg=%s}", m.KID, m.Algorithm)
}

// GoString makes %#v as safe as %v.
func (m Material) GoString() string { return m.String() }

// Format covers every fmt verb (%d or %x would otherwise print the PEM
// bytes field by field, since fmt uses String only for some verbs).
func (m Material) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// MarshalJSON keeps structured loggers that fall back to JSON (zap's
// reflection encoder, for one) from serializing the private key.
func (m Material) MarshalJSON() ([]byte, error) {
	return json.Marshal(m.MarshalLog())
}

// LogValue is the slog view of a Material: kid and alg only.
func (m Material) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", m.KID), slog.String("alg", m.Algorithm))
}

// MarshalLog is the logr view of a Material (logr.Marshaler): kid and alg only.
func (m Material) MarshalLog() any {
	return map[string]string{"kid": m.KID, "alg": m.Algorithm}
}

// load re-parses and re-checks the material, including that KID is the
// key's thumbprint, so a hand-built or corrupted Material is never
// published or used to sign under the wrong kid.
func (m *Material) load() (*parsed, error) {
	p, err := parse(m.PrivatePEM, m.Algorithm, m.CertPEM)
	if err != nil {
		return nil, err
	}
	kid, err := KID(p.signer.Public())
	if err != nil {
		return nil, err
	}
	if kid != m.KID {
		return nil, fmt.Errorf("keys: kid %q is not the thumbprint of the key", truncate(m.KID, 64))
	}
	return p, nil
}

// Signer returns the private key as a crypto.Signer. Its dynamic type is
// *ecdsa.PrivateKey, *rsa.PrivateKey or ed25519.PrivateKey, which go-jose
// and the standard library accept directly.
func (m *Material) Signer() (crypto.Signer, error) {
	p, err := m.load()
	if err != nil {
		return nil, err
	}
	return p.signer, nil
}

// PublicJWK returns the public JWK as compact JSON, with x5c and x5t#S256
// when the material has a certificate.
func (m *Material) PublicJWK() ([]byte, error) {
	p, err := m.load()
	if err != nil {
		return nil, err
	}
	return m.jwk(p.signer.Public(), p)
}

// PrivateJWK returns the private JWK JSON a signing workload mounts.
func (m *Material) PrivateJWK() ([]byte, error) {
	p, err := m.load()
	if err != nil {
		return nil, err
	}
	return m.jwk(p.signer, p)
}

func (m *Material) jwk(key any, p *parsed) ([]byte, error) {
	k := jose.JSONWebKey{Key: key, KeyID: m.KID, Algorithm: m.Algorithm, Use: "sig"}
	if p.cert != nil {
		sum := sha256.Sum256(p.cert.Raw)
		k.Certificates = []*x509.Certificate{p.cert}
		k.CertificateThumbprintSHA256 = sum[:]
	}
	b, err := k.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("keys: encoding JWK %s: %w", m.KID, err)
	}
	return b, nil
}
