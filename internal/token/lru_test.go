package token

import (
	"strconv"
	"testing"
	"time"
)

func TestLRUBoundsAndEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newLRU[string, int](3)
	c.add("a", 1, time.Time{})
	c.add("b", 2, time.Time{})
	c.add("c", 3, time.Time{})
	if _, ok := c.get("a", now); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.add("d", 4, time.Time{}) // evicts b
	if _, ok := c.get("b", now); ok {
		t.Error("b kept beyond the capacity, though least recently used")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k, now); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	for i := range 10000 {
		c.add(strconv.Itoa(i), i, time.Time{})
	}
	if n := c.len(); n != 3 {
		t.Errorf("%d entries after 10,000 adds, want the capacity 3", n)
	}
}

func TestLRUExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newLRU[string, int](10)
	c.add("k", 1, now.Add(time.Second))
	if v, ok := c.get("k", now.Add(999*time.Millisecond)); !ok || v != 1 {
		t.Errorf("before expiry: %d, %v", v, ok)
	}
	if _, ok := c.get("k", now.Add(time.Second)); ok {
		t.Error("served at its expiry time")
	}
	if n := c.len(); n != 0 {
		t.Errorf("expired entry kept: %d entries", n)
	}
	c.add("k", 2, now.Add(time.Second))
	c.add("k", 3, now.Add(time.Hour)) // replaced, with a new expiry
	if v, ok := c.get("k", now.Add(time.Minute)); !ok || v != 3 {
		t.Errorf("replaced: %d, %v", v, ok)
	}
}

func TestLRUGetOrAdd(t *testing.T) {
	c := newLRU[string, *int](2)
	made := 0
	mk := func() *int { made++; v := made; return &v }
	a := c.getOrAdd("a", mk)
	if again := c.getOrAdd("a", mk); again != a || made != 1 {
		t.Errorf("getOrAdd made a second value: %d made", made)
	}
	c.getOrAdd("b", mk)
	c.getOrAdd("c", mk) // evicts a
	if c.getOrAdd("a", mk) == a {
		t.Error("a survived eviction")
	}
}
