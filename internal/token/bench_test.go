package token

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

// Tokens per second per core through the handler, with the reviews
// cached (the steady state of a workload that fetches tokens with one
// service account token), beside the least the same token costs: go-jose
// signing the same claims with the same key. Run with -cpu 1:
//
//	go test -run '^$' -bench 'Mint' -cpu 1 -count 10 ./internal/token/
//
// The handler runs with what production has on the request path: the
// JSON zap logger of the manager (writing to io.Discard), the metrics,
// and the rate-limit buckets (set so high they never refuse).
func BenchmarkMint(b *testing.B) {
	for _, alg := range []string{keys.ES256, keys.RS256} {
		b.Run(alg+"/handler", func(b *testing.B) { benchHandler(b, alg) })
		b.Run(alg+"/go-jose-sign", func(b *testing.B) { benchGoJose(b, alg, false) })
		b.Run(alg+"/go-jose-jwt", func(b *testing.B) { benchGoJose(b, alg, true) })
	}
}

func benchHandler(b *testing.B, alg string) {
	serve := benchHandlerSetup(b, alg)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if code := serve(); code != http.StatusOK {
			b.Fatalf("status %d", code)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// benchHandlerSetup builds a handler with cached reviews and a held key,
// and returns a function that serves one request through it.
func benchHandlerSetup(b *testing.B, alg string) func() int {
	f, _ := newFixture(b, alg)
	f.h.log = ctrlzap.New(ctrlzap.WriteTo(io.Discard))
	never := rate.Limit(1e12)
	f.h.perCaller = newBuckets(never, 1<<30)
	f.h.perNamespace = newBuckets(never, 1<<30)
	// The manager's cache hands out the stored object (no copy); the fake
	// client would serialize it on every Get.
	f.h.tenants = storedObject{f.ti}
	body := []byte(`{"audience":["api.acme.example"],"expirationSeconds":600}`)
	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, testPath, rd)
	r.Header.Set("Authorization", "Bearer "+f.bearer)
	w := &benchWriter{h: http.Header{}}
	serve := func() int {
		rd.Reset(body)
		w.reset()
		f.h.ServeHTTP(w, r)
		return w.code
	}
	// Warm up: the reviews are cached and the key is held.
	if code := serve(); code != http.StatusOK {
		b.Fatalf("warm-up: %d", code)
	}
	return serve
}

// benchGoJose signs the claims the handler signs, with a go-jose signer
// built as keySource builds it: the claims marshaled and signed
// (go-jose-sign, what the handler does, so the floor of its cost), or
// through go-jose's jwt builder (go-jose-jwt, which normalizes the claims
// through a map first, for reference).
func benchGoJose(b *testing.B, alg string, builder bool) {
	sign := newBenchSign(b, alg)
	if builder {
		sign = newBenchBuilder(b, alg)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sign()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// benchSigner is a go-jose signer built as keySource builds it, and the
// claims the handler signs.
func benchSigner(b *testing.B, alg string) (jose.Signer, claims) {
	m := testKey(b, alg, 0)
	priv, err := m.Signer()
	if err != nil {
		b.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: priv, KeyID: m.KID, Algorithm: alg},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		b.Fatal(err)
	}
	c := newClaims(testIssuer, "system:serviceaccount:tenant-acme:builder", []string{"api.acme.example"},
		time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), 600*time.Second, newJTI())
	return signer, c
}

// newBenchSign returns one bare sign: marshal the claims, sign, serialize.
func newBenchSign(b *testing.B, alg string) func() {
	signer, c := benchSigner(b, alg)
	return func() {
		payload, err := json.Marshal(c)
		if err != nil {
			b.Fatal(err)
		}
		jws, err := signer.Sign(payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.CompactSerialize(); err != nil {
			b.Fatal(err)
		}
	}
}

// newBenchBuilder returns one sign through go-jose's jwt builder.
func newBenchBuilder(b *testing.B, alg string) func() {
	signer, c := benchSigner(b, alg)
	return func() {
		if _, err := josejwt.Signed(signer).Claims(c).Serialize(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchWriter is a ResponseWriter reused across iterations.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) reset()                      { clear(w.h); w.code, w.n = 0, 0 }

// storedObject is a reader of one TenantIdentity that, like the
// manager's cache with UnsafeDisableDeepCopy, copies only the struct.
type storedObject struct{ ti *v1alpha1.TenantIdentity }

func (s storedObject) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if key.Namespace != s.ti.Namespace || key.Name != s.ti.Name {
		return io.EOF
	}
	*obj.(*v1alpha1.TenantIdentity) = *s.ti
	return nil
}

func (storedObject) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return runtime.NewMissingKindErr("list")
}
