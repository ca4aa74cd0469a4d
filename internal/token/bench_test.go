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
	f, _ := newFixture(b, alg)
	f.h.log = ctrlzap.New(ctrlzap.WriteTo(io.Discard))
	never := Limits{PerCaller: rate.Limit(1e12), PerCallerBurst: 1 << 30, PerNamespace: rate.Limit(1e12), PerNamespaceBurst: 1 << 30}
	f.h.perCaller = newBuckets(never.PerCaller, never.PerCallerBurst)
	f.h.perNamespace = newBuckets(never.PerNamespace, never.PerNamespaceBurst)
	// The manager's cache hands out the stored object (no copy); the fake
	// client would serialize it on every Get.
	f.h.tenants = storedObject{f.ti}
	body := []byte(`{"audience":["api.acme.example"],"expirationSeconds":600}`)
	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, testPath, rd)
	r.Header.Set("Authorization", "Bearer "+f.bearer)
	w := &benchWriter{h: http.Header{}}
	// Warm up: the reviews are cached and the key is held.
	f.h.ServeHTTP(w, r)
	if w.code != http.StatusOK {
		b.Fatalf("warm-up: %d", w.code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd.Reset(body)
		w.reset()
		f.h.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// benchGoJose signs the claims the handler signs, with a go-jose signer
// built as keySource builds it: the claims marshaled and signed
// (go-jose-sign, what the handler does, so the floor of its cost), or
// through go-jose's jwt builder (go-jose-jwt, which normalizes the claims
// through a map first, for reference).
func benchGoJose(b *testing.B, alg string, builder bool) {
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
	c := newClaims(testIssuer, "system:serviceaccount:tenant-acme:builder", []string{"api.acme.example"}, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), 600*time.Second, newJTI())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if builder {
			if _, err := josejwt.Signed(signer).Claims(c).Serialize(); err != nil {
				b.Fatal(err)
			}
			continue
		}
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
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
