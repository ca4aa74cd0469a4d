package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
)

// forbidden collects every encoding of every signet private key the suite
// has seen (in signing and key Secrets), so that logs, statuses, events,
// ConfigMaps and HTTP responses can be searched for them (invariant 4).
var forbidden = &forbiddenSet{byKID: map[string]map[string]string{}}

type forbiddenSet struct {
	mu sync.Mutex
	// byKID: kid -> encoding name -> the string that must not appear.
	byKID map[string]map[string]string
}

// addKey records the encodings of one private key: its PKCS#8 DER in
// standard base64 (whole, and each PEM body line but the first, which is
// mostly the algorithm header shared by all keys of a type), the Secret's
// data as the API encodes it (base64 of the PEM and of the JWK), and the
// JWK's private members.
func (f *forbiddenSet) addKey(kid string, keyPEM, keyJWK []byte) {
	enc := map[string]string{}
	if block, _ := pem.Decode(keyPEM); block != nil {
		enc["base64 DER"] = base64.StdEncoding.EncodeToString(block.Bytes)
		body := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
		for i, line := range body {
			if i <= 1 || strings.HasPrefix(line, "-----") || len(line) < 16 {
				continue // line 0 is the BEGIN line, line 1 the shared header
			}
			enc[fmt.Sprintf("PEM line %d", i)] = line
		}
	}
	if len(keyPEM) > 0 {
		enc["base64 key.pem"] = base64.StdEncoding.EncodeToString(keyPEM)
	}
	if len(keyJWK) > 0 {
		enc["base64 key.jwk"] = base64.StdEncoding.EncodeToString(keyJWK)
		var members map[string]any
		if json.Unmarshal(keyJWK, &members) == nil {
			for _, m := range privateJWKMembers {
				if v, ok := members[m].(string); ok && len(v) >= 16 {
					enc["JWK "+m] = v
				}
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byKID[kid] == nil {
		f.byKID[kid] = map[string]string{}
	}
	for k, v := range enc {
		f.byKID[kid][k] = v
	}
}

func (f *forbiddenSet) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byKID)
}

// find lists, without repeating them, the private keys text contains.
func (f *forbiddenSet) find(where, text string) []string {
	var out []string
	if strings.Contains(text, "PRIVATE KEY") {
		out = append(out, where+`: contains "PRIVATE KEY"`)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for kid, encs := range f.byKID {
		for name, v := range encs {
			if strings.Contains(text, v) {
				out = append(out, fmt.Sprintf("%s: contains the %s of private key %s", where, name, kid))
			}
		}
	}
	sort.Strings(out)
	return out
}

// privateJWKMembers are the JWK members that only a private key has
// (RFC 7518 section 6; "k" is a symmetric key).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// scanLogs searches log files for private key material.
func scanLogs(groups ...[]string) []string {
	var out []string
	for _, files := range groups {
		for _, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			out = append(out, forbidden.find(path, string(b))...)
		}
	}
	return out
}

// mustExpose are metrics the scrape must hold for it to count: one of the
// JWKS server and one of the controller, so a scrape of the wrong endpoint
// (or of a manager without either) fails instead of passing empty.
var mustExpose = []string{"signet_jwks_requests_total", `signet_key_events_total{reason="KeyActivated"}`, "signet_tenants_not_ready", "signet_jwks_synced"}

// scanMetrics GETs the manager's metrics endpoint and searches it for
// private key material, as scanLogs does the logs. It returns the leaks
// found and an error if the scrape failed or is not signet's.
func scanMetrics(ctx context.Context, m *managerProc) (leaks []string, size int, err error) {
	url, status, body, err := scrape(ctx, m, s.scraperToken)
	if err != nil {
		return nil, 0, err
	}
	if status != http.StatusOK {
		return nil, len(body), fmt.Errorf("scrape %s: status %d: %s", url, status, body)
	}
	text := string(body)
	var missing []string
	for _, name := range mustExpose {
		if !strings.Contains(text, name) {
			missing = append(missing, name)
		}
	}
	leaks = forbidden.find(url, text)
	if len(missing) > 0 {
		return leaks, len(body), fmt.Errorf("scrape %s (%d bytes) lacks %v", url, len(body), missing)
	}
	return leaks, len(body), nil
}
