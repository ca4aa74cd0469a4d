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

package jwks

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/api/v1alpha1"
)

// Load replaces everything s serves with what the given TenantIdentities
// and ConfigMaps publish, under the same rules as the watcher (claim
// winner, Published, trusted ConfigMap, public keys only), and marks s
// synced. It is for a Server made by NewServer: a snapshot, no watch.
// It returns how many org/sites are served (bad ones excluded).
func (s *Server) Load(tis []v1alpha1.TenantIdentity, cms []corev1.ConfigMap) int {
	claims := map[tenantKey][]v1alpha1.TenantIdentity{}
	for _, ti := range tis {
		if k, ok := tenantIdentityKey(&ti); ok && s.inScope(ti.Namespace) {
			claims[k] = append(claims[k], ti)
		}
	}
	byName := make(map[client.ObjectKey]*corev1.ConfigMap, len(cms))
	for i := range cms {
		byName[client.ObjectKeyFromObject(&cms[i])] = &cms[i]
	}
	getConfigMap := func(key client.ObjectKey) (*corev1.ConfigMap, error) { return byName[key], nil }

	changes := map[tenantKey]*entry{}
	if m := s.store.current.Load(); m != nil {
		for k := range *m {
			changes[k] = nil // gone unless claimed below
		}
	}
	for k, claimants := range claims {
		changes[k], _ = s.decide(k, claimants, getConfigMap) // the getter cannot fail
	}
	changed, served := s.store.apply(changes)
	documentsRebuilt.Add(float64(changed))
	tenantsServed.Set(float64(served))
	s.synced.Store(true)
	return served
}
