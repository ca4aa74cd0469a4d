// Package jwks is signet's public HTTP surface: it serves, for every
// published org/site, the NICo-compatible documents
//
//	/v2/org/{org}/nico/site/{siteID}/.well-known/jwks.json
//	/v2/org/{org}/nico/site/{siteID}/.well-known/spiffe/jwks.json
//	/v2/org/{org}/nico/site/{siteID}/.well-known/openid-configuration
//
// The documents are assembled from the JWKS ConfigMaps the controller
// writes (one per TenantIdentity), but only from the ConfigMap of the
// TenantIdentity that owns the org/site, as the server decides it itself
// from facts no tenant can forge (see ownership.go): namespace labels, UIDs
// and creation times, and signet's claim records in its own namespace. A
// TenantIdentity's status can withhold publication, never grant it.
//
// The package is split so that what decides is pure and what reads is thin:
//
//   - view.go: every read: the manager's cache (the rebuild loop) or a
//     given Snapshot (Load), behind one interface;
//   - ownership.go: which TenantIdentity owns an org/site, whether its
//     ConfigMap is trusted, and the issuer it may use (pure);
//   - input.go: what the documents of one org/site are built from (pure);
//   - documents.go: the three bodies, ETags and headers of one org/site
//     (a pure function of that input);
//   - store.go: the immutable map the request path reads;
//   - watch.go: informer events -> coalesced, incremental rebuilds, and
//     the one commit path (also Load's);
//   - snapshot.go: Load, the same resolve and commit over a Snapshot;
//   - publication.go: Published, what an org/site serves, for the token API;
//   - handler.go: the request path, a map lookup and a write;
//   - server.go: Add, the listener, TLS and readiness.
//
// The server never reads Secrets: the RBAC markers below are all it needs,
// and the package's envtest suite runs it with exactly these rules.
package jwks

// RBAC of the server alone (it runs in every replica, with or without the
// controllers). Nothing on Secrets.
//
// +kubebuilder:rbac:groups=identity.signet.dev,resources=tenantidentities,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
