package token

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// requestsTotal counts answers by status code, on controller-runtime's
// registry (the manager's metrics endpoint). It carries no caller, kid or
// token: only the code.
var requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "signet_token_requests_total",
	Help: "Requests to the token API by HTTP status code.",
}, []string{"code"})

func init() { metrics.Registry.MustRegister(requestsTotal) }
