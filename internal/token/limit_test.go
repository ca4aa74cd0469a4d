package token

import (
	"strconv"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBuckets(2, 3) // 2 per second, bursts of 3
	for i := range 3 {
		if _, ok := b.take("alice", now); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	d, ok := b.take("alice", now)
	if ok || d != 500*time.Millisecond {
		t.Fatalf("4th request: ok %v, wait %s; want a refusal and a 500ms wait", ok, d)
	}
	// A refusal takes nothing: after the wait one request passes.
	if _, ok := b.take("alice", now.Add(500*time.Millisecond)); !ok {
		t.Error("refused after waiting as told")
	}
	// Callers have buckets of their own.
	if _, ok := b.take("bob", now); !ok {
		t.Error("bob refused for alice's requests")
	}
	// Retry-After is whole seconds, at least one.
	if e := tooMany(d); e.retryAfter != 1 || e.code != 429 {
		t.Errorf("429 for a 500ms wait: %+v", e)
	}
	if e := tooMany(2500 * time.Millisecond); e.retryAfter != 3 {
		t.Errorf("Retry-After for 2.5s: %d", e.retryAfter)
	}
}

func TestBucketsOffAndBounded(t *testing.T) {
	off := newBuckets(0, 10)
	for range 1000 {
		if _, ok := off.take("x", time.Unix(0, 0)); !ok {
			t.Fatal("a rate of 0 limits")
		}
	}
	b := newBuckets(1, 1)
	for i := range bucketsSz + 100 {
		b.take(strconv.Itoa(i), time.Unix(0, 0))
	}
	if n := b.all.len(); n != bucketsSz {
		t.Errorf("%d buckets for %d callers, want the bound %d", n, bucketsSz+100, bucketsSz)
	}
}
