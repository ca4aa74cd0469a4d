package jwks

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The server's metrics, on controller-runtime's registry so the manager's
// metrics endpoint exposes them. Registered once per process: a second
// Server in the same process (tests) shares them.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_jwks_requests_total",
		Help: "Requests to the JWKS server by document route and HTTP status code.",
	}, []string{"route", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "signet_jwks_request_duration_seconds",
		Help: "Time to answer a request to the JWKS server, by document route, from the handler's start to the end of its write.",
		// Answers are in-memory writes: the interesting range is microseconds.
		Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1},
	}, []string{"route"})
	tenantsServed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "signet_jwks_tenants_served",
		Help: "Org/sites whose documents are served (answering 200/304).",
	})
	documentsRebuilt = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_jwks_documents_rebuilt_total",
		Help: "Org/site entries rebuilt and stored because a TenantIdentity or JWKS ConfigMap changed what they serve.",
	})
	syncedGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "signet_jwks_synced",
		Help: "1 once this replica's JWKS server has read its cache and built every document (it answers 503 before), else 0.",
	})
	badDocuments = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_jwks_bad_documents_total",
		Help: "Rebuilds that refused an org/site because a stored key is malformed or not public (the org/site answers 502).",
	})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, tenantsServed, documentsRebuilt, badDocuments, syncedGauge)
}

// statusCodes are every status the handler writes; index = codeIndex.
var statusCodes = [...]int{
	http.StatusOK, http.StatusNotModified, http.StatusBadRequest, http.StatusNotFound,
	http.StatusMethodNotAllowed, http.StatusBadGateway, http.StatusServiceUnavailable,
}

// requestMetrics holds the series resolved once, so a request costs an
// array index and two atomic adds instead of a label lookup (a hash of the
// label values and a map access under a lock in client_golang).
type requestMetrics struct {
	counts    [numRoutes][len(statusCodes)]prometheus.Counter
	durations [numRoutes]prometheus.Observer
}

var reqMetrics = newRequestMetrics()

func newRequestMetrics() *requestMetrics {
	m := &requestMetrics{}
	for r, name := range routeNames {
		for c, code := range statusCodes {
			m.counts[r][c] = requestsTotal.WithLabelValues(name, strconv.Itoa(code))
		}
		m.durations[r] = requestDuration.WithLabelValues(name)
	}
	return m
}

func (m *requestMetrics) observe(rt route, code int, took time.Duration) {
	m.counts[rt][codeIndex(code)].Inc()
	m.durations[rt].Observe(took.Seconds())
}

// codeIndex maps a status to its slot. The handler writes only the codes
// of statusCodes (TestCodeIndex holds it to that).
func codeIndex(code int) int {
	for i, c := range statusCodes {
		if c == code {
			return i
		}
	}
	return len(statusCodes) - 1
}
