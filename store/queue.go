package store

import "sync"

// op is what an entry of the queue asks for.
type op uint8

const (
	opSet op = iota + 1
	opDelete
	opBarrier
)

// entry is one change or barrier waiting for the writer.
type entry struct {
	op  op
	key string      // opSet, opDelete
	val string      // opSet
	fn  func(error) // opBarrier
}

// queue is the bounded FIFO between the goroutines that call Set, Delete and
// Barrier and the one writer goroutine. A producer that finds it full waits on
// notFull until the writer takes a batch (backpressure: a writer that outruns
// the disk is slowed down to its pace, never allowed to grow memory without
// bound). The writer waits on notEmpty.
type queue struct {
	mu       sync.Mutex
	notEmpty sync.Cond // the writer waits here for the first entry
	notFull  sync.Cond // producers wait here for room
	items    []entry   // items[head:] are pending, oldest first; guarded by mu
	head     int       // guarded by mu
	limit    int       // the most pending entries; read-only
	closed   bool      // no more entries accepted; guarded by mu
	blocked  int64     // pushes that had to wait for room; guarded by mu
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit}
	q.notEmpty.L = &q.mu
	q.notFull.L = &q.mu
	return q
}

// push appends e, waiting while the queue is full. It reports false, without
// appending, once the queue is closed.
func (q *queue) push(e entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed && len(q.items)-q.head >= q.limit {
		q.blocked++
		for !q.closed && len(q.items)-q.head >= q.limit {
			q.notFull.Wait()
		}
	}
	if q.closed {
		return false
	}
	if len(q.items) == cap(q.items) && q.head > 0 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, e)
	if len(q.items)-q.head == 1 {
		q.notEmpty.Signal() // only the writer waits, and only on an empty queue
	}
	return true
}

// take appends to dst the oldest pending entries holding at most maxChanges
// Sets and Deletes, with the barriers among and right after them, and removes
// them from the queue. With wait set it first waits for an entry or for the
// queue to close. done reports that the queue is closed and nothing is left.
func (q *queue) take(dst []entry, maxChanges int, wait bool) (batch []entry, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for wait && !q.closed && q.head == len(q.items) {
		q.notEmpty.Wait()
	}
	end, changes := q.head, 0
	for ; end < len(q.items); end++ {
		if q.items[end].op != opBarrier {
			if changes == maxChanges {
				break
			}
			changes++
		}
	}
	if end > q.head {
		dst = append(dst, q.items[q.head:end]...)
		clear(q.items[q.head:end])
		q.head = end
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0
		}
		q.notFull.Broadcast()
	}
	return dst, q.closed && q.head == len(q.items)
}

// close makes push refuse entries from now on and wakes everyone waiting.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
}

// stats returns how many entries are pending and how many pushes have blocked.
func (q *queue) stats() (pending int, blocked int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.blocked
}
