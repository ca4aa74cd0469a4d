package controllers

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/signet-dev/signet/api/v1alpha1"
)

// Metrics are aggregated over tenants: one series per state or reason, not
// per TenantIdentity, so 10,000 tenants cost no more series than one.
var (
	keyEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_key_events_total",
		Help: "Key lifecycle events by reason (KeyActivated counts rotations, KeyRevoked revocations).",
	}, []string{"reason"})
	reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_reconcile_errors_total",
		Help: "Reconciles that could not carry out their plan, by reason (ApplyFailed: a write the API server refused).",
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(keyEvents, reconcileErrors, tenants)
}

// tenants keeps, per TenantIdentity, what the gauges count: its keys by
// state, whether it is Ready, and when its rotation is due. The gauges are
// computed at scrape time, so a rotation that stalls (a controller stuck,
// a key that never activates) shows as overdue even when no reconcile
// runs any more.
var tenants = &tenantCollector{
	byTenant: map[types.NamespacedName]tenantState{},
	keys:     prometheus.NewDesc("signet_keys", "Keys stored or published, by state, over all TenantIdentities.", []string{"state"}, nil),
	notReady: prometheus.NewDesc("signet_tenants_not_ready", "TenantIdentities whose Ready condition is False.", nil, nil),
	overdue: prometheus.NewDesc("signet_tenants_rotation_overdue",
		"TenantIdentities, not suspended, whose Active key is past its scheduled rotation by more than its prePublish.", nil, nil),
	now: time.Now,
}

type tenantState struct {
	keys     [3]int32 // by keyStates
	notReady bool
	// overdueAt is when the Active key's rotation is overdue: its
	// scheduled rotation plus prePublish; zero when suspended or unknown.
	overdueAt time.Time
}

// keyStates are the states signet_keys counts, in tenantState.keys order.
var keyStates = []identityv1alpha1.KeyState{identityv1alpha1.KeyStateActive, identityv1alpha1.KeyStateNext, identityv1alpha1.KeyStateRetired}

type tenantCollector struct {
	mu                      sync.Mutex
	byTenant                map[types.NamespacedName]tenantState
	keys, notReady, overdue *prometheus.Desc
	now                     func() time.Time
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.notReady
	ch <- c.overdue
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var byState [3]int
	notReady, overdue := 0, 0
	for _, st := range c.byTenant {
		for i, n := range st.keys {
			byState[i] += int(n)
		}
		if st.notReady {
			notReady++
		}
		if !st.overdueAt.IsZero() && now.After(st.overdueAt) {
			overdue++
		}
	}
	for i, n := range byState {
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(n), string(keyStates[i]))
	}
	ch <- prometheus.MustNewConstMetric(c.notReady, prometheus.GaugeValue, float64(notReady))
	ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, float64(overdue))
}

// observeTenant records ti's state as st describes it.
func (r *TenantIdentityReconciler) observeTenant(ti *identityv1alpha1.TenantIdentity, st identityv1alpha1.TenantIdentityStatus) {
	var s tenantState
	for _, k := range st.Keys {
		if i := slices.Index(keyStates, k.State); i >= 0 {
			s.keys[i]++
		}
	}
	s.notReady = meta.IsStatusConditionFalse(st.Conditions, identityv1alpha1.ConditionReady)
	if policy, err := policyFromSpec(ti.Spec, 0); err == nil && !ti.Spec.Suspend {
		for _, k := range st.Keys {
			if k.State == identityv1alpha1.KeyStateActive && k.RetiresAt != nil {
				s.overdueAt = k.RetiresAt.Add(policy.PrePublish)
			}
		}
	}
	tenants.mu.Lock()
	defer tenants.mu.Unlock()
	tenants.byTenant[types.NamespacedName{Namespace: ti.Namespace, Name: ti.Name}] = s
}

// forgetTenant drops a deleted TenantIdentity from the gauges.
func forgetTenant(tenant types.NamespacedName) {
	tenants.mu.Lock()
	defer tenants.mu.Unlock()
	delete(tenants.byTenant, tenant)
}
