package session

import "sync/atomic"

// Budget bounds the payload bytes that all sessions sharing it hold in their
// queues and inflight windows together, so that slow and offline clients cannot
// exhaust the broker's memory however many there are. A nil *Budget is
// unlimited. It is safe for concurrent use.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes; max <= 0 returns nil, no limit.
func NewBudget(max int64) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max}
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// take reserves n bytes, or reports false when they do not fit.
func (b *Budget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

// force reserves n bytes even beyond the limit: for what is loaded from a store.
func (b *Budget) force(n int64) {
	if b != nil {
		b.used.Add(n)
	}
}

// give releases n bytes.
func (b *Budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

// cost is what a delivery holds of the budget.
func cost(d *Delivery) int64 {
	if d.Msg == nil {
		return 0
	}
	return int64(len(d.Msg.Payload))
}
