package token

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults of Options, the same as the manager's flag defaults.
const (
	DefaultBindAddress    = ":9443"
	DefaultReviewAudience = "signet"
)

// Limits of the HTTP server: requests are small POSTs.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second // a review round trip and a signature
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 32 << 10 // a bearer token of maxBearerLength and the usual headers
	shutdownTimeout   = 10 * time.Second
	sweepInterval     = time.Second
)

// The reviews go through a client of their own, so that a flood of token
// requests can use up only the token API's share of the API server, never
// the controller's.
const (
	reviewQPS   = 100
	reviewBurst = 200
)

// Options configure the token API.
type Options struct {
	// BindAddress is the listen address; "0" turns the listener off (the
	// Server still serves as an http.Handler); "" means DefaultBindAddress.
	// Without TLS it must be a loopback address.
	BindAddress string
	// TLSCertFile and TLSKeyFile, when both set, make the listener serve
	// TLS, reloading the pair when the files change.
	TLSCertFile, TLSKeyFile string
	// ReviewAudience is the audience a caller's service account token must
	// have (its TokenReview asks for it); "" means DefaultReviewAudience.
	ReviewAudience string
	// Limits are the request rate limits; nil means DefaultLimits.
	Limits *Limits
}

// Server is the token API: an http.Handler, and through Add a listener
// and a key sweeper in the manager (in every replica that runs it).
type Server struct {
	handler  *handler
	listener net.Listener // nil when BindAddress is "0"
}

var _ http.Handler = (*Server)(nil)

// Add registers the token API with mgr: a handler reading TenantIdentities
// from mgr's cache and key Secrets through mgr's API reader, publications
// from pubs (the JWKS server in the same manager), reviews through a
// client of its own; the sweeper that drops replaced keys; and, unless
// BindAddress is "0", the listener. The listener is opened here, so a bad
// address fails Add and Addr reports the bound one (port 0 in tests).
func Add(mgr manager.Manager, pubs Publications, opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(reviewConfig(mgr.GetConfig()))
	if err != nil {
		return nil, fmt.Errorf("token API: review client: %w", err)
	}
	lg := mgr.GetLogger().WithName("token")
	s := &Server{handler: newHandler(handlerConfig{
		pubs:          pubs,
		tenants:       mgr.GetCache(),
		secrets:       mgr.GetAPIReader(),
		tokenReviews:  cs.AuthenticationV1().TokenReviews(),
		accessReviews: cs.AuthorizationV1().SubjectAccessReviews(),
		audience:      opts.ReviewAudience,
		limits:        *opts.Limits,
		clock:         clock.RealClock{},
		log:           lg,
	})}
	if err := mgr.Add(&sweeper{keys: s.handler.keys, pubs: pubs}); err != nil {
		return nil, err
	}
	if opts.BindAddress == "0" {
		return s, nil
	}
	if err := s.addHTTPServer(mgr, opts, lg); err != nil {
		return nil, err
	}
	return s, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.BindAddress == "" {
		o.BindAddress = DefaultBindAddress
	}
	if o.ReviewAudience == "" {
		o.ReviewAudience = DefaultReviewAudience
	}
	if o.Limits == nil {
		l := DefaultLimits()
		o.Limits = &l
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return o, errors.New("token API: set both TLSCertFile and TLSKeyFile, or neither")
	}
	return o, nil
}

// reviewConfig is cfg with a rate limiter of its own.
func reviewConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.RateLimiter = nil
	c.QPS, c.Burst = reviewQPS, reviewBurst
	c.UserAgent = strings.TrimSpace(c.UserAgent + " signet-token-api")
	return c
}

// ServeHTTP answers as the listener does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Addr is the address the listener is bound to, nil when BindAddress is "0".
func (s *Server) Addr() net.Addr {
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// addHTTPServer opens the listener and registers the HTTP server with mgr
// as a manager.Server (started with the first runnables, without leader
// election: every replica answers, 503 until its cache has synced).
func (s *Server) addHTTPServer(mgr manager.Manager, opts Options, lg logr.Logger) error {
	ln, watcher, err := listen(opts)
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
	lg.Info("token API listening", "address", ln.Addr().String(), "tls", watcher != nil)
	timeout := shutdownTimeout
	return mgr.Add(&manager.Server{
		Name: "token",
		Server: &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          log.New(logWriter{lg.V(1)}, "", 0),
		},
		Listener:        ln,
		ShutdownTimeout: &timeout,
	})
}

// listen opens opts.BindAddress, with TLS when a certificate is given.
// Plain HTTP is refused unless the bound address is a loopback one:
// tokens are credentials, and so are the bearer tokens presented.
func listen(opts Options) (net.Listener, *certwatcher.CertWatcher, error) {
	var watcher *certwatcher.CertWatcher
	if opts.TLSCertFile != "" {
		var err error
		// certwatcher reads the pair now, so a bad one fails Add.
		if watcher, err = certwatcher.New(opts.TLSCertFile, opts.TLSKeyFile); err != nil {
			return nil, nil, fmt.Errorf("token API: TLS certificate: %w", err)
		}
	}
	if watcher == nil {
		// Refuse an address that is not loopback before binding it at all.
		if err := literalNotLoopback(opts.BindAddress); err != nil {
			return nil, nil, plainHTTPRefused(opts.BindAddress, err)
		}
	}
	ln, err := net.Listen("tcp", opts.BindAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("token API: listen on %s: %w", opts.BindAddress, err)
	}
	if watcher == nil {
		// A host name is checked by what it bound.
		if err := checkLoopback(ln.Addr()); err != nil {
			_ = ln.Close()
			return nil, nil, plainHTTPRefused(opts.BindAddress, err)
		}
		return ln, nil, nil
	}
	return tls.NewListener(ln, &tls.Config{
		GetCertificate: watcher.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
	}), watcher, nil
}

func plainHTTPRefused(addr string, err error) error {
	return fmt.Errorf("token API: refusing plain HTTP on %s: %w; give it a certificate "+
		"(--tls-cert-file, --tls-key-file), bind it to 127.0.0.1 or [::1], or turn it off with --token-bind-address=0",
		addr, err)
}

// literalNotLoopback refuses an address whose host is empty (every
// interface) or an IP that is not loopback; a host name passes, to be
// checked once bound.
func literalNotLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("bind address %q: %w", addr, err)
	case host == "":
		return fmt.Errorf("%s binds every interface, not a loopback address", addr)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", host)
	}
	return nil
}

// checkLoopback accepts only an address bound to a loopback interface.
func checkLoopback(addr net.Addr) error {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", addr)
	}
	return nil
}

// sweeper drops held keys that are no longer Active, once a second.
type sweeper struct {
	keys *keySource
	pubs Publications
}

func (s *sweeper) Start(ctx context.Context) error {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.keys.sweep(s.pubs)
		}
	}
}

// NeedLeaderElection is false: every replica holds keys of its own.
func (*sweeper) NeedLeaderElection() bool { return false }

// logWriter routes net/http's log lines to logr.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
