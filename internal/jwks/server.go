package jwks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/signet-dev/signet/internal/cacheopts"
)

// Defaults of Options, the same as the manager's flag defaults.
const (
	DefaultBindAddress   = ":8443"
	DefaultPublicBaseURL = "https://signet-jwks.signet-system.svc"
)

// Limits of the HTTP server. Requests are small GETs answered from
// memory: anything slow or large is a client to drop, not to wait for.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 8 << 10
	shutdownTimeout   = 10 * time.Second
)

// Options configure the JWKS server.
type Options struct {
	// BindAddress is the listen address. "0" turns the listener off (the
	// store is still built, and Server still serves as an http.Handler);
	// "" means DefaultBindAddress.
	BindAddress string
	// PublicBaseURL is the scheme and authority (and optional path prefix)
	// under which clients reach the server; the discovery document's URLs
	// and the default issuer are built from it. "" means DefaultPublicBaseURL.
	PublicBaseURL string
	// MaxCacheAge caps Cache-Control max-age (which is also capped by half of each
	// tenant's prePublish). Zero or negative means max-age=0. cmd/manager
	// passes --max-cache-age (default 5m).
	MaxCacheAge time.Duration
	// TLSCertFile and TLSKeyFile, when both set, make the server serve TLS,
	// reloading the pair when the files change. Setting only one is an error.
	TLSCertFile, TLSKeyFile string
	// WatchNamespace restricts the served TenantIdentities and ConfigMaps to
	// one namespace; "" serves all namespaces the cache sees.
	WatchNamespace string
	// SystemNamespace is signet's own namespace, where the controller keeps
	// the claim records that say who owns an org/site. "" reads none: the
	// oldest bound claim owns each org/site.
	SystemNamespace string
	// OrgBinding serves a TenantIdentity only when its namespace's label
	// identity.signet.dev/org names its org (the manager's
	// --org-binding=namespace-label). The server checks it itself.
	OrgBinding bool
}

// Server serves the JWKS documents. It is an http.Handler and, through Add,
// a manager.Runnable (the rebuild loop) that runs in every replica.
type Server struct {
	opts   Options
	cfg    docConfig
	reader client.Reader // the manager's cache
	log    logr.Logger

	store   store
	queue   *coalescer
	synced  atomic.Bool
	metrics *requestMetrics

	registrations []toolscache.ResourceEventHandlerRegistration
	listener      net.Listener // nil when BindAddress is "0"
}

var (
	_ http.Handler                   = (*Server)(nil)
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
)

// Add registers the JWKS server with mgr: the tenancy.OrgSiteField index on
// TenantIdentity, event handlers on the informers of TenantIdentity,
// ConfigMap and Namespace, the rebuild loop, and (unless BindAddress is "0") the HTTP
// server and, with TLS, the certificate watcher. All of them run in every
// replica (NeedLeaderElection is false).
//
// Requirements on mgr: its scheme knows v1alpha1 and core/v1, and its cache
// should be configured with internal/cacheopts (the server ignores other
// objects anyway, but an unselected cache holds them all). The
// listener is opened here, as controller-runtime does for its probe
// listener, so a bad address fails Add and the HTTP server can start with
// the manager's first runnables, answering 503 until the cache has synced.
//
// Wire ReadyCheck into the manager's readyz.
func Add(mgr manager.Manager, opts Options) (*Server, error) {
	s, err := newServer(mgr.GetCache(), opts, mgr.GetLogger().WithName("jwks"))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := cacheopts.IndexOrgSite(ctx, mgr.GetCache()); err != nil {
		return nil, fmt.Errorf("jwks: index TenantIdentity by org/site: %w", err)
	}
	if err := s.watch(ctx, mgr.GetCache()); err != nil {
		return nil, err
	}
	if err := mgr.Add(s); err != nil {
		return nil, err
	}
	if s.opts.BindAddress != "0" {
		if err := s.addHTTPServer(mgr); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewServer returns a Server that is not wired to a manager: it serves
// only what Load gives it. For tools, benchmarks and hack/loadtest; the
// operator uses Add. Its Start fails: there is nothing to watch.
func NewServer(opts Options) (*Server, error) {
	return newServer(nil, opts, crlog.Log.WithName("jwks"))
}

// newServer validates opts and builds a Server reading from reader.
func newServer(reader client.Reader, opts Options, log logr.Logger) (*Server, error) {
	if opts.BindAddress == "" {
		opts.BindAddress = DefaultBindAddress
	}
	if opts.PublicBaseURL == "" {
		opts.PublicBaseURL = DefaultPublicBaseURL
	}
	base, err := checkBaseURL(opts.PublicBaseURL)
	if err != nil {
		return nil, err
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("jwks: set both TLSCertFile and TLSKeyFile, or neither")
	}
	return &Server{
		opts:    opts,
		cfg:     docConfig{baseURL: base, maxCacheAge: max(opts.MaxCacheAge, 0)},
		reader:  reader,
		log:     log,
		queue:   newCoalescer(),
		metrics: reqMetrics,
	}, nil
}

// checkBaseURL accepts an absolute http(s) URL without query or fragment
// and returns it without a trailing slash, ready to prefix BasePath.
func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("jwks: public base URL %q must be an absolute http(s) URL without query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// ReadyCheck fails until the informers have synced and the documents of
// every org/site they hold are built.
func (s *Server) ReadyCheck() healthz.Checker {
	return func(*http.Request) error {
		if !s.synced.Load() {
			return errors.New("jwks: documents not built yet: the cache has not synced")
		}
		return nil
	}
}

// Addr is the address the server listens on (useful with port 0), nil
// when BindAddress is "0" or the Server was not made by Add.
func (s *Server) Addr() net.Addr {
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// addHTTPServer opens the listener (TLS when configured) and registers
// the HTTP server with mgr as a manager.Server, which the manager starts
// first, before its caches, and which does not need leader election.
func (s *Server) addHTTPServer(mgr manager.Manager) error {
	ln, watcher, err := listen(s.opts)
	if err != nil {
		return err
	}
	if watcher != nil {
		if err := mgr.Add(watcher); err != nil {
			_ = ln.Close()
			return err
		}
	}
	s.listener = ln
	timeout := shutdownTimeout
	return mgr.Add(&manager.Server{
		Name:            "jwks",
		Server:          s.httpServer(),
		Listener:        ln,
		ShutdownTimeout: &timeout,
	})
}

// listen opens opts.BindAddress, wrapped in TLS when a certificate is
// configured. The returned watcher (nil without TLS) must be started to
// pick up renewed certificates.
func listen(opts Options) (net.Listener, *certwatcher.CertWatcher, error) {
	var watcher *certwatcher.CertWatcher
	if opts.TLSCertFile != "" {
		var err error
		// certwatcher reads the pair now, so a bad one fails Add.
		if watcher, err = certwatcher.New(opts.TLSCertFile, opts.TLSKeyFile); err != nil {
			return nil, nil, fmt.Errorf("jwks: TLS certificate: %w", err)
		}
	}
	ln, err := net.Listen("tcp", opts.BindAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: listen on %s: %w", opts.BindAddress, err)
	}
	if watcher != nil {
		ln = tls.NewListener(ln, tlsConfig(watcher))
	}
	return ln, watcher, nil
}

// tlsConfig serves whatever certificate the watcher holds now, so a
// renewed certificate is picked up without a restart. HTTP/1.1 only: the
// documents are small and keep-alive is all a verifier needs.
func tlsConfig(w *certwatcher.CertWatcher) *tls.Config {
	return &tls.Config{
		GetCertificate: w.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
	}
}

// httpServer is the hardened http.Server around s.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Handshake failures and bad requests are client problems: debug level.
		ErrorLog: log.New(logWriter{s.log.V(1)}, "", 0),
	}
}

// logWriter routes net/http's log lines to logr.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
