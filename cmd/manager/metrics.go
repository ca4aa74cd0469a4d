package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
)

// The secure metrics endpoint authenticates a scrape's bearer token with a
// TokenReview and authorizes GET /metrics with a SubjectAccessReview. These
// markers make the ClusterRole signet-metrics-auth-role (make manifests);
// config/rbac binds it to both ServiceAccounts, since every replica serves
// metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions are the metrics flags, named as kubebuilder v4 scaffolds them.
type metricsOptions struct {
	addr     string
	secure   bool
	certPath string // directory of certName and keyName; self-signed when empty
	certName string
	keyName  string
}

// addMetricsServer serves controller-runtime's registry on o.addr, as
// controller-runtime's metrics server does with SecureServing and
// filters.WithAuthenticationAndAuthorization, but on a listener opened here
// rather than in its Start: a bad address fails at once, and the manager
// logs the address it bound ("starting server", name "metrics"), so that
// port 0 is usable by tests and tools. It returns the address bound, nil
// when o.addr is "0" (off).
func addMetricsServer(mgr manager.Manager, cfg *rest.Config, o metricsOptions) (net.Addr, error) {
	if o.addr == "0" {
		return nil, nil
	}
	handler := promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
	var tlsCfg *tls.Config
	if o.secure {
		var err error
		if handler, err = authorized(mgr, cfg, handler); err != nil {
			return nil, err
		}
		if tlsCfg, err = metricsTLS(mgr, o); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", o.addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	timeout := 10 * time.Second
	err = mgr.Add(&manager.Server{
		Name:            "metrics",
		Server:          &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 1 << 20},
		Listener:        ln,
		ShutdownTimeout: &timeout,
	})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// authorized wraps h in the TokenReview/SubjectAccessReview filter.
func authorized(mgr manager.Manager, cfg *rest.Config, h http.Handler) (http.Handler, error) {
	filter, err := filters.WithAuthenticationAndAuthorization(cfg, mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("metrics: authorization filter: %w", err)
	}
	h, err = filter(mgr.GetLogger().WithName("metrics"), h)
	if err != nil {
		return nil, fmt.Errorf("metrics: authorization filter: %w", err)
	}
	return h, nil
}

// metricsTLS serves the certificate of --metrics-cert-path (reloaded when
// it changes) or, without one, a self-signed certificate made at start, as
// controller-runtime does. HTTP/1.1 only, as kubebuilder v4 scaffolds
// (HTTP/2 stream resets, CVE-2023-44487).
func metricsTLS(mgr manager.Manager, o metricsOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if o.certPath != "" {
		watcher, err := certwatcher.New(filepath.Join(o.certPath, o.certName), filepath.Join(o.certPath, o.keyName))
		if err != nil {
			return nil, fmt.Errorf("metrics: certificate: %w", err)
		}
		if err := mgr.Add(watcher); err != nil {
			return nil, err
		}
		cfg.GetCertificate = watcher.GetCertificate
		return cfg, nil
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKeyWithFixtures("localhost", []net.IP{{127, 0, 0, 1}}, nil, "")
	if err != nil {
		return nil, fmt.Errorf("metrics: self-signed certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("metrics: self-signed certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}
