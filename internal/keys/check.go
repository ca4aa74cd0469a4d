package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// PrivateMembers lists JWK members that must never be published: RSA and
// EC/OKP private parameters (RFC 7518 6.2.2, 6.3.2, RFC 8037) and the
// symmetric key value "k".
var PrivateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

// PublicKeyError says why a stored JWK document may not be published. It
// names members, never their values (the kid aside, which is public).
type PublicKeyError struct {
	KID    string // the document's kid when it has one, else ""
	Reason string
}

func (e *PublicKeyError) Error() string {
	if e.KID == "" {
		return "jwk: " + e.Reason
	}
	return fmt.Sprintf("jwk %q: %s", e.KID, e.Reason)
}

// CheckPublic validates one stored public JWK document (raw JSON). It
// inspects the raw object as well as go-jose's parse, because go-jose skips
// members it does not know, and other verifiers may read them differently.
func CheckPublic(raw []byte) error {
	obj, err := decodeObject(raw)
	if err != nil {
		return &PublicKeyError{Reason: err.Error()}
	}
	kid, _ := stringMember(obj, "kid")
	fail := func(format string, args ...any) error {
		return &PublicKeyError{KID: truncate(kid, 64), Reason: fmt.Sprintf(format, args...)}
	}
	if reason := checkMembers(obj); reason != "" {
		return fail("%s", reason)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		// go-jose's messages name members and problems, not values.
		return fail("not a valid JWK: %v", err)
	}
	if !jwk.IsPublic() {
		return fail("not a public key")
	}
	if err := checkKeyAlg(jwk.Algorithm, jwk.Key); err != nil {
		return fail("%v", err)
	}
	want, err := KID(jwk.Key)
	if err != nil {
		return fail("%v", err)
	}
	if kid != want {
		return fail("kid is not the RFC 7638 SHA-256 thumbprint of the key (want %q)", want)
	}
	return nil
}

// checkMembers applies the checks that need the raw members: no private or
// symmetric material, and kty, kid, alg present as strings with a
// supported alg and a signing use. It returns "" when all pass.
func checkMembers(obj map[string]json.RawMessage) string {
	if kty, _ := stringMember(obj, "kty"); kty == "oct" {
		return `symmetric key (kty "oct") must never be published`
	}
	if name := privateMember(obj); name != "" {
		return fmt.Sprintf("carries private member %q", name)
	}
	for _, name := range []string{"kty", "kid", "alg"} {
		if v, ok := stringMember(obj, name); !ok || v == "" {
			return fmt.Sprintf("missing member %q (want a non-empty string)", name)
		}
	}
	if alg, _ := stringMember(obj, "alg"); !isSupported(alg) {
		return fmt.Sprintf("unsupported alg %q (supported: %s)", truncate(alg, 32), strings.Join(Algorithms(), ", "))
	}
	// Published keys are signing keys; signet writes use "sig" (the SPIFFE
	// endpoint rewrites it when serving).
	if _, present := obj["use"]; present {
		if use, _ := stringMember(obj, "use"); use != "sig" {
			return `member "use" must be "sig"`
		}
	}
	// signet never writes x5u; a URL would make verifiers trust whatever it
	// points at, and go-jose's error for a bad one would quote it.
	if _, present := obj["x5u"]; present {
		return `member "x5u" is not allowed`
	}
	return ""
}

// privateMember returns the first member (in sorted order, for stable
// messages) that is a private member, compared case-insensitively because
// encoding/json-based consumers match struct fields that way.
func privateMember(obj map[string]json.RawMessage) string {
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, p := range PrivateMembers {
			if strings.EqualFold(name, p) {
				return name
			}
		}
	}
	return ""
}

// stringMember returns obj[name] when it is a JSON string.
func stringMember(obj map[string]json.RawMessage, name string) (string, bool) {
	v, ok := obj[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// decodeObject reads a JSON object's top-level members. It refuses member
// names that repeat, even only by case: parsers differ on which duplicate
// wins, so the document we check could differ from the one a verifier reads.
// Its errors never quote the input.
func decodeObject(raw []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	obj := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("not valid JSON")
		}
		name, _ := tok.(string)
		if seen[strings.ToLower(name)] {
			return nil, fmt.Errorf("member %q appears more than once", truncate(name, 16))
		}
		seen[strings.ToLower(name)] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("not valid JSON")
		}
		obj[name] = v
	}
	// json.Valid above guarantees the closing brace and nothing after it.
	return obj, nil
}
