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
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// This file holds the pure decisions: which TenantIdentity owns an org/site,
// whether its ConfigMap may be trusted, and what the documents are built
// from. Nothing here reads the cluster.

// defaultPrePublish is the CRD default of spec.keys.prePublish, used when
// the field is empty (an object written before defaulting existed).
const defaultPrePublish = time.Hour

// tenantKey names one org/site. A struct of two strings (rather than
// "org/site") lets the request path look an entry up without building a key.
type tenantKey struct{ org, site string }

// String is the "org/siteID" form, also the value of the field index.
func (k tenantKey) String() string { return tenancy.OrgSite(k.org, k.site) }

// published reports whether the controller allows ti's documents to be served.
func published(ti *v1alpha1.TenantIdentity) bool {
	return meta.IsStatusConditionTrue(ti.Status.Conditions, v1alpha1.ConditionPublished)
}

// distrust returns why cm may not publish ti's keys, or "" when it may.
// The caller found cm by ti's namespace and JWKSConfigMapName, so the
// same-namespace rule holds already; what is left is that ti controls it
// (a copied ownerReference from another TenantIdentity has another UID)
// and that its labels claim the org/site ti owns.
func distrust(cm *corev1.ConfigMap, ti *v1alpha1.TenantIdentity) string {
	owner := metav1.GetControllerOfNoCopy(cm)
	switch {
	case owner == nil:
		return "no controller ownerReference"
	case owner.UID != ti.UID || owner.Name != ti.Name || owner.Kind != "TenantIdentity" ||
		!strings.HasPrefix(owner.APIVersion, v1alpha1.GroupVersion.Group+"/"):
		return "controlled by another object"
	case cm.Labels[v1alpha1.LabelComponent] != v1alpha1.ComponentJWKS:
		return "missing label " + v1alpha1.LabelComponent + "=" + v1alpha1.ComponentJWKS
	case cm.Labels[v1alpha1.LabelOrg] != ti.Spec.Org || cm.Labels[v1alpha1.LabelSite] != ti.Spec.SiteID:
		return "org/site labels differ from the TenantIdentity's spec"
	}
	return ""
}

// docConfig is the server-wide part of the documents.
type docConfig struct {
	baseURL     string        // public base URL, without a trailing slash
	maxCacheAge time.Duration // the server's --max-cache-age
}

// gather collects what the documents of ti are built from: the keys of cm
// in publication order and the values of the headers and extra members.
func gather(ti *v1alpha1.TenantIdentity, cm *corev1.ConfigMap, cfg docConfig) tenantInput {
	return tenantInput{
		Org:      ti.Spec.Org,
		SiteID:   ti.Spec.SiteID,
		Issuer:   issuerFor(ti, cfg.baseURL),
		BaseURL:  cfg.baseURL,
		MaxAge:   maxAgeSeconds(ti.Spec.Keys.PrePublish, cfg.maxCacheAge),
		Sequence: parseSequence(cm.Annotations[v1alpha1.AnnotationSequence]),
		Keys:     orderedKeys(cm.Data, cm.Annotations[v1alpha1.AnnotationKeyOrder]),
		Owner:    Owner{Namespace: ti.Namespace, Name: ti.Name, UID: ti.UID},
	}
}

// issuerFor is the issuer in effect: what the controller recorded, else
// what the spec asks for, else the default under the public base URL.
func issuerFor(ti *v1alpha1.TenantIdentity, baseURL string) string {
	return cmp.Or(ti.Status.Issuer, ti.Spec.Issuer, v1alpha1.DefaultIssuer(baseURL, ti.Spec.Org, ti.Spec.SiteID))
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
