package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// KID computes the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of a public key. A private key (anything with a Public method)
// is reduced to its public half first.
func KID(pub crypto.PublicKey) (string, error) {
	if s, ok := pub.(interface{ Public() crypto.PublicKey }); ok {
		pub = s.Public()
	}
	if err := checkPublicKey(pub); err != nil {
		return "", err
	}
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// checkPublicKey refuses nil and half-built keys before go-jose sees them
// (it would dereference a nil curve or print a confusing type name).
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			break
		}
		// Bytes refuses a key whose point is unset or off the curve.
		if _, err := k.Bytes(); err == nil {
			return nil
		}
	case *rsa.PublicKey:
		if k != nil && k.N != nil && k.E > 0 {
			return nil
		}
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return nil
		}
	default:
		return fmt.Errorf("keys: unsupported public key type %T", pub)
	}
	return fmt.Errorf("keys: incomplete %T public key", pub)
}

// shortKIDBytes is how much of the thumbprint ShortKID keeps: 40 bits make
// a collision between two keys of one TenantIdentity negligible while
// keeping `<name>-<short kid>` well inside the 253-character name limit.
const shortKIDBytes = 5

// kidEncoding is strict so that one thumbprint has exactly one spelling.
var kidEncoding = base64.RawURLEncoding.Strict()

// ShortKID maps a kid to 10 lowercase hex characters (the first 5 bytes of
// the decoded thumbprint), usable in a Kubernetes object name.
func ShortKID(kid string) (string, error) {
	// The base64 decoder silently skips \r and \n; refuse any character
	// outside the base64url alphabet first.
	for i := 0; i < len(kid); i++ {
		if !isBase64URL(kid[i]) {
			return "", fmt.Errorf("keys: kid is not base64url (byte %d)", i)
		}
	}
	raw, err := kidEncoding.DecodeString(kid)
	if err != nil {
		return "", fmt.Errorf("keys: kid is not base64url: %w", err)
	}
	if len(raw) < shortKIDBytes {
		return "", errors.New("keys: kid is too short for a short kid")
	}
	return hex.EncodeToString(raw[:shortKIDBytes]), nil
}

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
