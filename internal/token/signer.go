package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
)

// dataKeyPEM is where a key Secret keeps its PKCS#8 private key.
const dataKeyPEM = "key.pem"

// tenantKey names an org/site.
type tenantKey struct{ org, site string }

// heldKey is the Active key of one org/site, parsed and ready to sign. It
// prints, logs and marshals as its kid and algorithm only.
type heldKey struct {
	owner  types.UID
	kid    string
	alg    string
	signer jose.Signer
}

func (k *heldKey) String() string             { return fmt.Sprintf("heldKey{kid=%s, alg=%s}", k.kid, k.alg) }
func (k *heldKey) GoString() string           { return k.String() }
func (k *heldKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }
func (k *heldKey) MarshalLog() any            { return map[string]string{"kid": k.kid, "alg": k.alg} }
func (k *heldKey) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"kid":%q,"alg":%q}`, k.kid, k.alg), nil
}

// sign returns the compact JWS of payload.
func (k *heldKey) sign(payload []byte) (string, error) {
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", k.kid, err)
	}
	return jws.CompactSerialize()
}

// keySource hands out the Active key of an org/site. It reads the key's
// Secret live (the manager's cache holds no Secret data), checks that it
// is the key the documents list first, and holds the parsed key only
// while that stays so: the first request or sweep that sees another
// Active kid drops it.
type keySource struct {
	secrets client.Reader // the manager's API reader

	mu     sync.Mutex
	held   map[tenantKey]*heldKey
	flight singleflight.Group
}

func newKeySource(secrets client.Reader) *keySource {
	return &keySource{secrets: secrets, held: map[tenantKey]*heldKey{}}
}

// active returns the key to sign with for t as pub publishes it.
func (s *keySource) active(ctx context.Context, t tenantKey, pub jwks.Publication) (*heldKey, error) {
	kid := pub.ActiveKID()
	if kid == "" {
		return nil, errors.New("the documents list no key")
	}
	s.mu.Lock()
	k := s.held[t]
	if k != nil && (k.owner != pub.Owner.UID || k.kid != kid) {
		delete(s.held, t) // no longer the Active key: forget it now
		k = nil
	}
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	v, err, _ := s.flight.Do(t.org+"/"+t.site+"/"+string(pub.Owner.UID)+"/"+kid, func() (any, error) {
		return s.load(context.WithoutCancel(ctx), pub.Owner, kid)
	})
	if err != nil {
		return nil, err
	}
	k = v.(*heldKey)
	s.mu.Lock()
	s.held[t] = k
	s.mu.Unlock()
	return k, nil
}

// sweep drops every held key that is no longer the Active key its
// org/site publishes (or whose org/site is no longer published), so a
// replaced key leaves memory even when no request comes.
func (s *keySource) sweep(pubs Publications) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, k := range s.held {
		pub, ok := pubs.Published(t.org, t.site)
		if !ok || pub.Owner.UID != k.owner || pub.ActiveKID() != k.kid {
			delete(s.held, t)
		}
	}
}

// heldCount is how many keys are in memory.
func (s *keySource) heldCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// load reads and checks the Secret of kid, and parses its key.
func (s *keySource) load(ctx context.Context, owner jwks.Owner, kid string) (*heldKey, error) {
	short, err := keys.ShortKID(kid)
	if err != nil {
		return nil, fmt.Errorf("the Active kid is not one signet makes: %w", err)
	}
	key := client.ObjectKey{Namespace: owner.Namespace, Name: owner.Name + "-" + short}
	var sec corev1.Secret
	if err := s.secrets.Get(ctx, key, &sec); err != nil {
		return nil, fmt.Errorf("read key Secret %s: %w", key, err)
	}
	if err := checkKeySecret(&sec, owner.UID, kid); err != nil {
		return nil, fmt.Errorf("key Secret %s refused: %w", key, err)
	}
	alg := sec.Annotations[v1alpha1.AnnotationAlgorithm]
	// keys.Load recomputes the kid from the key; its errors never quote key bytes.
	m, err := keys.Load(sec.Data[dataKeyPEM], alg, nil)
	if err != nil {
		return nil, fmt.Errorf("key Secret %s refused: %w", key, err)
	}
	if m.KID != kid {
		return nil, fmt.Errorf("key Secret %s refused: it holds another key than kid %s", key, kid)
	}
	priv, err := m.Signer()
	if err != nil {
		return nil, fmt.Errorf("key Secret %s refused: %w", key, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("key %s: %s signer: %w", kid, alg, err)
	}
	return &heldKey{owner: owner.UID, kid: kid, alg: alg, signer: signer}, nil
}

// checkKeySecret refuses a Secret that is not the Active key kid of the
// TenantIdentity owner: not controlled by it, annotated with another kid,
// or not recorded Active (the controller records a key Active before it
// lists it first).
func checkKeySecret(sec *corev1.Secret, owner types.UID, kid string) error {
	ref := metav1.GetControllerOfNoCopy(sec)
	switch {
	case ref == nil || ref.UID != owner || ref.Kind != "TenantIdentity" || ref.APIVersion != v1alpha1.GroupVersion.String():
		return errors.New("it is not controlled by the TenantIdentity that publishes the org/site")
	case sec.Annotations[v1alpha1.AnnotationKID] != kid:
		return fmt.Errorf("it is not annotated %s=%s", v1alpha1.AnnotationKID, kid)
	case sec.Annotations[v1alpha1.AnnotationKeyState] != string(v1alpha1.KeyStateActive):
		return fmt.Errorf("it is not annotated %s=%s", v1alpha1.AnnotationKeyState, v1alpha1.KeyStateActive)
	}
	return nil
}
