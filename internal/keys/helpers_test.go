package keys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// certOpts is the certificate every "with cert" fixture gets.
var certOpts = &CertOptions{
	CommonName: "signet test",
	NotBefore:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	NotAfter:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
}

// fixtures caches one generated key per (alg, cert) so the RSA keys, which
// are slow to generate under -race, are made once and shared by all tests.
var fixtures = struct {
	sync.Mutex
	m map[string]func() (*Material, error)
}{m: map[string]func() (*Material, error){}}

func fixture(t *testing.T, alg string, withCert bool) *Material {
	t.Helper()
	name := fmt.Sprintf("%s/%v", alg, withCert)
	fixtures.Lock()
	get, ok := fixtures.m[name]
	if !ok {
		var opts *CertOptions
		if withCert {
			opts = certOpts
		}
		get = sync.OnceValues(func() (*Material, error) { return Generate(alg, 0, opts) })
		fixtures.m[name] = get
	}
	fixtures.Unlock()
	m, err := get()
	if err != nil {
		t.Fatalf("Generate(%s): %v", name, err)
	}
	// Hand out a copy so no test can disturb another through shared slices.
	c := *m
	c.PrivatePEM = bytes.Clone(m.PrivatePEM)
	c.CertPEM = bytes.Clone(m.CertPEM) // stays nil without a certificate
	return &c
}

// members decodes a JSON object into its members.
func members(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	return obj
}

// str decodes a string member, failing the test when it is not one.
func str(t *testing.T, obj map[string]json.RawMessage, name string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(obj[name], &s); err != nil {
		t.Fatalf("member %q is not a string: %v", name, err)
	}
	return s
}

// edit returns raw with members set (values are JSON-encoded) and deleted.
func edit(t *testing.T, raw []byte, set map[string]any, del ...string) []byte {
	t.Helper()
	obj := members(t, raw)
	for k, v := range set {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		obj[k] = b
	}
	for _, k := range del {
		delete(obj, k)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
