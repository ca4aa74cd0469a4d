package token

import (
	"container/list"
	"sync"
	"time"
)

// lru is a size-bounded map whose entries may expire. Reaching its
// capacity evicts the least recently used entry, so a flood of distinct
// keys (tokens, callers) costs a bounded amount of memory. Safe for
// concurrent use.
type lru[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int
	order    *list.List // front: most recently used; elements hold *lruEntry
	entries  map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key     K
	value   V
	expires time.Time // zero: never
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{capacity: max(capacity, 1), order: list.New(), entries: make(map[K]*list.Element)}
}

// get returns the value of key unless it is absent or expired at now.
func (c *lru[K, V]) get(key K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.entries[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if !e.expires.IsZero() && !now.Before(e.expires) {
		c.remove(el)
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

// add stores value under key until expires (zero: until evicted).
func (c *lru[K, V]) add(key K, value V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*lruEntry[K, V])
		e.value, e.expires = value, expires
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&lruEntry[K, V]{key: key, value: value, expires: expires})
	for c.order.Len() > c.capacity {
		c.remove(c.order.Back())
	}
}

// getOrAdd returns the value of key, storing newValue() first when there
// is none. For entries that never expire (add with a zero time).
func (c *lru[K, V]) getOrAdd(key K, newValue func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruEntry[K, V]).value
	}
	v := newValue()
	c.entries[key] = c.order.PushFront(&lruEntry[K, V]{key: key, value: v})
	for c.order.Len() > c.capacity {
		c.remove(c.order.Back())
	}
	return v
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *lru[K, V]) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.entries, el.Value.(*lruEntry[K, V]).key)
}
