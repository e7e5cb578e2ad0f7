package places

import (
	"container/list"
	"sync"
	"time"
)

// answer is a Nearby Search body with its status, as a Guard keeps it.
type answer struct {
	body   []byte
	status string
}

// cache keeps answers for a fixed time and drops the least recently used
// one when full. A nil *cache keeps nothing.
type cache struct {
	ttl  time.Duration
	size int

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recently used first
	entries map[string]*list.Element
}

type cacheEntry struct {
	key     string
	answer  answer
	expires time.Time
}

// newCache returns a cache of at most size answers kept for ttl, or nil
// when ttl is not positive.
func newCache(ttl time.Duration, size int) *cache {
	if ttl <= 0 {
		return nil
	}
	return &cache{ttl: ttl, size: max(size, 1), lru: list.New(), entries: map[string]*list.Element{}}
}

// get returns the answer stored under key if it has not expired by now.
func (c *cache) get(key string, now time.Time) (answer, bool) {
	if c == nil {
		return answer{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return answer{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return answer{}, false
	}
	c.lru.MoveToFront(el)
	return e.answer, true
}

// put stores a under key until now plus the cache's TTL.
func (c *cache) put(key string, a answer, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		e.answer, e.expires = a, now.Add(c.ttl)
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, answer: a, expires: now.Add(c.ttl)})
	if c.lru.Len() > c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}
