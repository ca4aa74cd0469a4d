package token

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/signet-dev/signet/api/v1alpha1"
)

// defaultTokenTTL is the CRD's default of spec.keys.tokenTTL, for an
// object stored before the default applied.
const defaultTokenTTL = time.Hour

// policy is what a TenantIdentity allows the token API to sign.
type policy struct {
	allowed         []string
	defaultAudience string
	subjectPrefix   string
	maxTTL          time.Duration // spec.keys.tokenTTL
}

// policyOf reads ti's token policy. ok is false when ti has no
// spec.tokens (the token API refuses it); err when its tokenTTL does not
// parse, which the CRD's validation should have made impossible.
func policyOf(ti *v1alpha1.TenantIdentity) (p policy, ok bool, err error) {
	t := ti.Spec.Tokens
	if t == nil {
		return p, false, nil
	}
	p = policy{allowed: t.AllowedAudiences, defaultAudience: t.DefaultAudience, subjectPrefix: t.SubjectPrefix, maxTTL: defaultTokenTTL}
	if s := ti.Spec.Keys.TokenTTL; s != "" {
		if p.maxTTL, err = time.ParseDuration(s); err != nil || p.maxTTL <= 0 {
			return p, true, fmt.Errorf("tokenTTL %q is not a positive duration", s)
		}
	}
	return p, true, nil
}

// audiences are the request's audiences, each allowed by p, or p's
// default when the request names none.
func (p policy) audiences(req tokenRequest) ([]string, *apiError) {
	if len(req.audiences) == 0 {
		if p.defaultAudience == "" {
			return nil, errNoAudience
		}
		return []string{p.defaultAudience}, nil
	}
	for _, a := range req.audiences {
		if !slices.Contains(p.allowed, a) {
			return nil, errAudienceNotAllowed
		}
	}
	return req.audiences, nil
}

// lifetime is the request's expirationSeconds, at most tokenTTL; tokenTTL
// when the request names none.
func (p policy) lifetime(req tokenRequest) (time.Duration, *apiError) {
	if req.expirationSeconds == 0 {
		return p.maxTTL, nil
	}
	// Compared in seconds: a huge expirationSeconds would overflow a Duration.
	if maxSeconds := int64(p.maxTTL / time.Second); req.expirationSeconds > maxSeconds {
		return 0, errTooLong(maxSeconds)
	}
	return time.Duration(req.expirationSeconds) * time.Second, nil
}

// subject is the token's "sub": prefix + "ns/<ns>/sa/<sa>", or without a
// prefix Kubernetes' own name, system:serviceaccount:<ns>:<sa>.
func (p policy) subject(namespace, serviceAccount string) string {
	if p.subjectPrefix == "" {
		return serviceAccountPrefix + namespace + ":" + serviceAccount
	}
	return p.subjectPrefix + "ns/" + namespace + "/sa/" + serviceAccount
}

// claims of a minted token. aud is always a list (one shape for every
// verifier), times are whole seconds (RFC 7519 NumericDate).
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti"`
}

// newClaims builds the claims of a token issued at now for ttl. exp is
// rounded down, so a token never outlives ttl.
func newClaims(issuer, subject string, audience []string, now time.Time, ttl time.Duration, jti string) claims {
	return claims{
		Issuer:    issuer,
		Subject:   subject,
		Audience:  audience,
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(ttl).Unix(),
		ID:        jti,
	}
}

// newJTI is 128 random bits, base64url.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
