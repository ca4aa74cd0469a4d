package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/rotation"
	"github.com/signet-dev/signet/internal/tenancy"
)

// observed is everything one reconcile read, in one place, so that every
// decision after it is a pure function of it (decide.go).
//
// A reconcile observes twice at most. First through the manager's cache,
// which holds only metadata of Secrets: when the decisions on that view
// change nothing, the reconcile ends there, having read no private key and
// written nothing. Otherwise it observes again live, from the API server,
// and writes what the decisions on the live view say. A cache lags behind
// the writes it has not seen yet: acting on it could make a key Secret just
// stored look lost (and a new key sign at once, breaking the
// pre-publication) or a kid just published look unknown (and leave the
// documents before its overlap). So every write is decided on a live view;
// a stale cached view can only delay work, which the watch events that make
// the cache catch up bring back.
type observed struct {
	ti   *identityv1alpha1.TenantIdentity
	live bool // read from the API server; else from the cache (metadata of Secrets only)

	// Tenancy: the namespace's labels, every claim on ti's org/site (ti
	// included) with their namespaces' labels, and signet's record of the
	// owner (nil when there is none).
	namespaceLabels map[string]string
	claims          []identityv1alpha1.TenantIdentity
	claimLabels     map[string]map[string]string
	claimRecord     *corev1.ConfigMap

	// What ti owns.
	keySecrets []secret          // key Secrets ti controls, found by label
	strays     []secret          // key Secrets ti controls that lost their label (live only)
	configMap  *corev1.ConfigMap // the JWKS ConfigMap, nil when absent
	signing    *secret           // the signing Secret, nil when absent
}

// secret is a Secret as read: always its metadata, and its type and data
// only when read live.
type secret struct {
	metav1.ObjectMeta
	typ  corev1.SecretType
	data map[string][]byte
}

func secretOf(s *corev1.Secret) secret {
	return secret{ObjectMeta: s.ObjectMeta, typ: s.Type, data: s.Data}
}

// source is where one observation reads: the cache (client) or the API
// server (live).
type source struct {
	reader client.Reader
	live   bool
}

func (r *TenantIdentityReconciler) cached() source { return source{reader: r.Client} }

func (r *TenantIdentityReconciler) liveSource() source {
	if r.APIReader == nil {
		return source{reader: r.Client, live: true}
	}
	return source{reader: r.APIReader, live: true}
}

// observe reads everything the decisions need from src. Tenancy is read
// from the cache either way: namespaces and claims change rarely, the
// field index that finds the claims lives there, and a stale claim record
// cannot mislead a write, which creates it (AlreadyExists) or updates it at
// the resourceVersion read (Conflict): the race ends with a conflict and a
// reconcile on the newer record.
func (r *TenantIdentityReconciler) observe(ctx context.Context, ti *identityv1alpha1.TenantIdentity, src source) (*observed, error) {
	obs := &observed{ti: ti, live: src.live}
	if src.live {
		fresh := &identityv1alpha1.TenantIdentity{}
		if err := src.reader.Get(ctx, client.ObjectKeyFromObject(ti), fresh); err != nil {
			return nil, fmt.Errorf("get TenantIdentity: %w", err)
		}
		obs.ti = fresh
	}
	if err := r.observeTenancy(ctx, obs); err != nil {
		return nil, err
	}
	var err error
	if obs.configMap, err = getObject(ctx, src.reader, obs.ti.Namespace, identityv1alpha1.JWKSConfigMapName(obs.ti.Name), &corev1.ConfigMap{}); err != nil {
		return nil, err
	}
	obs.signing, err = r.observeSecret(ctx, src, obs.ti.Namespace, identityv1alpha1.SigningSecretName(obs.ti.Name))
	if err != nil {
		return nil, err
	}
	return obs, r.observeKeySecrets(ctx, obs, src)
}

// observeTenancy reads the namespace, the claims on ti's org/site and the
// claim record.
func (r *TenantIdentityReconciler) observeTenancy(ctx context.Context, obs *observed) error {
	ti := obs.ti
	obs.claimLabels = map[string]map[string]string{}
	labelsOf := func(ns string) (map[string]string, error) {
		if l, ok := obs.claimLabels[ns]; ok || !r.OrgBinding {
			return l, nil
		}
		var n corev1.Namespace
		if err := r.Get(ctx, client.ObjectKey{Name: ns}, &n); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("get namespace %s: %w", ns, err)
		}
		obs.claimLabels[ns] = n.Labels
		return n.Labels, nil
	}
	var err error
	if obs.namespaceLabels, err = labelsOf(ti.Namespace); err != nil {
		return err
	}
	var claims identityv1alpha1.TenantIdentityList
	if err := r.List(ctx, &claims, client.MatchingFields{tenancy.OrgSiteField: tenancy.OrgSite(ti.Spec.Org, ti.Spec.SiteID)}); err != nil {
		return fmt.Errorf("list claims on org/site: %w", err)
	}
	// The cache may not hold ti's latest version (or ti at all, just
	// after its creation): ti itself is what was read.
	obs.claims = append(slices.DeleteFunc(claims.Items, func(c identityv1alpha1.TenantIdentity) bool { return c.UID == ti.UID }), *ti)
	for _, c := range obs.claims {
		if _, err := labelsOf(c.Namespace); err != nil {
			return err
		}
	}
	obs.claimRecord, err = getObject(ctx, r.Client, r.SystemNamespace, tenancy.ClaimName(ti.Spec.Org, ti.Spec.SiteID), &corev1.ConfigMap{})
	return err
}

// keySecretsField indexes the cached key Secrets (metadata) by the name of
// the TenantIdentity they belong to: finding a tenant's keys costs a
// lookup, not a scan of every Secret of its namespace (10,000 tenants in one
// namespace are 20,000 key Secrets).
const keySecretsField = "signet.keySecretsOf"

func keySecretsOf(o client.Object) []string {
	if l := o.GetLabels(); l[identityv1alpha1.LabelComponent] == identityv1alpha1.ComponentKey && l[identityv1alpha1.LabelTenantIdentity] != "" {
		return []string{l[identityv1alpha1.LabelTenantIdentity]}
	}
	return nil
}

// observeKeySecrets finds the key Secrets of ti in the cache, as metadata.
// Live, it then reads each of them, and each Secret a kid the documents,
// the status or the signing Secret name would have, by name: a key Secret
// the cache has not seen yet is found as long as something names it. (One
// that nothing names yet is a key stored just before a crash; missing it
// makes a second key, which the next reconcile adopts: nothing is lost.)
// Reading by name costs the API server a lookup where a list by label
// would scan the namespace.
func (r *TenantIdentityReconciler) observeKeySecrets(ctx context.Context, obs *observed, src source) error {
	ti := obs.ti
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := r.List(ctx, list, client.InNamespace(ti.Namespace), client.MatchingFields{keySecretsField: ti.Name}); err != nil {
		return fmt.Errorf("list key secrets: %w", err)
	}
	if !src.live {
		for i := range list.Items {
			if s := (secret{ObjectMeta: list.Items[i].ObjectMeta}); ownKey(&s, ti) {
				obs.keySecrets = append(obs.keySecrets, s)
			}
		}
		return nil
	}
	names := make([]string, 0, len(list.Items)+2)
	for i := range list.Items {
		names = append(names, list.Items[i].Name)
	}
	for _, kid := range referencedKIDs(obs) {
		if name, err := keySecretName(ti, kid); err == nil {
			names = append(names, name) // else not a kid signet could have made
		}
	}
	names = append(names, r.strays.of(client.ObjectKeyFromObject(ti))...)
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		s, err := getObject(ctx, src.reader, ti.Namespace, name, &corev1.Secret{})
		if err != nil || s == nil {
			if err != nil {
				return err
			}
			continue
		}
		switch sec := secretOf(s); {
		case !ownKey(&sec, ti):
		case keySecretsOf(s) != nil && s.Labels[identityv1alpha1.LabelTenantIdentity] == ti.Name:
			obs.keySecrets = append(obs.keySecrets, sec)
		default:
			obs.addStray(sec) // signet's, but its labels were stripped
		}
	}
	return nil
}

// ownKey: ti controls s and s is not being deleted.
func ownKey(s *secret, ti *identityv1alpha1.TenantIdentity) bool {
	return metav1.IsControlledBy(&s.ObjectMeta, ti) && s.DeletionTimestamp == nil
}

// observeSecret reads one named Secret: its metadata from the cache, the
// whole Secret live. nil when absent.
func (r *TenantIdentityReconciler) observeSecret(ctx context.Context, src source, namespace, name string) (*secret, error) {
	if src.live {
		s, err := getObject(ctx, src.reader, namespace, name, &corev1.Secret{})
		if s == nil || err != nil {
			return nil, err
		}
		out := secretOf(s)
		return &out, nil
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	m, err := getObject(ctx, src.reader, namespace, name, m)
	if m == nil || err != nil {
		return nil, err
	}
	return &secret{ObjectMeta: m.ObjectMeta}, nil
}

// Stray key Secrets, whose labels someone stripped, leave the
// label-selected cache. A stray that something names (the documents, the
// status, the signing Secret) is read by name in every live observation.
// One that nothing names (a key stored just before a crash, then its labels
// stripped) is noted, with its TenantIdentity's next reconcile to read it
// by name, when the cache sees it leave (noteLeft), or, for what happened
// while no manager ran, by one scan of signet's key Secrets when the
// controller starts (strayScan). No reconcile lists a namespace's Secrets:
// 10,000 tenants in one namespace are 20,000 key Secrets.

// isStray: m is a key Secret of ti whose labels no longer say so.
func isStray(o client.Object, owner string) bool {
	return !slices.Equal(keySecretsOf(o), []string{owner})
}

// strayNotes are the names of stray key Secrets the cache saw leave or
// the start-up scan found, by TenantIdentity, for its next live
// observation to read. A tenant can make as many Secrets controlled by its
// TenantIdentity as it likes and toggle their labels: the notes are a set,
// at most maxStrayNotes names a TenantIdentity (beyond, names are dropped:
// a stray missed here is found by the scan at the next start), and are
// cleared when a reconcile has dealt with them, when the TenantIdentity is
// gone, or when this instance does not reconcile it.
type strayNotes struct {
	mu     sync.Mutex
	byName map[types.NamespacedName][]string
}

// maxStrayNotes bounds the names noted for one TenantIdentity: twice the
// keys it can hold.
const maxStrayNotes = 2 * rotation.MaxKeys

func (n *strayNotes) note(tenant types.NamespacedName, names []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byName == nil {
		n.byName = map[types.NamespacedName][]string{}
	}
	noted := n.byName[tenant]
	for _, name := range names {
		if len(noted) < maxStrayNotes && !slices.Contains(noted, name) {
			noted = append(noted, name)
		}
	}
	n.byName[tenant] = noted
}

func (n *strayNotes) of(tenant types.NamespacedName) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.byName[tenant])
}

// done forgets what a reconcile has dealt with.
func (n *strayNotes) done(tenant types.NamespacedName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.byName, tenant)
}

func (obs *observed) hasSecret(name string) bool {
	return slices.ContainsFunc(slices.Concat(obs.keySecrets, obs.strays), func(s secret) bool { return s.Name == name })
}

// addStray keeps s when ti controls it: a Secret of that name someone else
// made is none of signet's business.
func (obs *observed) addStray(s secret) {
	if !obs.hasSecret(s.Name) && metav1.IsControlledBy(&s.ObjectMeta, obs.ti) && s.DeletionTimestamp == nil && s.typ == secretTypeKey {
		obs.strays = append(obs.strays, s)
	}
}

// referencedKIDs are the kids the documents, the status and the signing
// Secret name.
func referencedKIDs(obs *observed) []string {
	kids := kidsOfConfigMap(obs.configMap)
	for _, ks := range obs.ti.Status.Keys {
		kids = append(kids, ks.KID)
	}
	if kid := signingKID(obs.signing); kid != "" {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return slices.Compact(kids)
}

// signingKID is the kid the signing Secret holds: its data when read live,
// else the annotation signet writes beside it.
func signingKID(s *secret) string {
	switch {
	case s == nil:
		return ""
	case s.data != nil:
		return string(s.data[dataKID])
	}
	return s.Annotations[annKID]
}

// getObject reads a named object; nil when absent.
func getObject[T client.Object](ctx context.Context, c client.Reader, namespace, name string, obj T) (T, error) {
	var zero T
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return zero, nil
	case err != nil:
		return zero, fmt.Errorf("get %s: %w", name, err)
	}
	return obj, nil
}

// loadKey reads a key Secret's record and, when read live, its key, and
// checks they agree. Without data (from the cache) the material is nil.
func loadKey(s secret) (loadedKey, error) {
	rec, err := recordFromSecret(&s.ObjectMeta)
	if err != nil {
		return loadedKey{}, err
	}
	k := loadedKey{secret: s, rec: rec}
	if s.data == nil {
		return k, nil
	}
	m, err := keys.Load(s.data[dataKeyPEM], rec.Algorithm, s.data[dataCertPEM])
	if err != nil {
		return loadedKey{}, fmt.Errorf("secret %s: %w", s.Name, err)
	}
	if m.KID != rec.KID {
		return loadedKey{}, fmt.Errorf("secret %s holds kid %s but is annotated %s", s.Name, m.KID, rec.KID)
	}
	k.material = m
	return k, nil
}
