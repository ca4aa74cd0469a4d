package token

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound how fast callers can make the token API work. Signing is
// the expensive part (an RSA-2048 signature costs about a millisecond of
// CPU), and a review that the cache does not answer costs a round trip to
// the API server; so a bucket per authenticated caller bounds the first,
// and a bucket per client address bounds the reviews of tokens never seen
// before. A bucket per service account namespace stops a tenant that can
// create service accounts from multiplying its share. A rate of 0 turns a
// bucket off.
type Limits struct {
	PerCaller, PerNamespace, ReviewsPerClient                rate.Limit
	PerCallerBurst, PerNamespaceBurst, ReviewsPerClientBurst int
}

// DefaultLimits are generous for workloads (which fetch a token every few
// minutes) and keep a flood from one caller, one namespace or one address
// to a small share of two cores.
func DefaultLimits() Limits {
	return Limits{
		PerCaller: 10, PerCallerBurst: 20,
		PerNamespace: 50, PerNamespaceBurst: 100,
		ReviewsPerClient: 10, ReviewsPerClientBurst: 20,
	}
}

// bucketsSz bounds how many buckets of one kind are kept. An evicted
// bucket comes back full, which is the cost of bounded memory; reaching
// the bound takes that many distinct authenticated callers.
const bucketsSz = 10000

// buckets are token buckets by key.
type buckets struct {
	rate  rate.Limit
	burst int
	all   *lru[string, *rate.Limiter]
}

func newBuckets(r rate.Limit, burst int) *buckets {
	if r <= 0 {
		return nil
	}
	return &buckets{rate: r, burst: max(burst, 1), all: newLRU[string, *rate.Limiter](bucketsSz)}
}

// take takes one token of key's bucket at now. When the bucket is empty it
// takes nothing and says how long until a token is there.
func (b *buckets) take(key string, now time.Time) (time.Duration, bool) {
	if b == nil {
		return 0, true
	}
	l := b.all.getOrAdd(key, func() *rate.Limiter { return rate.NewLimiter(b.rate, b.burst) })
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// tooMany is the 429 for a wait of d.
func tooMany(d time.Duration) *apiError {
	return errTooManyRequests.withRetry(int(math.Ceil(d.Seconds())))
}
