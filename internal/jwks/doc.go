/*
Copyright 2026 The signet authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package jwks is signet's public HTTP surface: it serves, for every
// published org/site, the NICo-compatible documents
//
//	/v2/org/{org}/nico/site/{siteID}/.well-known/jwks.json
//	/v2/org/{org}/nico/site/{siteID}/.well-known/spiffe/jwks.json
//	/v2/org/{org}/nico/site/{siteID}/.well-known/openid-configuration
//
// The documents are assembled from the JWKS ConfigMaps the controller
// writes (one per TenantIdentity), but only from a ConfigMap the package
// trusts: controlled by a TenantIdentity in its namespace whose org/site
// labels match, which wins its org/site claim and which is Published.
//
// The package is split so that what decides is pure and what reads is thin:
//
//   - gather.go: claim resolution, trust and the input of one org/site
//     (pure functions of the TenantIdentities and the ConfigMap);
//   - documents.go: the three bodies, ETags and headers of one org/site
//     (a pure function of that input);
//   - store.go: the immutable map the request path reads;
//   - watch.go: informer events -> coalesced, incremental rebuilds;
//   - snapshot.go: Load, the same decisions over a given snapshot (tools,
//     benchmarks, hack/loadtest);
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
