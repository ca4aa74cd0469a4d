package main

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/controllers"
	"github.com/signet-dev/signet/internal/apiclock"
	"github.com/signet-dev/signet/internal/cacheopts"
	"github.com/signet-dev/signet/internal/jwks"
	"github.com/signet-dev/signet/internal/keys"
	"github.com/signet-dev/signet/internal/token"
)

// newManager builds the manager with the controller and the server as the
// flags say. The cache holds only signet's own objects, trimmed
// (internal/cacheopts); Secrets are never cached with their data.
func newManager(ctx context.Context, cfg *rest.Config, o options) (manager.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	// Decisions and records keep the API server's time, which no replica owns.
	serverClock := apiclock.New(clock.RealClock{})
	cfg.Wrap(serverClock.Transport)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"}, // addMetricsServer serves them
		HealthProbeBindAddress: o.probeAddr,
		PprofBindAddress:       o.pprofAddr,
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
	if _, err := addMetricsServer(mgr, cfg, metricsOptions{
		addr: o.metricsAddr, secure: o.metricsSecure,
		certPath: o.metricsCertPath, certName: o.metricsCertName, keyName: o.metricsCertKey,
	}); err != nil {
		return nil, err
	}
	if o.controllers {
		selector, _ := labels.Parse(o.tenantSelector) // validated with the flags
		r := &controllers.TenantIdentityReconciler{
			Client:                  mgr.GetClient(),
			APIReader:               mgr.GetAPIReader(),
			Clock:                   serverClock,
			Recorder:                mgr.GetEventRecorder("signet"),
			PublicBaseURL:           o.publicBaseURL,
			OrgBinding:              o.orgBinding == orgBindingLabel,
			SystemNamespace:         o.systemNamespace,
			SigningPropagation:      o.signingPropagation,
			TenantSelector:          selector,
			WatchNamespace:          o.watchNamespace,
			MaxConcurrentReconciles: o.maxConcurrentReconciles,
			Generate:                keys.Generate,
		}
		if o.tenantSelector == "" {
			r.TenantSelector = nil
		}
		if err := r.SetupWithManager(ctx, mgr); err != nil {
			return nil, fmt.Errorf("set up controller: %w", err)
		}
	}
	if o.jwksServer {
		srv, err := jwks.Add(mgr, jwks.Options{
			BindAddress:     o.jwksAddr,
			PublicBaseURL:   o.publicBaseURL,
			MaxCacheAge:     o.maxCacheAge,
			TLSCertFile:     o.tlsCertFile,
			TLSKeyFile:      o.tlsKeyFile,
			WatchNamespace:  o.watchNamespace,
			SystemNamespace: o.systemNamespace,
			OrgBinding:      o.orgBinding == orgBindingLabel,
		})
		if err != nil {
			return nil, fmt.Errorf("set up JWKS server: %w", err)
		}
		if err := mgr.AddReadyzCheck("jwks-synced", srv.ReadyCheck()); err != nil {
			return nil, err
		}
		if _, err := addTokenAPI(mgr, srv, o); err != nil {
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

// cacheOptions: signet's own objects only, trimmed (internal/cacheopts).
func cacheOptions(o options) cache.Options {
	return cacheopts.Options(cacheopts.Config{
		WatchNamespace:  o.watchNamespace,
		SystemNamespace: o.systemNamespace,
		ServerOnly:      !o.controllers,
	})
}

// addTokenAPI runs the token API where it can work: beside the controller
// (it reads key Secrets, which a server-only replica's RBAC forbids) and
// the JWKS server (it signs only what the server publishes).
// It returns nil when the token API does not run here.
func addTokenAPI(mgr manager.Manager, srv *jwks.Server, o options) (*token.Server, error) {
	if !o.controllers || o.tokenAddr == "0" {
		return nil, nil
	}
	ts, err := token.Add(mgr, srv, token.Options{
		BindAddress:    o.tokenAddr,
		TLSCertFile:    o.tlsCertFile,
		TLSKeyFile:     o.tlsKeyFile,
		ReviewAudience: o.tokenAudience,
	})
	if err != nil {
		return nil, fmt.Errorf("set up token API: %w", err)
	}
	return ts, nil
}
