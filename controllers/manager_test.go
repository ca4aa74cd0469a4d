package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/testenv"
)

// eventually polls cond until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within a minute (last error: %v)", what, last)
}

// TestManager runs the reconciler in a real manager (cache, watches, the
// manager's event recorder): a new TenantIdentity becomes Ready without a
// manual reconcile, its Events reach the API, and a deleted ConfigMap is
// recreated through the watch on what it owns.
func TestManager(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t, acme)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		// Only this test's namespace: the other tests' objects stay out.
		// The cache as cmd/manager configures it.
		Cache: cacheopts.Options(cacheopts.Config{WatchNamespace: ns, SystemNamespace: systemNamespace}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &TenantIdentityReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorder("signet"), PublicBaseURL: publicBaseURL, OrgBinding: true, SystemNamespace: systemNamespace,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("manager: %v", err)
		}
	})

	c := env.Client
	ti := &identityv1alpha1.TenantIdentity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tiName},
		Spec:       identityv1alpha1.TenantIdentitySpec{Org: "acme", SiteID: newSiteID(t)},
	}
	if err := c.Create(ctx, ti); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready", func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(ti), ti); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(ti.Status.Conditions, identityv1alpha1.ConditionReady) && ti.Status.ActiveKeyID != "", nil
	})
	s := takeSnapshot(t, ctx, c, ns, tiName)
	if len(s.keys) != 1 || s.signingKID() != ti.Status.ActiveKeyID || !s.publishes(ti.Status.ActiveKeyID) {
		t.Errorf("Ready, yet %d keys, signing %q, published %q", len(s.keys), s.signingKID(), s.published())
	}
	if s.ti.Status.ObservedGeneration != s.ti.Generation {
		t.Errorf("observedGeneration %d of %d", s.ti.Status.ObservedGeneration, s.ti.Generation)
	}

	eventually(t, "a KeyCreated Event in the API", func() (bool, error) {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == "KeyCreated" && e.Type == corev1.EventTypeNormal && e.Action == "Rotate" &&
				e.Regarding.Kind == "TenantIdentity" && e.Regarding.Name == tiName && e.Regarding.UID == ti.UID &&
				e.ReportingController == "signet" && e.Note != "" {
				return true, nil
			}
		}
		return false, nil
	})

	// A deleted ConfigMap comes back through the watch on owned objects.
	if err := c.Delete(ctx, s.cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap recreated", func() (bool, error) {
		var cm corev1.ConfigMap
		err := c.Get(ctx, client.ObjectKeyFromObject(s.cm), &cm)
		if apierrors.IsNotFound(err) {
			return false, err
		}
		return err == nil && cm.UID != s.cm.UID && cm.Data[ti.Status.ActiveKeyID+".json"] == s.cm.Data[ti.Status.ActiveKeyID+".json"], err
	})

	// Labels stripped by hand: the label-selecting cache loses sight of the
	// objects, yet the reconciler (reading them live) restores the labels.
	strip := func(obj client.Object, label string) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		labels := obj.GetLabels()
		delete(labels, label)
		obj.SetLabels(labels)
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	cmKey := client.ObjectKey{Namespace: ns, Name: identityv1alpha1.JWKSConfigMapName(tiName)}
	signingKey := client.ObjectKey{Namespace: ns, Name: identityv1alpha1.SigningSecretName(tiName)}
	strip(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cmKey.Name}}, identityv1alpha1.LabelComponent)
	strip(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: signingKey.Name}}, identityv1alpha1.LabelTenantIdentity)
	eventually(t, "the stripped labels restored", func() (bool, error) {
		var cm corev1.ConfigMap
		var sec corev1.Secret
		if err := c.Get(ctx, cmKey, &cm); err != nil {
			return false, err
		}
		if err := c.Get(ctx, signingKey, &sec); err != nil {
			return false, err
		}
		return cm.Labels[identityv1alpha1.LabelComponent] == identityv1alpha1.ComponentJWKS &&
			sec.Labels[identityv1alpha1.LabelTenantIdentity] == tiName, nil
	})
}
