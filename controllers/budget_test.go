package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestKeyBudget(t *testing.T) {
	a := types.NamespacedName{Namespace: "ns", Name: "a"}
	b := types.NamespacedName{Namespace: "ns", Name: "b"}
	ec, rsa4096 := keyCost("ES256", 0), keyCost("RS256", 4096)
	type take struct {
		tenant types.NamespacedName
		at     time.Duration
		cost   time.Duration
		ok     bool
		retry  time.Duration // when not ok
	}
	cases := []struct {
		name  string
		takes []take
	}{
		{"a burst of twenty EC keys, then one per two seconds", func() []take {
			var ts []take
			for range 20 {
				ts = append(ts, take{a, 0, ec, true, 0})
			}
			return append(ts, take{a, 0, ec, false, 2 * time.Second}, take{a, 2 * time.Second, ec, true, 0}, take{a, 2 * time.Second, ec, false, 4 * time.Second})
		}()},
		// 2 s are left of the burst; 6 s more take 24 s to earn; then one every 32 s.
		{"an RSA-4096 key, then the next one waits 24 s, the one after 32 s", []take{
			{a, 0, rsa4096, true, 0}, {a, 0, rsa4096, false, 24 * time.Second}, {a, 24 * time.Second, rsa4096, true, 0},
			{a, 24 * time.Second, rsa4096, false, 56 * time.Second},
		}},
		{"one tenant's churn leaves another's budget alone", []take{
			{a, 0, rsa4096, true, 0}, {a, 0, rsa4096, false, 24 * time.Second}, {b, 0, rsa4096, true, 0},
		}},
		{"a long wait refills no more than the burst", []take{
			{a, 0, ec, true, 0}, {a, time.Hour, budgetBurst, true, 0}, {a, time.Hour, ec, false, time.Hour + 2*time.Second},
		}},
	}
	t0 := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var kb keyBudget
			for i, tk := range tc.takes {
				ok, retry := kb.take(tk.tenant, tk.cost, t0.Add(tk.at))
				if ok != tk.ok || (!ok && !retry.Equal(t0.Add(tk.retry))) {
					t.Fatalf("take %d at +%s: ok=%v retry=+%s, want ok=%v retry=+%s", i, tk.at, ok, retry.Sub(t0), tk.ok, tk.retry)
				}
			}
		})
	}
}
