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
