package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// audience is the "aud" the workload puts in its tokens and the verifiers
// require (go-oidc's ClientID).
const audience = "e2e-verifier"

// signingKey is the signing Secret as a workload that mounts it reads it:
// the files key.pem, key.jwk, kid and alg. mintWith says which of the two
// key encodings the workload signs with.
type signingKey struct {
	kid, alg        string
	resourceVersion string
	pemKey          crypto.Signer   // key.pem, PKCS#8
	jwk             jose.JSONWebKey // key.jwk, private
	mintWith        string          // "key.pem" (golang-jwt) or "key.jwk" (go-jose)
}

// readSigningKey reads <name>-signing-key through the API, checks that its
// four files agree (same key, kid = RFC 7638 thumbprint, alg) and records
// the key's encodings as forbidden elsewhere.
func readSigningKey(ctx context.Context, c client.Client, namespace, name, mintWith string) (*signingKey, error) {
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: identityv1alpha1.SigningSecretName(name)}, &sec); err != nil {
		return nil, err
	}
	return parseSigningSecret(&sec, mintWith)
}

func parseSigningSecret(sec *corev1.Secret, mintWith string) (*signingKey, error) {
	for _, f := range []string{"key.pem", "key.jwk", "kid", "alg"} {
		if len(sec.Data[f]) == 0 {
			return nil, fmt.Errorf("signing secret %s has no %s", sec.Name, f)
		}
	}
	k := &signingKey{kid: string(sec.Data["kid"]), alg: string(sec.Data["alg"]), resourceVersion: sec.ResourceVersion, mintWith: mintWith}
	forbidden.addKey(k.kid, sec.Data["key.pem"], sec.Data["key.jwk"])

	block, _ := pem.Decode(sec.Data["key.pem"])
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing secret %s: key.pem is not a PKCS#8 PEM block", sec.Name)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing secret %s: key.pem: %w", sec.Name, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing secret %s: key.pem holds a %T", sec.Name, parsed)
	}
	k.pemKey = signer
	if err := k.jwk.UnmarshalJSON(sec.Data["key.jwk"]); err != nil {
		return nil, fmt.Errorf("signing secret %s: key.jwk: %w", sec.Name, err)
	}
	switch {
	case k.jwk.IsPublic():
		return nil, fmt.Errorf("signing secret %s: key.jwk is a public key", sec.Name)
	case k.jwk.KeyID != k.kid:
		return nil, fmt.Errorf("signing secret %s: key.jwk kid %q, kid file %q", sec.Name, k.jwk.KeyID, k.kid)
	case k.jwk.Algorithm != k.alg:
		return nil, fmt.Errorf("signing secret %s: key.jwk alg %q, alg file %q", sec.Name, k.jwk.Algorithm, k.alg)
	}
	pemPub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	jwkPub, err := x509.MarshalPKIXPublicKey(k.jwk.Public().Key)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pemPub, jwkPub) {
		return nil, fmt.Errorf("signing secret %s: key.pem and key.jwk hold different keys", sec.Name)
	}
	tp, err := k.jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if got := base64.RawURLEncoding.EncodeToString(tp); got != k.kid {
		return nil, fmt.Errorf("signing secret %s: kid %s is not the RFC 7638 thumbprint %s", sec.Name, k.kid, got)
	}
	return k, nil
}

// mint signs a token for issuer valid until now+ttl (exp in whole seconds,
// never later than now+ttl).
func (k *signingKey) mint(issuer string, now time.Time, ttl time.Duration, id string) (raw string, exp time.Time, err error) {
	exp = time.Unix(now.Add(ttl).Unix(), 0)
	iat := time.Unix(now.Unix(), 0)
	switch k.mintWith {
	case "key.pem":
		method := jwt.GetSigningMethod(k.alg)
		if method == nil {
			return "", exp, fmt.Errorf("golang-jwt knows no %s", k.alg)
		}
		tok := jwt.NewWithClaims(method, jwt.RegisteredClaims{
			Issuer: issuer, Subject: "e2e-workload", Audience: jwt.ClaimStrings{audience},
			IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp), ID: id,
		})
		tok.Header["kid"] = k.kid
		raw, err = tok.SignedString(k.pemKey)
		return raw, exp, err
	case "key.jwk":
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.jwk},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			return "", exp, err
		}
		raw, err = josejwt.Signed(sig).Claims(josejwt.Claims{
			Issuer: issuer, Subject: "e2e-workload", Audience: josejwt.Audience{audience},
			IssuedAt: josejwt.NewNumericDate(iat), Expiry: josejwt.NewNumericDate(exp), ID: id,
		}).Serialize()
		return raw, exp, err
	}
	return "", exp, fmt.Errorf("mintWith %q", k.mintWith)
}

// strangerKey signs with a key signet never published, as an unknown kid.
func strangerKey() (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: "e2e-stranger", alg: "ES256", pemKey: priv, mintWith: "key.pem"}, nil
}

// Verifier names.
const (
	vOIDC      = "go-oidc(https discovery)"
	vKeyfunc   = "keyfunc(https jwks)"
	vKeyfuncHT = "keyfunc(http jwks, server-only replica)"
)

var verifierNames = []string{vOIDC, vKeyfunc, vKeyfuncHT}

// verifierSet verifies one issuer's tokens with real libraries:
//   - coreos/go-oidc: provider discovery from the issuer over TLS, default
//     verifier settings with ClientID = the audience; it fetches the JWKS
//     when it meets a kid it cannot verify, never on a timer.
//   - MicahParks/keyfunc v3 over a jwkset HTTP storage that refreshes every
//     served max-age; one on the TLS server, one on the plain-HTTP replica.
type verifierSet struct {
	issuer string
	alg    string
	oidc   *oidc.IDTokenVerifier
	kf     map[string]keyfunc.Keyfunc

	refreshErrors atomic.Int64
	mu            sync.Mutex
	lastRefreshEr error
}

func newVerifierSet(ctx context.Context, issuer, alg, plainJWKS string, refresh time.Duration) (*verifierSet, error) {
	v := &verifierSet{issuer: issuer, alg: alg, kf: map[string]keyfunc.Keyfunc{}}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, s.httpsClient), issuer)
	if err != nil {
		return nil, fmt.Errorf("go-oidc discovery of %s: %w", issuer, err)
	}
	var extra struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&extra); err != nil {
		return nil, err
	}
	v.oidc = provider.Verifier(&oidc.Config{ClientID: audience})

	for name, src := range map[string]struct {
		url string
		c   *http.Client
	}{vKeyfunc: {extra.JWKSURI, s.httpsClient}, vKeyfuncHT: {plainJWKS, s.httpClient}} {
		store, err := jwkset.NewStorageFromHTTP(src.url, jwkset.HTTPClientStorageOptions{
			Client:          src.c,
			Ctx:             ctx,
			HTTPTimeout:     5 * time.Second,
			RefreshInterval: refresh,
			RefreshErrorHandler: func(_ context.Context, err error) {
				v.refreshErrors.Add(1)
				v.mu.Lock()
				v.lastRefreshEr = err
				v.mu.Unlock()
			},
		})
		if err != nil {
			return nil, fmt.Errorf("jwkset storage for %s: %w", src.url, err)
		}
		// keyfunc's defaults for unknown kids: one refresh per 5 minutes.
		storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
			HTTPURLs:          map[string]jwkset.Storage{src.url: store},
			RateLimitWaitMax:  time.Minute,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(5*time.Minute), 1),
		})
		if err != nil {
			return nil, err
		}
		kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage})
		if err != nil {
			return nil, err
		}
		v.kf[name] = kf
	}
	return v, nil
}

// verify checks raw with one verifier.
func (v *verifierSet) verify(ctx context.Context, name, raw string) error {
	if name == vOIDC {
		tok, err := v.oidc.Verify(ctx, raw)
		if err != nil {
			return err
		}
		if tok.Issuer != v.issuer {
			return fmt.Errorf("go-oidc accepted issuer %q", tok.Issuer)
		}
		return nil
	}
	kf := v.kf[name]
	_, err := jwt.Parse(raw, kf.KeyfuncCtx(ctx),
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	return err
}

var maxAgeRE = regexp.MustCompile(`(?:^|[ ,])max-age=(\d+)(?:$|[ ,])`)

// maxAge reads max-age from a Cache-Control header.
func maxAge(cacheControl string) (time.Duration, error) {
	m := maxAgeRE.FindStringSubmatch(cacheControl)
	if m == nil {
		return 0, fmt.Errorf("no max-age in Cache-Control %q", cacheControl)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Second, nil
}
