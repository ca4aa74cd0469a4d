package apiclock

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func TestObserve(t *testing.T) {
	ms := time.Millisecond
	type obs struct {
		date          time.Time
		sent, receive time.Duration // after the local clock's t0
	}
	cases := []struct {
		name string
		obs  []obs
		want time.Duration // offset
		tol  time.Duration
	}{
		{"nothing observed: the local clock", nil, 0, 0},
		{"server 10 minutes ahead", []obs{{t0.Add(10 * time.Minute), 0, 10 * ms}}, 10*time.Minute + 495*ms, 0},
		{"server 10 minutes behind", []obs{{t0.Add(-10 * time.Minute), 0, 10 * ms}}, -10*time.Minute + 495*ms, 0},
		{
			// The API server runs exactly an hour ahead; its second turns
			// over at local 1s. Responses on both sides of that instant
			// narrow the estimate to a few milliseconds.
			name: "observations narrow the interval",
			obs: []obs{
				{t0.Add(time.Hour), 0, 10 * ms},                         // offset in [1h-10ms, 1h+1s]
				{t0.Add(time.Hour), 990 * ms, 995 * ms},                 // offset in [1h-995ms, 1h+10ms]
				{t0.Add(time.Hour + time.Second), 1000 * ms, 1005 * ms}, // offset in [1h-5ms, 1h+1s]
			},
			want: time.Hour + 2500*time.Microsecond, tol: 0,
		},
		{
			name: "a clock step starts over",
			obs: []obs{
				{t0.Add(time.Hour), 0, 10 * ms},
				{t0.Add(2 * time.Hour), 100 * ms, 110 * ms},
			},
			want: 2*time.Hour + 395*ms,
		},
		{"a response received before it was sent is ignored", []obs{{t0.Add(time.Hour), 10 * ms, 0}}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local := clocktesting.NewFakePassiveClock(t0)
			c := New(local)
			for _, o := range tc.obs {
				c.Observe(o.date, t0.Add(o.sent), t0.Add(o.receive))
			}
			if got := c.Offset(); got < tc.want-tc.tol || got > tc.want+tc.tol {
				t.Fatalf("offset %s, want %s", got, tc.want)
			}
			if got, want := c.Now(), t0.Add(c.Offset()); !got.Equal(want) {
				t.Fatalf("Now %s, want local + offset %s", got, want)
			}
		})
	}
}

// A replica whose clock runs an hour ahead of the API server's reads the
// API server's time once it has talked to it.
func TestTransportReadsTheServersDate(t *testing.T) {
	local := clocktesting.NewFakePassiveClock(t0.Add(time.Hour)) // this replica runs an hour ahead
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", t0.Format(http.TimeFormat)) // the API server's clock
	}))
	defer server.Close()
	c := New(local)
	if got := c.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("before any response Now = %s, want the local clock", got)
	}
	client := &http.Client{Transport: c.Transport(http.DefaultTransport)}
	resp, err := client.Get(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	// The fake local clock did not move during the request: the server's
	// second is [t0, t0+1s), so the estimate is t0+500ms.
	if got, want := c.Now(), t0.Add(500*time.Millisecond); !got.Equal(want) {
		t.Fatalf("Now = %s, want the API server's time %s", got, want)
	}
}
