package broker

import (
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// DefaultThrottleLimit is how long a client may stay over its publish rate, slowed,
// before it is disconnected, unless Options.ThrottleLimit says otherwise.
const DefaultThrottleLimit = 10 * time.Second

// bucket is a token bucket refilled at rate tokens a second, holding at most one
// second's worth. Tokens may go negative: the debt is the time to wait.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

// take removes n tokens at now and returns how long to wait until the bucket is
// out of debt.
func (b *bucket) take(now time.Time, n float64) time.Duration {
	if b.last.IsZero() {
		b.tokens = b.rate
	} else {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// limiter is a connection's publish rate limit; used by its reader goroutine only.
type limiter struct {
	msgs, bytes    *bucket
	throttledSince time.Time
	limit          time.Duration
}

func newLimiter(o *Limits) *limiter {
	if o.MaxPublishRate <= 0 && o.MaxPublishBytesRate <= 0 {
		return nil
	}
	l := &limiter{limit: o.ThrottleLimit}
	if l.limit <= 0 {
		l.limit = DefaultThrottleLimit
	}
	if o.MaxPublishRate > 0 {
		l.msgs = &bucket{rate: float64(o.MaxPublishRate)}
	}
	if o.MaxPublishBytesRate > 0 {
		l.bytes = &bucket{rate: float64(o.MaxPublishBytesRate)}
	}
	return l
}

// throttle accounts for a PUBLISH of size bytes. A client over its rate is slowed:
// the reader sleeps, so its packets wait in the socket and TCP pushes back. One
// that stays over the rate for the throttle limit gets an error carrying 0x96.
func (c *conn) throttle(size int) error {
	l := c.limiter
	if l == nil {
		return nil
	}
	now := time.Now()
	var wait time.Duration
	if l.msgs != nil {
		wait = l.msgs.take(now, 1)
	}
	if l.bytes != nil {
		wait = max(wait, l.bytes.take(now, float64(size)))
	}
	if wait <= 0 {
		l.throttledSince = time.Time{}
		return nil
	}
	if l.throttledSince.IsZero() {
		l.throttledSince = now
	} else if now.Sub(l.throttledSince) > l.limit {
		return protoErr(mqtt.MessageRateTooHigh, "publish rate above the limit for too long")
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	}
	return nil
}
