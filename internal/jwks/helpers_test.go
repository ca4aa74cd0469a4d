package jwks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
)

const (
	siteA = "7d9f3c1e-5b2a-4c8e-9f10-3a4b5c6d7e8f"
	siteB = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

// testKey is one generated key with its public and private JWK JSON.
type testKey struct {
	*keys.Material
	public  string
	private string // the private JWK: never to be seen in a response or log
	d       string // its private member, the value tests search for
}

// keyCache makes each (alg, index) once: RSA generation is slow under -race.
var keyCache sync.Map // string -> func() (*testKey, error)

// genKey returns the n-th test key of alg, shared by all tests.
func genKey(t testing.TB, alg string, n int) *testKey {
	t.Helper()
	name := alg + "/" + string(rune('0'+n))
	get, _ := keyCache.LoadOrStore(name, sync.OnceValues(func() (*testKey, error) {
		m, err := keys.Generate(alg, 0, nil)
		if err != nil {
			return nil, err
		}
		pub, err := m.PublicJWK()
		if err != nil {
			return nil, err
		}
		priv, err := m.PrivateJWK()
		if err != nil {
			return nil, err
		}
		var members map[string]string
		_ = json.Unmarshal(priv, &members) // non-string members fail; d is a string
		return &testKey{Material: m, public: string(pub), private: string(priv), d: members["d"]}, nil
	}))
	k, err := get.(func() (*testKey, error))()
	if err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	if k.d == "" {
		t.Fatalf("key %s: private JWK has no d", name)
	}
	return k
}

// newTI is a TenantIdentity as the controller leaves it: Published=True
// unless told otherwise.
func newTI(ns, name, org, site string, created time.Time, publishedStatus metav1.ConditionStatus) *v1alpha1.TenantIdentity {
	ti := &v1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			UID:               types.UID(ns + "/" + name + "-uid"),
			CreationTimestamp: metav1.NewTime(created),
		},
		Spec: v1alpha1.TenantIdentitySpec{Org: org, SiteID: site, Keys: v1alpha1.KeyPolicy{PrePublish: "1h"}},
	}
	if publishedStatus != "" {
		ti.Status.Conditions = []metav1.Condition{{
			Type: v1alpha1.ConditionPublished, Status: publishedStatus,
			Reason: v1alpha1.ReasonKeysPublished, LastTransitionTime: metav1.NewTime(created),
		}}
	}
	return ti
}

// jwksConfigMap is the ConfigMap the controller writes for ti, keys in
// publication order.
func jwksConfigMap(ti *v1alpha1.TenantIdentity, sequence string, ks ...*testKey) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ti.Namespace, Name: v1alpha1.JWKSConfigMapName(ti.Name),
			Labels: map[string]string{
				v1alpha1.LabelTenantIdentity: ti.Name,
				v1alpha1.LabelOrg:            ti.Spec.Org,
				v1alpha1.LabelSite:           ti.Spec.SiteID,
				v1alpha1.LabelComponent:      v1alpha1.ComponentJWKS,
			},
			Annotations: map[string]string{v1alpha1.AnnotationSequence: sequence},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "TenantIdentity",
				Name: ti.Name, UID: ti.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Data: map[string]string{},
	}
	setKeys(cm, ks...)
	return cm
}

// setKeys replaces the keys of cm, in order.
func setKeys(cm *corev1.ConfigMap, ks ...*testKey) {
	cm.Data = map[string]string{}
	kids := make([]string, 0, len(ks))
	for _, k := range ks {
		cm.Data[k.KID+jsonSuffix] = k.public
		kids = append(kids, k.KID)
	}
	cm.Annotations[v1alpha1.AnnotationKeyOrder] = strings.Join(kids, ",")
}

// testServer is a Server whose store tests fill directly.
func testServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := newServer(nil, opts, logr.Discard())
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	return s
}

// put builds the entry of ti from cm and stores it.
func (s *Server) put(t testing.TB, ti *v1alpha1.TenantIdentity, cm *corev1.ConfigMap) {
	t.Helper()
	e, err := buildEntry(documentInput(ti, cm, s.cfg))
	if err != nil {
		e = badEntry
	}
	s.store.apply(map[tenantKey]*entry{{ti.Spec.Org, ti.Spec.SiteID}: e})
}

// get runs one request through the handler.
func get(s http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// docPath is the path of one document of an org/site.
func docPath(org, site string, rt route) string {
	return v1alpha1.BasePath(org, site) + routeSuffixes[rt]
}

// nicoError is the error body.
type nicoError struct {
	Source  string          `json:"source"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testutilCounter reads a counter's value.
func testutilCounter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

var discardLog = logr.Discard()

// signCompact signs payload as a compact JWS with k (kid in the header), as
// a signing workload would.
func signCompact(t *testing.T, k *testKey, payload string) (string, jose.SignatureAlgorithm) {
	t.Helper()
	signer, err := k.Signer()
	if err != nil {
		t.Fatal(err)
	}
	alg := jose.SignatureAlgorithm(k.Algorithm)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: signer, KeyID: k.KID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact, alg
}
