// Command manager runs signet: the TenantIdentity controller and the JWKS
// server, in one process, each switchable by flag.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/signet-dev/signet/internal/token"
)

// options are the manager's flags; docs/design.md lists their names and defaults.
type options struct {
	kubeconfig       string
	metricsAddr      string
	metricsSecure    bool
	metricsCertPath  string
	metricsCertName  string
	metricsCertKey   string
	probeAddr        string
	leaderElect      bool
	jwksAddr         string
	publicBaseURL    string
	tlsCertFile      string
	tlsKeyFile       string
	maxCacheAge      time.Duration
	orgBinding       string
	controllers      bool
	jwksServer       bool
	watchNamespace   string
	leaderElectionID string

	kubeAPIQPS              float64
	kubeAPIBurst            int
	maxConcurrentReconciles int
	tenantSelector          string
	systemNamespace         string
	signingPropagation      time.Duration
	tokenAddr               string
	tokenAudience           string
	pprofAddr               string
}

func parseFlags(args []string) (options, *zap.Options, error) {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to a kubeconfig; in-cluster or $KUBECONFIG when empty.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 turns it off.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, to bearer tokens allowed GET /metrics (TokenReview, SubjectAccessReview); false: plain HTTP.")
	fs.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "Directory of the metrics server's certificate; a self-signed one when empty.")
	fs.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "Certificate file in --metrics-cert-path.")
	fs.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "Private key file in --metrics-cert-path.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; 0 turns it off.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader for the controllers (the JWKS server runs in every replica).")
	fs.StringVar(&o.jwksAddr, "jwks-bind-address", ":8443", "Address of the JWKS server; 0 turns it off.")
	fs.StringVar(&o.publicBaseURL, "public-base-url", "https://signet-jwks.signet-system.svc", "Base URL verifiers reach the JWKS server at; default issuers start with it.")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "PEM certificate for the JWKS server; with --tls-key-file it serves TLS, reloaded on change.")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", "", "PEM private key for --tls-cert-file.")
	fs.DurationVar(&o.maxCacheAge, "max-cache-age", 5*time.Minute, "Upper bound of the documents' Cache-Control max-age.")
	fs.StringVar(&o.orgBinding, "org-binding", orgBindingLabel, "How a namespace is bound to an org: namespace-label or none.")
	fs.BoolVar(&o.controllers, "controllers", true, "Run the TenantIdentity controller.")
	fs.BoolVar(&o.jwksServer, "jwks-server", true, "Run the JWKS server.")
	fs.StringVar(&o.watchNamespace, "watch-namespace", "", "Only watch this namespace; all when empty.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "signet.identity.signet.dev", "Name of the leader election lease.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 500, "Requests per second the manager may send the API server (client-side rate limit).")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 1000, "Requests the manager may send the API server in a burst above --kube-api-qps.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 8, "TenantIdentities reconciled at once, so one tenant's churn cannot hold the others back.")
	fs.StringVar(&o.tenantSelector, "tenant-selector", "", "Label selector: this instance's controller reconciles only the TenantIdentities it matches (shards); every server still serves all.")
	fs.StringVar(&o.systemNamespace, "system-namespace", defaultSystemNamespace(), "signet's own namespace, where it records who owns each org/site ($POD_NAMESPACE when set).")
	fs.DurationVar(&o.signingPropagation, "signing-secret-propagation", 2*time.Minute,
		"How long a workload that mounts <name>-signing-key may go on signing with a replaced key (kubelet's sync period plus its cache TTL); a replaced key's overlap counts from then.")
	fs.StringVar(&o.tokenAddr, "token-bind-address", token.DefaultBindAddress, "Address of the token API (replicas running the controllers and the JWKS server); 0 turns it off. Plain HTTP only on a loopback address.")
	fs.StringVar(&o.tokenAudience, "token-review-audience", token.DefaultReviewAudience, "Audience a caller's service account token must have for the token API.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints, for profiling; 0 (the default) turns them off. Bind it to loopback only.")
	zapOpts := &zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, nil, err
	}
	return o, zapOpts, o.validate()
}

const (
	orgBindingLabel = "namespace-label"
	orgBindingNone  = "none"
)

func (o options) validate() error {
	if o.orgBinding != orgBindingLabel && o.orgBinding != orgBindingNone {
		return fmt.Errorf("--org-binding=%q: want %q or %q", o.orgBinding, orgBindingLabel, orgBindingNone)
	}
	if (o.tlsCertFile == "") != (o.tlsKeyFile == "") {
		return fmt.Errorf("--tls-cert-file and --tls-key-file go together")
	}
	if o.maxCacheAge < 0 {
		return fmt.Errorf("--max-cache-age must not be negative")
	}
	if o.tokenAudience == "" {
		return fmt.Errorf("--token-review-audience must not be empty")
	}
	if !o.controllers && !o.jwksServer {
		return fmt.Errorf("--controllers=false and --jwks-server=false leave nothing to run")
	}
	if o.kubeAPIQPS <= 0 || o.kubeAPIBurst <= 0 || o.maxConcurrentReconciles <= 0 {
		return fmt.Errorf("--kube-api-qps, --kube-api-burst and --max-concurrent-reconciles must be positive")
	}
	if _, err := labels.Parse(o.tenantSelector); err != nil {
		return fmt.Errorf("--tenant-selector=%q: %w", o.tenantSelector, err)
	}
	if o.systemNamespace == "" {
		return fmt.Errorf("--system-namespace must name signet's own namespace")
	}
	if o.signingPropagation < 0 {
		return fmt.Errorf("--signing-secret-propagation must not be negative")
	}
	return nil
}

// defaultSystemNamespace is the namespace the manager runs in, as the
// downward API tells it, else signet-system.
func defaultSystemNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "signet-system"
}

// The manager's GOGC unless the environment sets one. Most of its heap is
// long-lived cache, which Go's default (100: the heap may grow to twice
// what is live before a collection) would keep resident twice over. A
// lower value costs CPU in proportion to what is allocated: when the
// caches fill at start and in bursts of changes, and, in a replica that
// serves, per request (the handler allocates nothing, net/http does). A
// server-only replica's heap is cache and pre-built documents, so it goes
// lower; under a flood of requests that costs it some throughput (at 10,
// 5 to 15 % fewer requests a second than at 25, measured with
// hack/loadtest). Set GOGC to trade memory back for CPU. Measured at
// 10,000 tenants in docs/performance.md ("Scale").
const (
	gcPercent           = 25
	gcPercentServerOnly = 10
)

func main() {
	o, zapOpts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(map[bool]int{true: gcPercent, false: gcPercentServerOnly}[o.controllers])
	}
	zapOpts.Level = capVerbosity(zapOpts.Level)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zapOpts)))
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := newManager(ctx, cfg, o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// maxVerbosity is the most verbose log level the manager allows. client-go
// logs request and response bodies, Secrets' data included, from V(8) on
// through the contextual logger: a debugging flag must never leak a key.
const maxVerbosity = 5

// capVerbosity lets through what the flags enable, down to maxVerbosity.
func capVerbosity(enabled zapcore.LevelEnabler) zapcore.LevelEnabler {
	if enabled == nil {
		enabled = zapcore.InfoLevel
	}
	return uberzap.LevelEnablerFunc(func(l zapcore.Level) bool {
		return l >= -maxVerbosity && enabled.Enabled(l)
	})
}
