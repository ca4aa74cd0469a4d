package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Algorithm is a JWS signing algorithm (RFC 7518, RFC 8037).
// +kubebuilder:validation:Enum=ES256;ES384;ES512;RS256;RS384;RS512;PS256;PS384;PS512;EdDSA
type Algorithm string

// KeyState is where a key is in its life: Next (published, not signing),
// Active (the one signing key) or Retired (published, no longer signing).
// +kubebuilder:validation:Enum=Next;Active;Retired
type KeyState string

const (
	KeyStateNext    KeyState = "Next"
	KeyStateActive  KeyState = "Active"
	KeyStateRetired KeyState = "Retired"
)

// TenantIdentitySpec declares the signing-key policy of one org/site.
type TenantIdentitySpec struct {
	// org is the tenant organisation: a lowercase DNS label. It must match the
	// identity.signet.dev/org label of this object's namespace. Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="org must be a lowercase DNS label: a-z, 0-9 and '-', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="org is immutable"
	Org string `json:"org"`

	// siteID identifies the site inside the org: a lowercase UUID such as
	// 7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f. Immutable.
	// +required
	// +kubebuilder:validation:MinLength=36
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')",message="siteID must be a lowercase UUID such as 7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="siteID is immutable"
	SiteID string `json:"siteID"`

	// issuer is the "iss" of tokens signed with these keys and of the OIDC
	// discovery document. Defaults to <public base URL>/v2/org/<org>/nico/site/<siteID>.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != '' && size(url(self).getQuery()) == 0 && !self.contains('#')",message="issuer must be an absolute https (or http) URL with a host and no query or fragment"
	Issuer string `json:"issuer,omitempty"`

	// suspend stops every key change: no key is created, activated, removed or
	// revoked while it is true. The documents keep being served.
	// +optional
	// +kubebuilder:default=false
	Suspend bool `json:"suspend,omitempty"`

	// keys is the key policy. Changes apply to the next key; existing keys
	// keep their timeline.
	// +optional
	// +kubebuilder:default={}
	Keys KeyPolicy `json:"keys,omitempty"`

	// rotationTrigger requests one rotation when its value changes: a
	// successor is published now and activates after prePublish.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	RotationTrigger string `json:"rotationTrigger,omitempty"`

	// revokedKeyIDs lists kids to unpublish and destroy at once. Revoking the
	// Active key activates a successor without pre-publication.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_-]+$`
	RevokedKeyIDs []string `json:"revokedKeyIDs,omitempty"`

	// signingSecret is the Secret <name>-signing-key that holds the Active
	// key for workloads that sign for themselves.
	// +optional
	// +kubebuilder:default={}
	SigningSecret SigningSecretPolicy `json:"signingSecret,omitempty"`

	// tokens lets workloads get tokens signed with the Active key from the
	// token API, without holding the key. Absent: the token API refuses
	// this TenantIdentity.
	// +optional
	Tokens *TokenPolicy `json:"tokens,omitempty"`
}

// SigningSecretPolicy says whether the Active key is handed to workloads.
type SigningSecretPolicy struct {
	// enabled keeps the Secret <name>-signing-key (key.pem, key.jwk, kid,
	// alg) holding the Active key. false: no such Secret exists, an existing
	// one is deleted, and tokens come from the token API only. Default true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// IsEnabled is enabled with its default (true) applied.
func (p SigningSecretPolicy) IsEnabled() bool { return p.Enabled == nil || *p.Enabled }

// TokenPolicy bounds the tokens the token API signs for this TenantIdentity.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultAudience) || self.defaultAudience in self.allowedAudiences",message="defaultAudience must be one of allowedAudiences"
type TokenPolicy struct {
	// allowedAudiences are the only values a token's "aud" may hold: 1 to 16
	// distinct values. A token request naming any other audience is refused.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	AllowedAudiences []string `json:"allowedAudiences"`

	// defaultAudience is the audience of a token whose request names none;
	// it must be one of allowedAudiences. Without it, a request must name
	// its audiences.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	DefaultAudience string `json:"defaultAudience,omitempty"`

	// subjectPrefix makes a token's "sub" <subjectPrefix>ns/<namespace>/sa/<name>
	// (for example spiffe://acme.example/); without it, "sub" is
	// system:serviceaccount:<namespace>:<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SubjectPrefix string `json:"subjectPrefix,omitempty"`
}

// KeyPolicy is how keys are generated and how long each phase lasts.
// Durations are Go duration strings such as 720h, 90m or 5s.
// +kubebuilder:validation:XValidation:rule="!has(self.rsaKeySize) || self.algorithm.startsWith('RS') || self.algorithm.startsWith('PS')",message="rsaKeySize is only valid with the RS* and PS* algorithms"
// +kubebuilder:validation:XValidation:rule="!has(self.overlap) || !has(self.tokenTTL) || !(self.overlap.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && self.tokenTTL.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')) || duration(self.overlap) >= duration(self.tokenTTL)",message="overlap must be at least tokenTTL, so that a token signed just before a key retires still verifies"
// +kubebuilder:validation:XValidation:rule="!has(self.overlap) || !has(self.rotationPeriod) || !(self.overlap.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && self.rotationPeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')) || duration(self.overlap).getMilliseconds() <= 8 * duration(self.rotationPeriod).getMilliseconds()",message="overlap may be at most 8 times rotationPeriod: at most 10 keys are held at once (ceil(overlap/rotationPeriod) retired, one Active, one Next)"
// +kubebuilder:validation:XValidation:rule="!has(self.rotationPeriod) || !has(self.prePublish) || !(self.rotationPeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && self.prePublish.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')) || duration(self.rotationPeriod) > duration(self.prePublish)",message="rotationPeriod must be longer than prePublish"
type KeyPolicy struct {
	// algorithm signs the tokens. Default ES256.
	// +optional
	// +kubebuilder:default=ES256
	Algorithm Algorithm `json:"algorithm,omitempty"`

	// rsaKeySize is the modulus size for RS* and PS* keys. Default 2048.
	// +optional
	// +kubebuilder:validation:Enum=2048;3072;4096
	RSAKeySize *int32 `json:"rsaKeySize,omitempty"`

	// rotationPeriod is how long one key signs. Default 720h.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="rotationPeriod must be a positive Go duration such as 720h or 5s"
	RotationPeriod string `json:"rotationPeriod,omitempty"`

	// prePublish is how long a new key is published before it signs, so that
	// verifiers fetch it first. Default 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="prePublish must be a positive Go duration such as 1h or 5s"
	PrePublish string `json:"prePublish,omitempty"`

	// overlap is how long a replaced key stays published. Default 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="overlap must be a positive Go duration such as 24h or 5s"
	Overlap string `json:"overlap,omitempty"`

	// tokenTTL is the longest lifetime of a token signed with these keys. Default 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="tokenTTL must be a positive Go duration such as 1h or 5s"
	TokenTTL string `json:"tokenTTL,omitempty"`

	// certificate adds a self-signed certificate per key, published as x5c and x5t#S256.
	// +optional
	Certificate CertificatePolicy `json:"certificate,omitempty"`
}

// CertificatePolicy says whether each key gets a self-signed certificate.
type CertificatePolicy struct {
	// enabled publishes a self-signed certificate with each key.
	// +optional
	// +kubebuilder:default=false
	Enabled bool `json:"enabled,omitempty"`
}

// KeyStatus is one published or stored key.
type KeyStatus struct {
	// kid is the key ID: the RFC 7638 thumbprint of the public key.
	// +required
	// +kubebuilder:validation:MaxLength=128
	KID string `json:"kid"`
	// algorithm of the key.
	// +required
	Algorithm Algorithm `json:"algorithm"`
	// state of the key.
	// +required
	State KeyState `json:"state"`
	// publishedAt is when the key entered the published documents.
	// +optional
	PublishedAt *metav1.Time `json:"publishedAt,omitempty"`
	// activatesAt is when the key starts (or started) signing.
	// +optional
	ActivatesAt *metav1.Time `json:"activatesAt,omitempty"`
	// retiresAt is when the key stops (or stopped) signing.
	// +optional
	RetiresAt *metav1.Time `json:"retiresAt,omitempty"`
	// removesAt is when the key leaves the documents and is destroyed.
	// +optional
	RemovesAt *metav1.Time `json:"removesAt,omitempty"`
	// secretName is the Secret holding the key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`
}

// TenantIdentityStatus is what the controller observed and did.
type TenantIdentityStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready says whether the keys are published and the spec applied.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// issuer in effect.
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// jwksURI is where the public keys are served.
	// +optional
	JWKSURI string `json:"jwksURI,omitempty"`

	// activeKeyID is the kid of the key that signs now.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`

	// nextRotationTime is when the Active key is next replaced: the Next
	// key's activation when there is one, else the Active key's scheduled
	// rotation. Unset while suspended.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`

	// lastRotationTrigger is the last rotationTrigger value acted on.
	// +optional
	LastRotationTrigger string `json:"lastRotationTrigger,omitempty"`

	// keys lists every key, Active first, then Next, then Retired.
	// +optional
	// +listType=map
	// +listMapKey=kid
	// +kubebuilder:validation:MaxItems=32
	Keys []KeyStatus `json:"keys,omitempty"`
}

// TenantIdentity owns the JWT signing keys of one org/site and publishes
// their public halves as JWKS.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tid
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name may have at most 63 characters: it is the value of the identity.signet.dev/tenant-identity label on every object signet makes"
// +kubebuilder:printcolumn:name="Org",type=string,JSONPath=`.spec.org`
// +kubebuilder:printcolumn:name="Site",type=string,JSONPath=`.spec.siteID`
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.spec.keys.algorithm`
// +kubebuilder:printcolumn:name="Active KID",type=string,JSONPath=`.status.activeKeyID`
// +kubebuilder:printcolumn:name="Next Rotation",type=string,format=date-time,JSONPath=`.status.nextRotationTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TenantIdentity struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired key policy.
	// +required
	Spec TenantIdentitySpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status TenantIdentityStatus `json:"status,omitempty"`
}

// TenantIdentityList is a list of TenantIdentity.
// +kubebuilder:object:root=true
type TenantIdentityList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantIdentity `json:"items"`
}
