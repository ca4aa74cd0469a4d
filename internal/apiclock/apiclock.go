// Package apiclock keeps time by the Kubernetes API server's clock, as the
// Date headers of its responses tell it.
//
// Key records are written by one replica and acted on by the next leader.
// Measured on each replica's own clock, a leader whose clock runs ahead
// would activate a key before its pre-publication ends and remove one
// before its overlap ends; one that runs behind would record times too
// early, with the same effect for its successor. Every replica talks to the
// same API server, whose clock no replica owns, so signet reads time off
// it: records and decisions share one time base, whatever the replicas'
// clocks say.
//
// The tolerance: a Date header has whole seconds and was stamped at some
// instant between sending the request and receiving the response, so one
// response bounds the offset to an interval one second plus a round trip
// wide. Clock keeps the intersection of the intervals it has seen and
// answers its middle: within half a second plus half a round trip of the
// API server's clock (starting over when the intervals stop overlapping,
// as after a clock step). Until the first response it reads the local
// clock.
package apiclock

import (
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Clock is a clock.PassiveClock that reads the API server's time.
type Clock struct {
	local clock.PassiveClock

	mu     sync.Mutex
	known  bool
	lo, hi time.Duration // server time - local time is within [lo, hi]
}

var _ clock.PassiveClock = (*Clock)(nil)

// New returns a Clock that reads local until it has observed a response.
func New(local clock.PassiveClock) *Clock { return &Clock{local: local} }

// Now is the API server's time as best known.
func (c *Clock) Now() time.Time { return c.local.Now().Add(c.Offset()) }

// Since is Now().Sub(t).
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Offset is the API server's clock minus the local one (0 until known):
// the middle of the interval the observations allow.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known {
		return 0
	}
	return c.lo + (c.hi-c.lo)/2
}

// Observe takes one response of the API server: its Date header and the
// local times the request was sent and the response received.
func (c *Clock) Observe(date, sent, received time.Time) {
	if date.IsZero() || received.Before(sent) {
		return
	}
	// The server stamped Date (rounded down to the second) at some local
	// instant in [sent, received].
	lo, hi := date.Sub(received), date.Add(time.Second).Sub(sent)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known || lo > c.hi || hi < c.lo {
		c.known, c.lo, c.hi = true, lo, hi // first, or a clock stepped: start over
	} else {
		c.lo, c.hi = max(c.lo, lo), min(c.hi, hi)
	}
	offset.Set((c.lo + (c.hi-c.lo)/2).Seconds())
}

// Transport wraps a round tripper so that every response feeds Observe.
// Use it as rest.Config.Wrap(c.Transport).
func (c *Clock) Transport(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{c: c, next: rt}
}

type roundTripper struct {
	c    *Clock
	next http.RoundTripper
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := t.c.local.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			t.c.Observe(date, sent, t.c.local.Now())
		}
	}
	return resp, err
}
