package jwks

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// This file turns the input of one org/site into its three documents. It
// is a pure function: same input, same bytes, same ETags, in every replica.

// route is one of the three documents; routeUnknown is for metrics only.
type route int

const (
	routeJWKS route = iota
	routeSPIFFE
	routeDiscovery
	numDocs // number of documents; also routeUnknown

	routeUnknown = numDocs
	numRoutes    = numDocs + 1
)

// routeNames are the values of the "route" metric label.
var routeNames = [numRoutes]string{"jwks", "spiffe_jwks", "openid_configuration", "unknown"}

// routeSuffixes are the paths under BasePath.
var routeSuffixes = [numDocs]string{
	routeJWKS:      "/.well-known/jwks.json",
	routeSPIFFE:    "/.well-known/spiffe/jwks.json",
	routeDiscovery: "/.well-known/openid-configuration",
}

// Values of the JWK "use" member in each JWKS.
const (
	useSig     = "sig"
	useJWTSVID = "jwt-svid"
)

// jsonSuffix ends every data key of a JWKS ConfigMap: "<kid>.json".
const jsonSuffix = ".json"

// publicMembers are the JWK members republished, in this order: those of
// EC, RSA and OKP public keys and of their certificates. Anything else a
// stored document carries (key_ops, ext, ...) is dropped rather than
// relayed: keys.CheckPublic already refused every known private member, and
// an allowlist also keeps out the ones nobody thought of.
var publicMembers = []string{"kty", "kid", "alg", "use", "crv", "n", "e", "x", "y", "x5c", "x5t", "x5t#S256"}

// storedKey is one data entry of a JWKS ConfigMap.
type storedKey struct {
	Name string // "<kid>.json"
	JSON []byte
}

// tenantInput is everything the documents of one org/site are built from.
type tenantInput struct {
	Org, SiteID string
	Issuer      string
	BaseURL     string // public base URL, without a trailing slash
	MaxAge      int64  // Cache-Control max-age, seconds, >= 0
	Sequence    uint64 // spiffe_sequence
	Keys        []storedKey
	// Owner is the TenantIdentity whose ConfigMap the keys come from.
	Owner Owner
}

// document is one pre-serialized response: its body, and its ETag,
// Cache-Control and Content-Length values, which share one allocation.
// Each header is a one-element slice of vals made per request (a slice of
// an array in place: no allocation), so a 200 costs no allocation for
// headers, and 10,000 org/sites hold no slice headers for them. With
// 10,000 org/sites the request path is bound by cache misses, not
// instructions: what a 200 reads is these 72 bytes. A document is built in
// place (set) and never copied.
type document struct {
	vals [3]string // etag (quoted strong entity-tag), cache-control, content-length
	body []byte
}

func (d *document) etag() string { return d.vals[0] }

// entry is what the server holds for one org/site. It is immutable once
// stored; a change stores a new entry.
type entry struct {
	// bad is set when a stored key was refused: every document of the
	// org/site answers 502 until the ConfigMap is fixed. First, so the
	// check shares a cache line with the first document.
	bad  bool
	docs [numDocs]document
	// pub says who publishes what, for Server.Published (the token API);
	// the request path never reads it.
	pub Publication
}

// badEntry is the entry of an org/site whose ConfigMap holds a bad key.
var badEntry = &entry{bad: true}

// sameAs reports whether serving e instead of o changes no response, so
// that a TenantIdentity status update that changes nothing served does not
// copy the store.
func (e *entry) sameAs(o *entry) bool {
	switch {
	case e == nil || o == nil:
		return e == o
	case e.bad || o.bad:
		return e.bad == o.bad
	}
	if !e.pub.equal(o.pub) {
		return false
	}
	for r := range e.docs {
		if e.docs[r].vals[0] != o.docs[r].vals[0] || e.docs[r].vals[1] != o.docs[r].vals[1] {
			return false
		}
	}
	return true
}

// keyError says which data entry was refused and why. It never holds the
// entry's value: the errors of keys.CheckPublic name members, not values.
type keyError struct {
	name string
	err  error
}

func (e *keyError) Error() string {
	return fmt.Sprintf("data entry %q: %v", truncate(e.name, 80), e.err)
}

func (e *keyError) Unwrap() error { return e.err }

// buildEntry checks every stored key and serializes the three documents.
// One bad key refuses the whole org/site: serving the others would hide the
// problem and could drop the Active key.
func buildEntry(in tenantInput) (*entry, error) {
	pub := make([]publicKey, 0, len(in.Keys))
	for _, k := range in.Keys {
		pk, err := checkKey(k)
		if err != nil {
			return nil, &keyError{name: k.Name, err: err}
		}
		pub = append(pub, pk)
	}
	cache := "public, max-age=" + strconv.FormatInt(in.MaxAge, 10)
	bodies := [numDocs][]byte{
		routeJWKS:      keySetBody(pub, useSig, nil),
		routeSPIFFE:    keySetBody(pub, useJWTSVID, spiffeMembers(in)),
		routeDiscovery: discoveryBody(in, pub),
	}
	kids := make([]string, len(pub))
	for i, k := range pub {
		kids[i] = k.kid
	}
	e := &entry{pub: Publication{Owner: in.Owner, Issuer: in.Issuer, KIDs: kids}}
	// The three bodies in one allocation of their exact size: the
	// buffers they were written into keep up to twice their length, times
	// 10,000 tenants in every replica.
	total := 0
	for _, body := range bodies {
		total += len(body)
	}
	all := make([]byte, 0, total)
	for r, body := range bodies {
		start := len(all)
		all = append(all, body...)
		e.docs[r].set(all[start:len(all):len(all)], cache)
	}
	return e, nil
}

// set fills d in place with body, its ETag and its header values.
func (d *document) set(body []byte, cacheControl string) {
	etag, length := entityTag(body), strconv.Itoa(len(body))
	all := etag + cacheControl + length // one allocation for the three values
	d.vals = [3]string{all[:len(etag)], all[len(etag) : len(etag)+len(cacheControl)], all[len(etag)+len(cacheControl):]}
	d.body = body
}

// entityTag is a strong ETag: base64url of the first 144 bits of the
// body's SHA-256, quoted. Equal bodies have equal tags in every replica.
func entityTag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// publicKey is a stored key that passed the checks, as raw members.
type publicKey struct {
	kid     string
	alg     string
	members map[string]json.RawMessage
}

// checkKey applies keys.CheckPublic (parses, no private member, kty, kid
// and alg present, kid = RFC 7638 thumbprint) and checks that the entry's
// name is "<kid>.json", so an entry cannot pose as another key.
func checkKey(k storedKey) (publicKey, error) {
	kid, ok := strings.CutSuffix(k.Name, jsonSuffix)
	if !ok {
		return publicKey{}, fmt.Errorf("name is not <kid>%s", jsonSuffix)
	}
	if err := keys.CheckPublic(k.JSON); err != nil {
		return publicKey{}, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(k.JSON, &members); err != nil {
		return publicKey{}, fmt.Errorf("not a JSON object")
	}
	var docKID, alg string
	if json.Unmarshal(members["kid"], &docKID) != nil || docKID != kid {
		return publicKey{}, fmt.Errorf("kid member differs from the entry name")
	}
	if json.Unmarshal(members["alg"], &alg) != nil {
		return publicKey{}, fmt.Errorf("alg is not a string")
	}
	return publicKey{kid: kid, alg: alg, members: members}, nil
}

// writeJWK writes k as compact JSON: the allowlisted members in a fixed
// order, with use set to the document's value.
func (k publicKey) writeJWK(buf *bytes.Buffer, use string) {
	buf.WriteByte('{')
	first := true
	for _, name := range publicMembers {
		raw, ok := k.members[name]
		if name == "use" {
			raw, ok = json.RawMessage(strconv.Quote(use)), true
		}
		if !ok {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.WriteString(strconv.Quote(name))
		buf.WriteByte(':')
		// CheckPublic parsed the document, so the value is valid JSON.
		_ = json.Compact(buf, raw)
	}
	buf.WriteByte('}')
}

// member is one extra top-level member of a key set, already encoded.
type member struct{ name, value string }

// spiffeMembers are the SPIFFE bundle members (SPIFFE Trust Domain and
// Bundle, section 4): the refresh hint mirrors max-age, at least 1 s,
// because 0 would mean "refresh continuously" to some consumers.
func spiffeMembers(in tenantInput) []member {
	return []member{
		{"spiffe_refresh_hint", strconv.FormatInt(max(in.MaxAge, 1), 10)},
		{"spiffe_sequence", strconv.FormatUint(in.Sequence, 10)},
	}
}

// keySetBody is {"keys":[...]} plus extra members.
func keySetBody(pub []publicKey, use string, extra []member) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	for i, k := range pub {
		if i > 0 {
			buf.WriteByte(',')
		}
		k.writeJWK(&buf, use)
	}
	buf.WriteByte(']')
	for _, m := range extra {
		buf.WriteString(`,"` + m.name + `":` + m.value)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// discovery is the OpenID Connect discovery document, limited to what a
// JWT verifier reads; signet is not an authorization server.
type discovery struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	SPIFFEJWKSURI string   `json:"spiffe_jwks_uri"`
	Algorithms    []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
}

func discoveryBody(in tenantInput, pub []publicKey) []byte {
	base := in.BaseURL + v1alpha1.BasePath(in.Org, in.SiteID)
	algs := make([]string, 0, len(pub))
	for _, k := range pub {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs stay readable; the body is JSON, not HTML
	// Encoding a struct of strings cannot fail.
	_ = enc.Encode(discovery{
		Issuer:        in.Issuer,
		JWKSURI:       base + routeSuffixes[routeJWKS],
		SPIFFEJWKSURI: base + routeSuffixes[routeSPIFFE],
		Algorithms:    algs,
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
	})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// truncate shortens s for messages; s is never secret here, only long.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
