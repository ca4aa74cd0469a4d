package jwks

import (
	"maps"
	"sync"
	"sync/atomic"
)

// tenantMap is one immutable generation of the served entries.
type tenantMap map[tenantKey]*entry

// store holds the entries the request path reads. Readers load an atomic
// pointer to an immutable map: no lock, no allocation, no contention
// between requests. Writers (the one rebuild loop) copy the map once per
// batch of changes; at 10,000 tenants the copy is a few hundred
// microseconds (BenchmarkStoreApply), paid per coalesced batch, never per
// request. BenchmarkStoreLookup compares this with an RWMutex and sync.Map.
type store struct {
	current atomic.Pointer[tenantMap]
	mu      sync.Mutex // serializes writers
	served  int        // entries that are not bad; guarded by mu
}

// get returns the entry of k, nil when the org/site is not served.
func (s *store) get(k tenantKey) *entry {
	m := s.current.Load()
	if m == nil {
		return nil
	}
	return (*m)[k]
}

// len is the number of org/sites with an entry, including bad ones.
func (s *store) len() int {
	m := s.current.Load()
	if m == nil {
		return 0
	}
	return len(*m)
}

// apply stores a batch of changes (a nil entry removes the org/site) and
// returns how many entries changed and how many are now served (not bad).
// Changes that alter no response are skipped, and a batch of only those
// does not copy the map.
func (s *store) apply(changes map[tenantKey]*entry) (changed, served int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var old tenantMap
	if p := s.current.Load(); p != nil {
		old = *p
	}
	var next tenantMap
	for k, e := range changes {
		prev := old[k]
		if e.sameAs(prev) {
			continue
		}
		if next == nil {
			// maps.Clone copies the hash table wholesale, several times
			// faster than re-inserting every entry.
			next = maps.Clone(old)
			if next == nil {
				next = make(tenantMap, len(changes))
			}
		}
		s.served += isServed(e) - isServed(prev)
		changed++
		if e == nil {
			delete(next, k)
		} else {
			next[k.compact()] = e
		}
	}
	if next != nil {
		s.current.Store(&next)
	}
	return changed, s.served
}

func isServed(e *entry) int {
	if e == nil || e.bad {
		return 0
	}
	return 1
}

// compact returns k with org and site in one allocation, so that the key
// comparison of a lookup touches one cache line, not two scattered ones
// (and the key keeps no larger object, such as a decoded TenantIdentity,
// alive).
func (k tenantKey) compact() tenantKey {
	both := k.org + k.site
	return tenantKey{both[:len(k.org)], both[len(k.org):]}
}
