package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
	"github.com/signet-dev/signet/internal/rotation"
)

// Metrics are aggregated over tenants: one series per state or event, not
// per TenantIdentity, so 10,000 tenants cost no more series than one.
var (
	keysByState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "signet_keys",
		Help: "Keys stored or published, by state, over all TenantIdentities.",
	}, []string{"state"})
	keyEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_key_events_total",
		Help: "Key lifecycle events by reason (KeyActivated counts rotations, KeyRevoked revocations).",
	}, []string{"reason"})
	rotations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_rotations_total",
		Help: "Keys activated to replace another key.",
	})
	revocations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "signet_revocations_total",
		Help: "Keys revoked.",
	})
)

func init() {
	metrics.Registry.MustRegister(keysByState, keyEvents, rotations, revocations)
}

// keyCounts remembers each tenant's keys by state, so the gauges are sums
// kept up to date by difference.
var keyCounts = struct {
	sync.Mutex
	byTenant map[types.NamespacedName]map[string]int
}{byTenant: map[types.NamespacedName]map[string]int{}}

func recordMetrics(ti *identityv1alpha1.TenantIdentity, plan rotation.Plan) {
	counts := map[string]int{}
	for _, k := range plan.Keys {
		counts[string(k.State)]++
	}
	counts[string(rotation.Retired)] += len(plan.Orphans)
	setKeyCounts(types.NamespacedName{Namespace: ti.Namespace, Name: ti.Name}, counts)
	for _, e := range plan.Events {
		keyEvents.WithLabelValues(e.Reason).Inc()
		switch e.Reason {
		case rotation.ReasonKeyActivated:
			rotations.Inc()
		case rotation.ReasonKeyRevoked:
			revocations.Inc()
		}
	}
}

// setKeyCounts replaces a tenant's counts (nil forgets the tenant) and
// moves the gauges by the difference.
func setKeyCounts(tenant types.NamespacedName, counts map[string]int) {
	keyCounts.Lock()
	defer keyCounts.Unlock()
	for s, n := range keyCounts.byTenant[tenant] {
		keysByState.WithLabelValues(s).Sub(float64(n))
	}
	if counts == nil {
		delete(keyCounts.byTenant, tenant)
		return
	}
	keyCounts.byTenant[tenant] = counts
	for s, n := range counts {
		keysByState.WithLabelValues(s).Add(float64(n))
	}
}
