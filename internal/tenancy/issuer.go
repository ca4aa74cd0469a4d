package tenancy

import (
	"fmt"
	"net/url"
	"strings"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// IssuerError says why a spec.issuer may not be used: it lies under the
// JWKS server's public base URL but outside the tenant's own org/site
// path, so it would pose as another tenant's issuer (nil when allowed).
// An issuer elsewhere is the tenant's business: it proves it by serving
// the discovery document there.
func IssuerError(issuer, publicBaseURL, org, siteID string) error {
	if issuer == "" {
		return nil
	}
	// The CRD checks the issuer's form and the manager the base URL's: an
	// unparsable one claims no tenant's path.
	iu, bu := parseOrEmpty(issuer), parseOrEmpty(strings.TrimRight(publicBaseURL, "/"))
	if iu.Host == "" || bu.Host == "" {
		return nil
	}
	if !strings.EqualFold(iu.Scheme, bu.Scheme) || !strings.EqualFold(iu.Host, bu.Host) {
		return nil
	}
	own := bu.Path + identityv1alpha1.BasePath(org, siteID)
	path := strings.TrimRight(iu.Path, "/")
	if path == own || strings.HasPrefix(path, own+"/") {
		return nil
	}
	if path != bu.Path && !strings.HasPrefix(path, bu.Path+"/") {
		return nil // same host, outside the base URL's path
	}
	return fmt.Errorf("spec.issuer %q is under the JWKS server's public URL %s but not under this TenantIdentity's own path %s%s: "+
		"an issuer there would pose as another tenant's", issuer, publicBaseURL, strings.TrimRight(publicBaseURL, "/"), identityv1alpha1.BasePath(org, siteID))
}

func parseOrEmpty(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return &url.URL{}
	}
	return u
}
