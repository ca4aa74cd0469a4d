package v1alpha1

// Labels and annotations that the controller writes and the JWKS server reads.
// They are part of the API: other tools select signet's objects by them.
const (
	// LabelTenantIdentity names the TenantIdentity an object belongs to.
	LabelTenantIdentity = "identity.signet.dev/tenant-identity"
	// LabelKID is the kid of the key a key Secret holds.
	LabelKID = "identity.signet.dev/kid"
	// LabelOrg is on the JWKS ConfigMap, and on a namespace (set by the
	// cluster admin) to bind the namespace to one org.
	LabelOrg = "identity.signet.dev/org"
	// LabelSite is the siteID of the JWKS ConfigMap.
	LabelSite = "identity.signet.dev/site"
	// LabelComponent tells the kinds of objects apart: key, signing-key, jwks.
	LabelComponent = "identity.signet.dev/component"

	// AnnotationKID on a key Secret is the full kid of the key it holds
	// (the label LabelKID holds only its short form).
	AnnotationKID = "identity.signet.dev/kid"
	// AnnotationKeyState on a key Secret is the key's recorded state: a
	// KeyState. The Secret's other identity.signet.dev/ annotations record
	// its timeline.
	AnnotationKeyState = "identity.signet.dev/state"
	// AnnotationAlgorithm on a key Secret is the algorithm the key signs
	// with (an RSA key alone does not say RS256 or PS256).
	AnnotationAlgorithm = "identity.signet.dev/algorithm"

	// AnnotationKeyOrder on the JWKS ConfigMap lists its kids in the order
	// the documents list them (Active, then Next, then Retired), comma-separated.
	AnnotationKeyOrder = "identity.signet.dev/key-order"
	// AnnotationSequence on the JWKS ConfigMap is a counter increased at every
	// change of its keys; the server publishes it as spiffe_sequence.
	AnnotationSequence = "identity.signet.dev/sequence"
)

// Values of LabelComponent.
const (
	ComponentKey        = "key"
	ComponentSigningKey = "signing-key"
	ComponentJWKS       = "jwks"
)

// Condition types.
const (
	// ConditionReady is True when the spec is applied and the keys are published.
	ConditionReady = "Ready"
	// ConditionPublished is True while the JWKS documents may be served. It
	// stays True through a bad edit (Ready=False, InvalidSpec) so that nothing
	// already published is lost; it is False when the org is not bound or the
	// org/site is claimed by an older TenantIdentity.
	ConditionPublished = "Published"
)

// Condition reasons.
const (
	ReasonKeysPublished = "KeysPublished"
	ReasonSuspended     = "Suspended"
	ReasonOrgNotBound   = "OrgNotBound"
	ReasonConflict      = "Conflict"
	ReasonInvalidSpec   = "InvalidSpec"
	ReasonKeyError      = "KeyError"
	ReasonNoKeys        = "NoKeys"
	// ReasonApplyFailed: a write signet needs keeps failing (a quota, an
	// admission webhook, the object size limit, RBAC); the message names
	// the object and the API server's error. What is published stays.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonKeyLimitReached: a key the schedule or a rotationTrigger asks
	// for waits, because the TenantIdentity holds the most keys allowed.
	ReasonKeyLimitReached = "KeyLimitReached"
	// ReasonKeyGenerationThrottled: the TenantIdentity made keys faster
	// than its share of the controller's CPU allows; the next one waits.
	ReasonKeyGenerationThrottled = "KeyGenerationThrottled"
)

// JWKSConfigMapName is the name of the ConfigMap holding the public keys of a TenantIdentity.
func JWKSConfigMapName(tenantIdentity string) string { return tenantIdentity + "-jwks" }

// SigningSecretName is the name of the Secret holding the Active key.
func SigningSecretName(tenantIdentity string) string { return tenantIdentity + "-signing-key" }

// BasePath is the NICo path prefix under which an org/site's documents are served.
func BasePath(org, siteID string) string { return "/v2/org/" + org + "/nico/site/" + siteID }

// DefaultIssuer is the issuer of a TenantIdentity whose spec sets none: the
// NICo path of its org/site under the JWKS server's public base URL.
func DefaultIssuer(publicBaseURL, org, siteID string) string {
	return publicBaseURL + BasePath(org, siteID)
}
