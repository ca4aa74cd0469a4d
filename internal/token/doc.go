// Package token is signet's token API: a workload presents its Kubernetes
// service account token and gets back a JWT signed with the Active key of
// a TenantIdentity it is allowed to use, so no workload ever holds a
// private key:
//
//	POST /v2/org/{org}/nico/site/{siteID}/token
//	{"audience": ["api.acme.example"], "expirationSeconds": 600}
//	-> 200 {"token": "<JWS>", "expiresAt": "<RFC 3339>", "keyID": "<kid>"}
//
// A request goes through, in this order (files follow it):
//
//   - request.go: the path, the method, the bearer token and the body,
//     with limits (body size, audiences per request, unknown fields);
//   - authn.go: who the caller is, by TokenReview, cached by a hash of the
//     token no longer than the token lives (lru.go bounds every cache);
//   - limit.go: per-caller and per-namespace token buckets (429);
//   - authz.go: whether the caller may create tokens/ for the
//     TenantIdentity that owns the org/site, by SubjectAccessReview;
//   - claims.go: the tenant's token policy, the audiences, the lifetime,
//     the claims;
//   - signer.go: the Active key, read live from its Secret and checked,
//     held in memory only while it is the Active key;
//   - handler.go: the request path that ties them together;
//   - errors.go: the NICo error bodies;
//   - server.go: Add, the listener, TLS, and the key sweeper.
//
// Ownership is what the JWKS server publishes (jwks.Server.Published): an
// org/site that is not served gets 404, and a token is signed only by the
// kid the served documents list first, so every token verifies against
// what verifiers fetch.
package token

// RBAC of the token API, on top of the controller's (it runs in the
// replicas that run the controller: it reads key Secrets live).
//
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities,verbs=get;list;watch
