package session

import (
	"testing"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

func enqueueN(t *testing.T, s *Session, n int) {
	t.Helper()
	for range n {
		if _, _, err := s.Enqueue(Delivery{Msg: msg("t"), QoS: mqtt.AtMostOnce}); err != nil {
			t.Fatal(err)
		}
	}
}

func takeN(t *testing.T, s *Session, n int) {
	t.Helper()
	for range n {
		if _, _, ok := s.Next(10, time.Now(), nil); !ok {
			t.Fatal("queue empty")
		}
	}
}

// A queue is crowded from half of MaxQueued, and a publisher waiting for it goes
// on once the writer has taken it down to a quarter.
func TestCrowdedQueueReleasesAtAQuarter(t *testing.T) {
	s := New("c", Limits{MaxQueued: 100})
	enqueueN(t, s, 49)
	if s.Crowded() {
		t.Fatal("crowded below half")
	}
	if !s.WaitRoom(nil, time.Nanosecond) {
		t.Fatal("WaitRoom on a queue that is not crowded reported no room")
	}
	enqueueN(t, s, 1)
	if !s.Crowded() {
		t.Fatal("not crowded at half")
	}
	got := make(chan bool, 1)
	go func() { got <- s.WaitRoom(nil, time.Minute) }()
	takeN(t, s, 24) // 26 left: still above a quarter
	select {
	case <-got:
		t.Fatal("released above a quarter")
	case <-time.After(50 * time.Millisecond):
	}
	takeN(t, s, 1)
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("WaitRoom reported no room")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not released at a quarter")
	}
	if s.Crowded() {
		t.Fatal("still crowded at a quarter")
	}
}

// A queue that does not drain within the wait stalls: nobody waits for it again
// until it is down to a quarter, and its policy drops meanwhile.
func TestStalledQueueIsNotWaitedFor(t *testing.T) {
	s := New("c", Limits{MaxQueued: 8})
	enqueueN(t, s, 4)
	if s.WaitRoom(nil, 10*time.Millisecond) {
		t.Fatal("WaitRoom on an undrained queue reported room")
	}
	enqueueN(t, s, 10)
	if s.Crowded() {
		t.Fatal("a stalled queue reports crowded")
	}
	if s.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6", s.Dropped())
	}
	takeN(t, s, 6)
	enqueueN(t, s, 2)
	if !s.Crowded() {
		t.Fatal("the stall outlived the drain")
	}
}

// Closing done releases a waiting publisher, and so does the end of the session.
func TestWaitRoomEnds(t *testing.T) {
	s := New("c", Limits{MaxQueued: 2})
	enqueueN(t, s, 1)
	done := make(chan struct{})
	close(done)
	if s.WaitRoom(done, time.Minute) {
		t.Fatal("WaitRoom with done closed reported room")
	}
	got := make(chan bool, 1)
	go func() { got <- s.WaitRoom(nil, time.Minute) }()
	time.Sleep(10 * time.Millisecond) // let it wait; the result holds either way
	s.Free()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("Free left the publisher waiting")
	}
}
