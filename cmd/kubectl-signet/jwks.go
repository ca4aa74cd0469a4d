package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// publicMembers are the JWK members the server republishes from a
// ConfigMap entry, "use" aside (the server sets it per document).
var publicMembers = []string{"kty", "kid", "alg", "crv", "n", "e", "x", "y", "x5c", "x5t", "x5t#S256"}

// maxDocument bounds what jwks reads from a server.
const maxDocument = 1 << 20

// jwk is one key as raw members.
type jwk map[string]json.RawMessage

func (k jwk) kid() string {
	var s string
	_ = json.Unmarshal(k["kid"], &s)
	return s
}

// runJWKS fetches the served jwks.json of the TenantIdentity and compares
// it with the ConfigMap the controller wrote: the same kids in the same
// order, and for each the same public members.
func runJWKS(ctx context.Context, o *options, stdout, _ io.Writer) error {
	c, err := connect(o)
	if err != nil {
		return err
	}
	ti, err := c.tenantIdentity(ctx, o.args[0])
	if err != nil {
		return err
	}
	url, err := jwksURL(ti, o.server)
	if err != nil {
		return err
	}
	stored, err := storedKeys(ctx, c, ti)
	if err != nil {
		return err
	}
	httpClient, err := newHTTPClient(o.caFile)
	if err != nil {
		return err
	}
	served, err := fetchJWKS(ctx, httpClient, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Served:    %s (%s)\n", url, served.describe())
	fmt.Fprintf(stdout, "ConfigMap: %s/%s (%d keys)\n\n", ti.Namespace, identityv1alpha1.JWKSConfigMapName(ti.Name), len(stored))
	diffs := compareKeys(stored, served.keys)
	if served.problem != "" {
		diffs = append([]string{served.problem}, diffs...)
	}
	if err := printComparison(stdout, stored, served.keys); err != nil {
		return err
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintln(stdout, "  -", d)
		}
		return &differs{summary: fmt.Sprintf("jwks: the server does not serve the ConfigMap's keys (%d differences)", len(diffs))}
	}
	_, err = fmt.Fprintf(stdout, "In sync: the server serves the ConfigMap's %d keys, in its order.\n", len(stored))
	return err
}

// jwksURL is --server's NICo path for the tenant, else status.jwksURI.
func jwksURL(ti *identityv1alpha1.TenantIdentity, server string) (string, error) {
	if server != "" {
		return strings.TrimSuffix(server, "/") + identityv1alpha1.BasePath(ti.Spec.Org, ti.Spec.SiteID) + "/.well-known/jwks.json", nil
	}
	if ti.Status.JWKSURI == "" {
		return "", fmt.Errorf("%s/%s has no status.jwksURI yet (not published?): pass --server", ti.Namespace, ti.Name)
	}
	return ti.Status.JWKSURI, nil
}

// storedKeys are the ConfigMap's keys in the order the documents list
// them: its key-order annotation, then entries it forgot, sorted.
func storedKeys(ctx context.Context, c *cluster, ti *identityv1alpha1.TenantIdentity) ([]jwk, error) {
	var cm corev1.ConfigMap
	key := client.ObjectKey{Namespace: ti.Namespace, Name: identityv1alpha1.JWKSConfigMapName(ti.Name)}
	if err := c.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("configmap %s/%s not found: the controller has not published %s yet", key.Namespace, key.Name, ti.Name)
		}
		return nil, err
	}
	if owner := metav1.GetControllerOf(&cm); owner == nil || owner.UID != ti.UID {
		return nil, fmt.Errorf("configmap %s/%s is not controlled by the TenantIdentity: the server ignores it", key.Namespace, key.Name)
	}
	var names []string
	for kid := range strings.SplitSeq(cm.Annotations[identityv1alpha1.AnnotationKeyOrder], ",") {
		if name := strings.TrimSpace(kid) + ".json"; cm.Data[name] != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	var rest []string
	for name := range cm.Data {
		if !slices.Contains(names, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	var out []jwk
	for _, name := range append(names, rest...) {
		var k jwk
		if err := json.Unmarshal([]byte(cm.Data[name]), &k); err != nil {
			return nil, fmt.Errorf("configmap %s/%s: entry %s is not a JSON object", key.Namespace, key.Name, name)
		}
		out = append(out, k)
	}
	return out, nil
}

// servedDoc is what the server answered.
type servedDoc struct {
	status      int
	etag, cache string
	keys        []jwk
	problem     string // a non-200 answer, as a difference
}

func (d servedDoc) describe() string {
	s := fmt.Sprintf("%d %s", d.status, http.StatusText(d.status))
	if d.etag != "" {
		s += ", ETag " + d.etag
	}
	if d.cache != "" {
		s += ", Cache-Control " + d.cache
	}
	return s
}

func fetchJWKS(ctx context.Context, hc *http.Client, url string) (servedDoc, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return servedDoc{}, fmt.Errorf("--server / status.jwksURI %q: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return servedDoc{}, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return servedDoc{}, fmt.Errorf("fetch %s: %w", url, err)
	}
	d := servedDoc{status: resp.StatusCode, etag: resp.Header.Get("ETag"), cache: resp.Header.Get("Cache-Control")}
	if resp.StatusCode != http.StatusOK {
		d.problem = fmt.Sprintf("the server answers %d, not the keys: %s", resp.StatusCode, nicoMessage(body))
		return d, nil
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		d.problem = fmt.Sprintf("the served document is not a JWK set: %v", err)
		return d, nil
	}
	d.keys = set.Keys
	return d, nil
}

// nicoMessage is the message of a NICo error body, else the body, short.
func nicoMessage(body []byte) string {
	var e struct {
		Source  string `json:"source"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return printable(e.Message)
	}
	s := string(bytes.TrimSpace(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return printable(s)
}

// compareKeys lists every difference between the stored and the served
// keys: order, missing and extra kids, members, use, private members.
func compareKeys(stored, served []jwk) []string {
	var diffs []string
	for i, k := range served {
		kid := printable(k.kid())
		if name := privateMember(k); name != "" {
			diffs = append(diffs, fmt.Sprintf("served key %s carries the private member %q", kid, name))
		}
		var use string
		if json.Unmarshal(k["use"], &use) != nil || use != "sig" {
			diffs = append(diffs, fmt.Sprintf("served key %s has use %s, want \"sig\"", kid, k["use"]))
		}
		j := slices.IndexFunc(stored, func(s jwk) bool { return s.kid() == k.kid() })
		switch {
		case j < 0:
			diffs = append(diffs, fmt.Sprintf("served key %s is not in the ConfigMap", kid))
		case j != i:
			diffs = append(diffs, fmt.Sprintf("key %s is served at position %d, the ConfigMap lists it at %d", kid, i+1, j+1))
		}
		if j >= 0 {
			for _, m := range publicMembers {
				if !sameJSON(stored[j][m], k[m]) {
					diffs = append(diffs, fmt.Sprintf("key %s: member %q differs", kid, m))
				}
			}
		}
	}
	for _, s := range stored {
		if !slices.ContainsFunc(served, func(k jwk) bool { return k.kid() == s.kid() }) {
			diffs = append(diffs, fmt.Sprintf("key %s of the ConfigMap is not served", printable(s.kid())))
		}
	}
	return diffs
}

func privateMember(k jwk) string {
	for _, name := range keys.PrivateMembers {
		if _, ok := k[name]; ok {
			return name
		}
	}
	return ""
}

// sameJSON compares two raw values as decoded JSON (absent = absent).
func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// printComparison is a table of positions: the ConfigMap's kid and the
// served one side by side.
func printComparison(w io.Writer, stored, served []jwk) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCONFIGMAP\tSERVED")
	for i := range max(len(stored), len(served)) {
		a, b := "-", "-"
		if i < len(stored) {
			a = printable(stored[i].kid())
		}
		if i < len(served) {
			b = printable(served[i].kid())
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", i+1, a, b)
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}

// newHTTPClient trusts caFile's CAs when given, else the system's.
func newHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
