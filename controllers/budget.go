package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/signet-dev/signet/internal/keys"
)

// keyBudget bounds how fast each TenantIdentity may have keys made: a
// tenant can ask for keys as fast as it likes (a second-scale period,
// triggers in a loop), an RSA-4096 key costs seconds of CPU, and the
// reconcile workers are shared by every tenant. Each tenant has a bucket
// of generation time: a key takes its algorithm's cost from it, time
// refills it at budgetRefill seconds a second, up to budgetBurst. When the
// bucket cannot pay, the reconcile changes nothing and comes back when it
// can. Costs are fixed estimates (at least the measured cost on a slow
// core), not measurements, so that the bound is the same on every machine
// and the tests can drive it with a fake clock.
type keyBudget struct {
	mu      sync.Mutex
	buckets map[types.NamespacedName]bucket
}

type bucket struct {
	level time.Duration // generation time available at `at`
	at    time.Time
}

const (
	// budgetBurst is the generation time a tenant may spend at once: twenty
	// EC keys, or one RSA-4096 key and a few more.
	budgetBurst = 10 * time.Second
	// budgetRefill is how much generation time a second of waiting earns:
	// a quarter of a core per tenant at most, sustained.
	budgetRefill = 250 * time.Millisecond
)

// keyCost is the generation time charged for one key.
func keyCost(alg string, rsaBits int) time.Duration {
	if !keys.IsRSA(alg) {
		return 500 * time.Millisecond // EC and Ed25519: microseconds, but each key is also several writes
	}
	switch {
	case rsaBits >= 4096:
		return 8 * time.Second
	case rsaBits >= 3072:
		return 3 * time.Second
	}
	return time.Second
}

// take charges cost to tenant's bucket at now. When the bucket cannot pay
// it charges nothing and says when it can.
func (b *keyBudget) take(tenant types.NamespacedName, cost time.Duration, now time.Time) (ok bool, retryAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets == nil {
		b.buckets = map[types.NamespacedName]bucket{}
	}
	bk, seen := b.buckets[tenant]
	if !seen {
		bk = bucket{level: budgetBurst, at: now}
	}
	if elapsed := now.Sub(bk.at); elapsed > 0 {
		bk.level = min(budgetBurst, bk.level+time.Duration(float64(elapsed)*float64(budgetRefill)/float64(time.Second)))
		bk.at = now
	}
	need := min(cost, budgetBurst) // a key costlier than the burst is paid with a full bucket
	if bk.level < need {
		wait := time.Duration(float64(need-bk.level) * float64(time.Second) / float64(budgetRefill))
		b.buckets[tenant] = bk
		return false, now.Add(wait)
	}
	bk.level -= need
	b.buckets[tenant] = bk
	return true, time.Time{}
}

// forget drops a deleted tenant's bucket.
func (b *keyBudget) forget(tenant types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.buckets, tenant)
}
