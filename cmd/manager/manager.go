package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/controllers"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/token"
)

// newManager builds the manager with the controller and the server as the
// flags say. The cache holds only signet's Secrets and ConfigMaps.
func newManager(ctx context.Context, cfg *rest.Config, o options) (manager.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		LeaderElection:         o.leaderElect && o.controllers,
		LeaderElectionID:       o.leaderElectionID,
		Cache:                  cacheOptions(o),
	})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if o.controllers {
		r := &controllers.TenantIdentityReconciler{
			Client:        mgr.GetClient(),
			APIReader:     mgr.GetAPIReader(),
			Scheme:        mgr.GetScheme(),
			Clock:         clock.RealClock{},
			Recorder:      mgr.GetEventRecorder("signet"),
			PublicBaseURL: o.publicBaseURL,
			OrgBinding:    o.orgBinding == orgBindingLabel,
			Generate:      keys.Generate,
		}
		if err := r.SetupWithManager(ctx, mgr); err != nil {
			return nil, fmt.Errorf("set up controller: %w", err)
		}
	}
	if o.jwksServer {
		srv, err := jwks.Add(mgr, jwks.Options{
			BindAddress:    o.jwksAddr,
			PublicBaseURL:  o.publicBaseURL,
			MaxCacheAge:    o.maxCacheAge,
			TLSCertFile:    o.tlsCertFile,
			TLSKeyFile:     o.tlsKeyFile,
			WatchNamespace: o.watchNamespace,
		})
		if err != nil {
			return nil, fmt.Errorf("set up JWKS server: %w", err)
		}
		if err := mgr.AddReadyzCheck("jwks-synced", srv.ReadyCheck()); err != nil {
			return nil, err
		}
		if err := addTokenAPI(mgr, srv, o); err != nil {
			return nil, err
		}
	} else if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// newScheme knows the core types and TenantIdentity.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(identityv1alpha1.AddToScheme(s))
	return s
}

// cacheOptions: Secrets are cached by label only (never every Secret of the
// cluster), ConfigMaps only when they are JWKS documents.
func cacheOptions(o options) cache.Options {
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    controllers.SecretCacheOptions(),
		&corev1.ConfigMap{}: jwks.ConfigMapCacheOptions(),
	}}
	if o.watchNamespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{o.watchNamespace: {}}
	}
	return opts
}

// addTokenAPI runs the token API where it can work: beside the controller
// (it reads key Secrets, which a server-only replica's RBAC forbids) and
// the JWKS server (it signs only what the server publishes).
func addTokenAPI(mgr manager.Manager, srv *jwks.Server, o options) error {
	if !o.controllers || o.tokenAddr == "0" {
		return nil
	}
	if _, err := token.Add(mgr, srv, token.Options{
		BindAddress:    o.tokenAddr,
		TLSCertFile:    o.tlsCertFile,
		TLSKeyFile:     o.tlsKeyFile,
		ReviewAudience: o.tokenAudience,
	}); err != nil {
		return fmt.Errorf("set up token API: %w", err)
	}
	return nil
}
