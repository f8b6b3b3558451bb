package session

// Store is the durable key-value store under persistent sessions. Package store
// implements it on BuntDB; MemStore is its in-memory twin for tests.
//
// Writes are asynchronous and applied in the order they are made: Set and Delete
// queue a change and return at once; the store applies queued changes in batches
// (group commit). Barrier is how a caller learns that what it wrote is durable,
// as far as the store's fsync policy promises: the broker sends an
// acknowledgement only from a Barrier's callback.
//
// Set, Delete and Barrier may be called from any goroutine; they must not block
// for long (a bounded queue may push back on a writer that outruns the disk).
// Scan is called at start-up, before any write.
type Store interface {
	// Set queues key to be set to value. The store owns value from now on.
	Set(key string, value []byte)
	// Delete queues key to be removed; removing a missing key is not an error.
	Delete(key string)
	// Barrier calls fn, from the store's goroutine, once every change queued
	// before it is applied and synced as the policy says; err is the first
	// failure to apply or sync those changes, if any. fn must not block.
	Barrier(fn func(err error))
	// Scan calls fn for every key with the given prefix, in key order, with the
	// stored value; fn must not keep value. It stops at fn's first error and
	// returns it.
	Scan(prefix string, fn func(key string, value []byte) error) error
}
