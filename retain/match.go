package retain

import (
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// Match calls fn for every retained message that has not expired at now and whose
// topic name matches filter, until fn returns false. filter must be a valid topic
// filter (see mqtt.ValidTopicFilter) and not a shared one: retained messages are
// not sent for shared subscriptions. Filters that begin with a wildcard do not
// match topic names that begin with '$' [MQTT-4.7.2-1]. Messages come in no
// particular order.
//
// Match walks the tree by the filter's levels: a filter without wildcards is one
// lookup, '+' visits the children of its level and '#' everything below its level.
// The matching messages are gathered under the read lock into a reused buffer, and
// fn is called after the lock is released: fn sees the messages that matched when
// the walk took place, may take its time, and may call any method of the tree.
// fn must not modify the messages, which are shared.
//
// Match leaves expired messages for Sweep to remove. It does not allocate once its
// buffers have grown to the size of the matches.
func (t *Tree) Match(filter string, now time.Time, fn func(m *mqtt.Message) bool) {
	if !mqtt.HasWildcard(filter) {
		t.mu.RLock()
		n := t.find(filter)
		var m *mqtt.Message
		if n != nil {
			m = n.msg
		}
		t.mu.RUnlock()
		if m != nil && !m.Expired(now) {
			fn(m)
		}
		return
	}
	bufp, _ := t.bufs.Get().(*[]*mqtt.Message)
	if bufp == nil {
		bufp = new([]*mqtt.Message)
	}
	t.mu.RLock()
	buf := collect((*bufp)[:0], t.root, filter, nowNano(now))
	t.mu.RUnlock()
	t.deliver(bufp, buf, fn)
}

// Range calls fn for every message the tree holds, until fn returns false, in no
// particular order; it is meant for listing. Unlike Match it includes topic names
// that begin with '$' and messages that have expired and not yet been swept. fn is
// called as in Match: on a snapshot, with no lock held.
func (t *Tree) Range(fn func(m *mqtt.Message) bool) {
	bufp, _ := t.bufs.Get().(*[]*mqtt.Message)
	if bufp == nil {
		bufp = new([]*mqtt.Message)
	}
	t.mu.RLock()
	buf := held((*bufp)[:0], t.root)
	t.mu.RUnlock()
	t.deliver(bufp, buf, fn)
}

// deliver calls fn for the messages in buf, then clears buf and puts it back in
// the pool as *bufp.
func (t *Tree) deliver(bufp *[]*mqtt.Message, buf []*mqtt.Message, fn func(m *mqtt.Message) bool) {
	for _, m := range buf {
		if !fn(m) {
			break
		}
	}
	clear(buf)
	*bufp = buf[:0]
	t.bufs.Put(bufp)
}

// collect appends to out the messages unexpired at now (in Unix nanoseconds)
// below n whose remaining levels match filter. n is the root or a node whose level
// matched the filter's level before filter. Call with mu held for reading.
func collect(out []*mqtt.Message, n *node, filter string, now int64) []*mqtt.Message {
	for {
		level, rest, more := cutLevel(filter)
		switch level {
		case "#":
			// '#' matches the level above it too: "a/#" matches "a"
			// [MQTT-4.7.1-2]. The root holds no message.
			if n.live(now) {
				out = append(out, n.msg)
			}
			for _, child := range n.children {
				if n.parent == nil && isDollar(child.level) { // [MQTT-4.7.2-1]
					continue
				}
				out = all(out, child, now)
			}
			return out
		case "+":
			for _, child := range n.children {
				if n.parent == nil && isDollar(child.level) { // [MQTT-4.7.2-1]
					continue
				}
				if more {
					out = collect(out, child, rest, now)
				} else if child.live(now) {
					out = append(out, child.msg)
				}
			}
			return out
		default:
			child := n.child(level)
			if child == nil {
				return out
			}
			if !more {
				if child.live(now) {
					out = append(out, child.msg)
				}
				return out
			}
			n, filter = child, rest
		}
	}
}

// all appends to out the messages unexpired at now (in Unix nanoseconds) in n and
// below. Call with mu held for reading.
func all(out []*mqtt.Message, n *node, now int64) []*mqtt.Message {
	if n.live(now) {
		out = append(out, n.msg)
	}
	for _, child := range n.children {
		out = all(out, child, now)
	}
	return out
}

// held appends to out every message in n and below, expired or not. Call with mu
// held for reading.
func held(out []*mqtt.Message, n *node) []*mqtt.Message {
	if n.msg != nil {
		out = append(out, n.msg)
	}
	for _, child := range n.children {
		out = held(out, child)
	}
	return out
}

func isDollar(level string) bool { return len(level) > 0 && level[0] == '$' }
