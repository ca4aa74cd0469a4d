package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// TestJWKSInSync: against the real server, the served keys are the
// ConfigMap's, Active then Next.
func TestJWKSInSync(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	if r := plugin(t, "rotate", "-n", ti.Namespace, ti.Name); r.code != 0 {
		t.Fatalf("rotate: %s", r)
	}
	ti = waitFor(t, ti, "a Next key", func(ti *identityv1alpha1.TenantIdentity) bool {
		return keyIn(ti, identityv1alpha1.KeyStateNext) != ""
	})
	r := eventually(t, "the server serving both keys", func(r result) bool {
		return r.code == 0 && strings.Contains(r.stdout, "In sync: the server serves the ConfigMap's 2 keys")
	}, "jwks", "-n", ti.Namespace, ti.Name)
	if !strings.Contains(r.stdout, "Served:    "+ti.Status.JWKSURI+" (200 OK, ETag ") {
		t.Errorf("no Served line for %s:\n%s", ti.Status.JWKSURI, r.stdout)
	}
	table := rows(t, r.stdout, "# CONFIGMAP SERVED")
	active, next := ti.Status.ActiveKeyID, keyIn(ti, identityv1alpha1.KeyStateNext)
	if !slices.Equal(table[0], []string{"1", active, active}) || !slices.Equal(table[1], []string{"2", next, next}) {
		t.Errorf("comparison table %q, want Active %s then Next %s on both sides", table, active, next)
	}
	// --server is the same server under its base URL.
	if r := plugin(t, "jwks", "-n", ti.Namespace, ti.Name, "--server", serverURL+"/"); r.code != 0 {
		t.Errorf("jwks --server: %s", r)
	}
}

// servedDocument is what the real server serves for ti now.
func servedDocument(t *testing.T, ti *identityv1alpha1.TenantIdentity) map[string]any {
	t.Helper()
	resp, err := http.Get(ti.Status.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", ti.Status.JWKSURI, resp.StatusCode, err)
	}
	return doc
}

// TestJWKSDifferences: a server that serves something else than the
// ConfigMap (a stale replica, a proxy's cache, a bug) is caught, whatever
// the difference, with exit status 1; a server that cannot be asked is a
// failure, status 2.
func TestJWKSDifferences(t *testing.T) {
	t.Parallel()
	ti := tenant(t, "acme-dc1", nil)
	if r := plugin(t, "rotate", "-n", ti.Namespace, ti.Name); r.code != 0 {
		t.Fatalf("rotate: %s", r)
	}
	ti = waitFor(t, ti, "a Next key", func(ti *identityv1alpha1.TenantIdentity) bool {
		return keyIn(ti, identityv1alpha1.KeyStateNext) != ""
	})
	eventually(t, "the real server in sync", func(r result) bool { return r.code == 0 }, "jwks", "-n", ti.Namespace, ti.Name)
	real := servedDocument(t, ti)
	keysOf := func(doc map[string]any) []any { return doc["keys"].([]any) }
	edit := func(f func(keys []any) []any) func() (int, string) {
		return func() (int, string) {
			var doc map[string]any
			b, _ := json.Marshal(real)
			_ = json.Unmarshal(b, &doc)
			doc["keys"] = f(keysOf(doc))
			body, _ := json.Marshal(doc)
			return http.StatusOK, string(body)
		}
	}
	for _, c := range []struct {
		name   string
		answer func() (int, string)
		want   string
	}{
		{"keys swapped", edit(func(k []any) []any { return []any{k[1], k[0]} }), "is served at position 1, the ConfigMap lists it at 2"},
		{"a key missing", edit(func(k []any) []any { return k[:1] }), "of the ConfigMap is not served"},
		{"an extra key", edit(func(k []any) []any {
			extra := map[string]any{"kty": "EC", "kid": "extra", "alg": "ES256", "use": "sig"}
			return append(k, extra)
		}), "served key extra is not in the ConfigMap"},
		{"a member changed", edit(func(k []any) []any {
			k[0].(map[string]any)["x"] = "AAAA"
			return k
		}), `member "x" differs`},
		{"a private member", edit(func(k []any) []any {
			k[0].(map[string]any)["d"] = "c2VjcmV0"
			return k
		}), `carries the private member "d"`},
		{"use enc", edit(func(k []any) []any {
			k[1].(map[string]any)["use"] = "enc"
			return k
		}), `has use "enc", want "sig"`},
		{"a 502", func() (int, string) {
			return http.StatusBadGateway, `{"source":"nico","message":"stored key document is malformed","data":null}`
		}, "the server answers 502, not the keys: stored key document is malformed"},
		{"not JSON", func() (int, string) { return http.StatusOK, "<html>" }, "not a JWK set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				want := identityv1alpha1.BasePath(ti.Spec.Org, ti.Spec.SiteID) + "/.well-known/jwks.json"
				if r.URL.Path != want {
					http.NotFound(w, r)
					return
				}
				code, body := c.answer()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				_, _ = io.WriteString(w, body)
			}))
			defer srv.Close()
			r := plugin(t, "jwks", "-n", ti.Namespace, ti.Name, "--server", srv.URL)
			if r.code != exitDiffers || !strings.Contains(r.stdout, c.want) || !strings.Contains(r.stderr, "does not serve the ConfigMap's keys") {
				t.Errorf("%s\nwant exit 1 and %q", r, c.want)
			}
		})
	}
	r := plugin(t, "jwks", "-n", ti.Namespace, ti.Name, "--server", "ftp://example.invalid")
	if r.code != exitUsage || !strings.Contains(r.stderr, "unsupported protocol scheme") {
		t.Errorf("unreachable server: %s\nwant exit 2", r)
	}
	if r := plugin(t, "jwks", "-n", ti.Namespace, ti.Name, "--ca-file", "/nonexistent"); r.code != exitUsage || !strings.Contains(r.stderr, "--ca-file") {
		t.Errorf("missing CA file: %s", r)
	}
}
