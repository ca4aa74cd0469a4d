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

// Load replaces everything s serves with what snap publishes, under the
// same rules and through the same resolve and commit as the watcher, and
// marks s synced. It is for a Server made by NewServer: a snapshot, no
// watch (tools, benchmarks, hack/loadtest). It returns how many org/sites
// are served (bad ones excluded).
func (s *Server) Load(snap Snapshot) int {
	v := newSnapshotView(snap, s.opts)
	changes := map[tenantKey]*entry{}
	if m := s.store.current.Load(); m != nil {
		for k := range *m {
			changes[k] = nil // gone unless claimed below
		}
	}
	for k := range v.byOrgSite {
		changes[k], _ = s.resolve(k, v) // a snapshot view cannot fail
	}
	served := s.commit(changes)
	s.synced.Store(true)
	syncedGauge.Set(1)
	return served
}
