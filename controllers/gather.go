package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/tenancy"
)

// observed is everything one reconcile reads, gathered in one place so the
// decisions after it are pure.
type observed struct {
	ti              *identityv1alpha1.TenantIdentity
	keySecrets      []corev1.Secret // controlled by ti
	configMap       *corev1.ConfigMap
	signing         *corev1.Secret
	namespaceLabels map[string]string
	claimants       []identityv1alpha1.TenantIdentity // others claiming the same org/site
	// claimantNamespaceLabels are the labels of the claimants' namespaces,
	// by name: only claims bound to their org compete (org binding on).
	claimantNamespaceLabels map[string]map[string]string
}

// gather reads the objects ti owns live from the API server, not from the
// cache: a reconcile woken by one informer must not act on another
// informer's older view (a key Secret not cached yet would look lost). The
// cache only wakes the reconciler.

func (r *TenantIdentityReconciler) gather(ctx context.Context, ti *identityv1alpha1.TenantIdentity) (*observed, error) {
	obs := &observed{ti: ti}
	var secrets corev1.SecretList
	if err := r.reader().List(ctx, &secrets, client.InNamespace(ti.Namespace), client.MatchingLabels{
		identityv1alpha1.LabelTenantIdentity: ti.Name,
		identityv1alpha1.LabelComponent:      identityv1alpha1.ComponentKey,
	}); err != nil {
		return nil, fmt.Errorf("list key secrets: %w", err)
	}
	for _, s := range secrets.Items {
		if metav1.IsControlledBy(&s, ti) && s.DeletionTimestamp == nil {
			obs.keySecrets = append(obs.keySecrets, s)
		}
	}
	var err error
	if obs.configMap, err = getOwned(ctx, r.reader(), ti, identityv1alpha1.JWKSConfigMapName(ti.Name), &corev1.ConfigMap{}); err != nil {
		return nil, err
	}
	if obs.signing, err = getOwned(ctx, r.reader(), ti, identityv1alpha1.SigningSecretName(ti.Name), &corev1.Secret{}); err != nil {
		return nil, err
	}
	if r.OrgBinding {
		if obs.namespaceLabels, err = r.namespaceLabels(ctx, ti.Namespace); err != nil {
			return nil, err
		}
	}
	var claims identityv1alpha1.TenantIdentityList
	if err := r.List(ctx, &claims, client.MatchingFields{tenancy.OrgSiteField: tenancy.OrgSite(ti.Spec.Org, ti.Spec.SiteID)}); err != nil {
		return nil, fmt.Errorf("list claims on org/site: %w", err)
	}
	obs.claimantNamespaceLabels = map[string]map[string]string{}
	for _, c := range claims.Items {
		if c.UID == ti.UID {
			continue
		}
		obs.claimants = append(obs.claimants, c)
		if _, seen := obs.claimantNamespaceLabels[c.Namespace]; r.OrgBinding && !seen {
			if obs.claimantNamespaceLabels[c.Namespace], err = r.namespaceLabels(ctx, c.Namespace); err != nil {
				return nil, err
			}
		}
	}
	return obs, nil
}

func (r *TenantIdentityReconciler) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	var ns corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return nil, fmt.Errorf("get namespace %s: %w", name, err)
	}
	return ns.Labels, nil
}

// reader reads live from the API server when one is set (the manager's
// APIReader), else through the client.
func (r *TenantIdentityReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// getOwned reads a named object; one that is absent, or that ti does not
// control (someone else's object of the same name), reads as nil.
func getOwned[T client.Object](ctx context.Context, c client.Reader, ti *identityv1alpha1.TenantIdentity, name string, obj T) (T, error) {
	var zero T
	err := c.Get(ctx, client.ObjectKey{Namespace: ti.Namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return zero, nil
	case err != nil:
		return zero, fmt.Errorf("get %s: %w", name, err)
	case !metav1.IsControlledBy(obj, ti):
		return zero, errNotOurs{name}
	}
	return obj, nil
}

// errNotOurs: an object with the name signet needs exists but belongs to
// someone else. signet never overwrites it; the user must move it.
type errNotOurs struct{ name string }

func (e errNotOurs) Error() string {
	return fmt.Sprintf("%s exists and is not controlled by this TenantIdentity; delete or rename it", e.name)
}
