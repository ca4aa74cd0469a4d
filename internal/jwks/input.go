package jwks

import (
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// What the documents of one org/site are built from: pure functions of the
// owning TenantIdentity and its ConfigMap.

// defaultPrePublish is the CRD default of spec.keys.prePublish, used when
// the field is empty (an object written before defaulting existed).
const defaultPrePublish = time.Hour

// tenantKey names one org/site. A struct of two strings (rather than
// "org/site") lets the request path look an entry up without building a key.
type tenantKey struct{ org, site string }

// String is the "org/siteID" form, also the value of the field index.
func (k tenantKey) String() string { return tenancy.OrgSite(k.org, k.site) }

// docConfig is the server-wide part of the documents.
type docConfig struct {
	baseURL     string        // public base URL, without a trailing slash
	maxCacheAge time.Duration // the server's --max-cache-age
}

// documentInput collects what the documents of ti are built from: the keys
// of cm in publication order and the values of the headers and extra
// members.
func documentInput(ti *v1alpha1.TenantIdentity, cm *corev1.ConfigMap, cfg docConfig) tenantInput {
	return tenantInput{
		Org:      ti.Spec.Org,
		SiteID:   ti.Spec.SiteID,
		Issuer:   issuerOf(ti, cfg.baseURL),
		BaseURL:  cfg.baseURL,
		MaxAge:   maxAgeSeconds(ti.Spec.Keys.PrePublish, cfg.maxCacheAge),
		Sequence: parseSequence(cm.Annotations[v1alpha1.AnnotationSequence]),
		Keys:     orderedKeys(cm.Data, cm.Annotations[v1alpha1.AnnotationKeyOrder]),
		Owner:    Owner{Namespace: ti.Namespace, Name: ti.Name, UID: ti.UID},
	}
}

// maxAgeSeconds is the Cache-Control max-age: at most half of prePublish,
// so a cached document never hides a Next key past its activation even
// counting the time from the key's publication timestamp to this server
// seeing the ConfigMap (the other half), and no longer than the server's
// limit. Whole seconds, rounded down. An unparsable prePublish (the CRD
// refuses one) yields 0: caching less is always safe.
func maxAgeSeconds(prePublish string, maxCacheAge time.Duration) int64 {
	pp := defaultPrePublish
	if prePublish != "" {
		d, err := time.ParseDuration(prePublish)
		if err != nil {
			return 0
		}
		pp = d
	}
	return max(int64(min(pp/2, maxCacheAge)/time.Second), 0)
}

// parseSequence reads the sequence annotation; 0 when absent or invalid.
func parseSequence(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// orderedKeys lists the data entries in publication order: the kids of the
// key-order annotation first (Active, Next, Retired, as the controller
// wrote them), then entries the annotation forgot, sorted so the result is
// stable. Kids named by the annotation without an entry are skipped;
// entries that are not "<kid>.json" are kept, so that documentsFor refuses
// them loudly instead of this function hiding them.
func orderedKeys(data map[string]string, order string) []storedKey {
	keys := make([]storedKey, 0, len(data))
	taken := make(map[string]bool, len(data))
	for kid := range strings.SplitSeq(order, ",") {
		name := strings.TrimSpace(kid) + jsonSuffix
		if raw, ok := data[name]; ok && !taken[name] {
			keys = append(keys, storedKey{Name: name, JSON: []byte(raw)})
			taken[name] = true
		}
	}
	rest := make([]string, 0, len(data)-len(keys))
	for name := range data {
		if !taken[name] {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		keys = append(keys, storedKey{Name: name, JSON: []byte(data[name])})
	}
	return keys
}
