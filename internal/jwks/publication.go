package jwks

import (
	"slices"

	"k8s.io/apimachinery/pkg/types"
)

// Owner names the TenantIdentity that publishes an org/site.
type Owner struct {
	Namespace, Name string
	UID             types.UID
}

// Publication is what the server serves for one org/site: who owns it, the
// issuer of its discovery document and the kids its documents list, the
// Active key first. The token API signs only for a published org/site and
// only with a key listed here, so that every token it mints verifies
// against what verifiers fetch.
type Publication struct {
	Owner  Owner
	Issuer string
	KIDs   []string // in document order: Active, then Next, then Retired
}

// ActiveKID is the kid the documents list first: the signing key.
func (p Publication) ActiveKID() string {
	if len(p.KIDs) == 0 {
		return ""
	}
	return p.KIDs[0]
}

func (p Publication) equal(o Publication) bool {
	return p.Owner == o.Owner && p.Issuer == o.Issuer && slices.Equal(p.KIDs, o.KIDs)
}

// Published returns what org/site serves now, false when it serves nothing
// (not published, not synced yet, or answering 502 for a bad stored key).
// The result shares nothing mutable with the server.
func (s *Server) Published(org, siteID string) (Publication, bool) {
	if !s.synced.Load() {
		return Publication{}, false
	}
	e := s.store.get(tenantKey{org, siteID})
	if e == nil || e.bad {
		return Publication{}, false
	}
	p := e.pub
	p.KIDs = slices.Clone(p.KIDs)
	return p, true
}
