package session

import "time"

// Pacing. A queue at least half full (MaxQueued) is crowded: its writer falls
// behind its publishers. A publisher that delivered to a crowded queue waits
// with WaitRoom until the queue is down to a quarter, so that it publishes at
// the pace its slowest live subscriber takes messages, instead of filling the
// queue until the queue policy drops what it acknowledged. A queue that does
// not drain within the wait stalls: nobody waits for it again, and its policy
// drops, until it is down to a quarter once more.

// Crowded reports whether the queue is crowded and publishers should wait for
// it with WaitRoom.
func (s *Session) Crowded() bool { return s.crowded.Load() }

// WaitRoom waits until the queue is down to a quarter of MaxQueued, done is
// closed, or limit passes, and reports whether there is room. After limit, the
// queue is stalled: Crowded reports false until it drains.
func (s *Session) WaitRoom(done <-chan struct{}, limit time.Duration) bool {
	s.mu.Lock()
	if !s.crowded.Load() {
		s.mu.Unlock()
		return true
	}
	if s.room == nil {
		s.room = make(chan struct{})
	}
	room := s.room
	s.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-room:
		return true
	case <-done:
		return false
	case <-t.C:
	}
	s.mu.Lock()
	if s.room == room {
		s.stalled = true
		s.crowded.Store(false)
		close(room)
		s.room = nil
	}
	s.mu.Unlock()
	return false
}

// roomLocked ends the crowding, and the stall, once the queue is down to a
// quarter of MaxQueued. Called with mu held after messages leave the queue.
func (s *Session) roomLocked() {
	if max := s.limits.MaxQueued; max > 0 && s.queue.len() > max/4 && !s.freed {
		return
	}
	s.stalled = false
	if s.crowded.Load() {
		s.crowded.Store(false)
	}
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}
