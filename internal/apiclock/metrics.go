package apiclock

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var offset = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "signet_apiserver_clock_offset_seconds",
	Help: "The API server's clock minus this replica's, as estimated from the Date headers of its responses; signet keeps time by the API server's.",
})

func init() { metrics.Registry.MustRegister(offset) }
