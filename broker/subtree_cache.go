package broker

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// matchCache remembers, per topic name, what the tree matched. It is split into
// shards by a hash of the topic name so that goroutines matching different topics
// seldom meet on a lock.
//
// Entries are immutable once stored, so a reader may use one after it let go of
// the shard's lock. Entries are added only under SubTree.mu held for reading and
// dropped by changes that hold it for writing, which keeps every stored entry true
// to the tree.
type matchCache struct {
	seed     maphash.Seed
	mask     uint64 // len(shards)-1
	perShard int    // entries a shard holds at most
	shards   []cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry // topic name to what matched it; guarded by mu
	_       [64]byte              // keeps shards out of each other's cache lines
}

// cacheEntry is what a topic name matched. members and the groups' Members share
// one backing array; nothing in an entry is written after it is built.
type cacheEntry struct {
	members []Member // the non-shared subscriptions, sorted by compareMembers
	groups  []GroupMatch
}

const maxCacheShards = 16

func newMatchCache(size int) *matchCache {
	if size <= 0 {
		return nil
	}
	shards := maxCacheShards
	for shards > 1 && shards*4 > size {
		shards /= 2
	}
	c := &matchCache{
		seed:     maphash.MakeSeed(),
		mask:     uint64(shards - 1),
		perShard: (size + shards - 1) / shards,
		shards:   make([]cacheShard, shards),
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]cacheEntry)
	}
	return c
}

func (c *matchCache) shard(topic string) *cacheShard {
	return &c.shards[maphash.String(c.seed, topic)&c.mask]
}

// get returns the entry for topic. A nil cache has none.
func (c *matchCache) get(topic string) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	s := c.shard(topic)
	s.mu.RLock()
	e, ok := s.entries[topic]
	s.mu.RUnlock()
	return e, ok
}

// put stores e for topic, evicting an arbitrary entry of a full shard. Call with
// SubTree.mu held for reading.
func (c *matchCache) put(topic string, e cacheEntry) {
	s := c.shard(topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[topic]; ok {
		return // another goroutine got here first with the same answer
	}
	if len(s.entries) >= c.perShard {
		for k := range s.entries { // map iteration begins at a random place
			delete(s.entries, k)
			break
		}
	}
	s.entries[strings.Clone(topic)] = e
}

// invalidate drops the entries of the topic names that filter matches; filter is
// not in the shared form. A nil cache does nothing. Call with SubTree.mu held for
// writing.
func (c *matchCache) invalidate(filter string) {
	if c == nil {
		return
	}
	if !mqtt.HasWildcard(filter) {
		// Only the topic name equal to the filter matches it.
		s := c.shard(filter)
		s.mu.Lock()
		delete(s.entries, filter)
		s.mu.Unlock()
		return
	}
	// Every topic that matches begins with the levels before the first wildcard
	// and ends with the levels after the last one, cheap tests that spare most
	// topics the full match.
	prefix, suffix := "", filter[strings.LastIndexAny(filter, "+#")+1:]
	if i := strings.IndexAny(filter, "+#"); i > 0 {
		prefix = filter[:i-1]
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for topic := range s.entries {
			if strings.HasPrefix(topic, prefix) && strings.HasSuffix(topic, suffix) && mqtt.Match(filter, topic) {
				delete(s.entries, topic)
			}
		}
		s.mu.Unlock()
	}
}

// len returns how many topic names the cache holds.
func (c *matchCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
