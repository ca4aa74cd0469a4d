package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// Document paths under an org/site's base path.
const (
	pathJWKS      = "/.well-known/jwks.json"
	pathDiscovery = "/.well-known/openid-configuration"
	pathSPIFFE    = "/.well-known/spiffe/jwks.json"
)

// served is one response of a JWKS server.
type served struct {
	status int
	header http.Header
	body   []byte
	kids   []string // the JWKS keys' kids, in order
	algs   []string
	err    error
}

// fetch GETs a document. For JWKS documents it lists the kids and refuses
// (as err) any key carrying a private member.
func fetch(ctx context.Context, c *http.Client, url string, hdr ...string) served {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return served{err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return served{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	out := served{status: resp.StatusCode, header: resp.Header, body: body, err: err}
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains([]byte(url), []byte("jwks.json")) {
		return out
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		out.err = fmt.Errorf("JWKS %s: %w", url, err)
		return out
	}
	for _, k := range set.Keys {
		for _, m := range privateJWKMembers {
			if _, ok := k[m]; ok {
				out.err = fmt.Errorf("JWKS %s: key %v has the private member %q", url, k["kid"], m)
			}
		}
		kid, _ := k["kid"].(string)
		alg, _ := k["alg"].(string)
		out.kids = append(out.kids, kid)
		out.algs = append(out.algs, alg)
	}
	if leaks := forbidden.find(url, string(body)); len(leaks) > 0 {
		out.err = fmt.Errorf("%v", leaks)
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// docURL is a document of org/site on a server.
func docURL(base, org, site, path string) string {
	return base + identityv1alpha1.BasePath(org, site) + path
}

// sameDocuments polls until the TLS server and the server-only replica
// serve byte-identical documents for org/site: the same keys, in the same
// order, and the same discovery. It returns the JWKS both serve.
func sameDocuments(t *testing.T, org, site string) served {
	t.Helper()
	ctx := context.Background()
	var tlsJWKS served
	err := poll(20*time.Second, 100*time.Millisecond, "both servers serve the same documents of "+org+"/"+site, func() (bool, error) {
		for _, p := range []string{pathJWKS, pathDiscovery, pathSPIFFE} {
			a := fetch(ctx, s.httpsClient, docURL(s.publicBaseURL, org, site, p))
			b := fetch(ctx, s.httpClient, docURL(s.plainBaseURL, org, site, p))
			if a.err != nil || b.err != nil || a.status != http.StatusOK || b.status != http.StatusOK || !bytes.Equal(a.body, b.body) {
				return false, fmt.Errorf("last difference, %s:\n  https %d %s %s\n  http  %d %s %s", p, a.status, errText(a.err), a.body, b.status, errText(b.err), b.body)
			}
			if p == pathJWKS {
				tlsJWKS = a
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tlsJWKS
}

// waitReady polls the TenantIdentity until Ready=True with an Active key.
func waitReady(t *testing.T, namespace, name string) *identityv1alpha1.TenantIdentity {
	t.Helper()
	var ti identityv1alpha1.TenantIdentity
	err := poll(60*time.Second, 100*time.Millisecond, "TenantIdentity "+namespace+"/"+name+" Ready", func() (bool, error) {
		if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &ti); err != nil {
			return false, err
		}
		for _, c := range ti.Status.Conditions {
			if c.Type == identityv1alpha1.ConditionReady && c.Status == "True" && ti.Status.ActiveKeyID != "" {
				return true, nil
			}
		}
		return false, fmt.Errorf("status %+v", ti.Status)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ti
}

// TestSampleServed: the sample applied with kubectl is served by both
// servers at its NICo paths, with NICo's headers, identically.
func TestSampleServed(t *testing.T) {
	ti := waitReady(t, sampleNamespace, sampleName)
	wantIssuer := s.publicBaseURL + identityv1alpha1.BasePath(sampleOrg, sampleSite)
	if ti.Status.Issuer != wantIssuer {
		t.Errorf("status.issuer = %q, want %q", ti.Status.Issuer, wantIssuer)
	}
	if want := wantIssuer + pathJWKS; ti.Status.JWKSURI != want {
		t.Errorf("status.jwksURI = %q, want %q", ti.Status.JWKSURI, want)
	}
	jwks := sameDocuments(t, sampleOrg, sampleSite)
	if len(jwks.kids) != 1 || jwks.kids[0] != ti.Status.ActiveKeyID || jwks.algs[0] != "ES256" {
		t.Errorf("served kids %v algs %v, want the one ES256 Active key %s", jwks.kids, jwks.algs, ti.Status.ActiveKeyID)
	}
	if ct := jwks.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// max-age: min(prePublish 1h / 2, --max-cache-age 1s).
	if cc := jwks.header.Get("Cache-Control"); cc != "public, max-age=1" {
		t.Errorf("Cache-Control %q, want public, max-age=1", cc)
	}
	etag := jwks.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	ctx := context.Background()
	url := docURL(s.publicBaseURL, sampleOrg, sampleSite, pathJWKS)
	if r := fetch(ctx, s.httpsClient, url, "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match %s: status %d, want 304", etag, r.status)
	}

	var disc struct {
		Issuer        string   `json:"issuer"`
		JWKSURI       string   `json:"jwks_uri"`
		SPIFFEJWKSURI string   `json:"spiffe_jwks_uri"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
	}
	d := fetch(ctx, s.httpsClient, docURL(s.publicBaseURL, sampleOrg, sampleSite, pathDiscovery))
	if err := json.Unmarshal(d.body, &disc); err != nil {
		t.Fatalf("discovery %d %s: %v", d.status, d.body, err)
	}
	if disc.Issuer != wantIssuer || disc.JWKSURI != wantIssuer+pathJWKS || disc.SPIFFEJWKSURI != wantIssuer+pathSPIFFE {
		t.Errorf("discovery %s", d.body)
	}

	// Errors are NICo's JSON.
	for _, tc := range []struct {
		url    string
		status int
	}{
		{docURL(s.publicBaseURL, sampleOrg, "00000000-0000-4000-8000-000000000000", pathJWKS), http.StatusNotFound},
		{docURL(s.publicBaseURL, sampleOrg, "not-a-uuid", pathJWKS), http.StatusBadRequest},
	} {
		r := fetch(ctx, s.httpsClient, tc.url)
		var e struct {
			Source  string `json:"source"`
			Message string `json:"message"`
		}
		if r.status != tc.status || json.Unmarshal(r.body, &e) != nil || e.Source != "nico" || e.Message == "" {
			t.Errorf("GET %s: %d %s, want %d with a NICo error", tc.url, r.status, r.body, tc.status)
		}
	}

	// The server-only replica runs as a ServiceAccount that cannot read Secrets.
	if out, err := s.kubectlAs(s.serverKubeconfig, nil, "get", "secrets", "-n", sampleNamespace); err == nil {
		t.Errorf("the server-only ServiceAccount can read Secrets:\n%s", out)
	}
}
