package cluster

import (
	"testing"

	"github.com/avocet-mqtt/avocet/broker"
)

// TestRelaySkipsWhatReachesAnyway: the relay of a session that moved to node b
// skips a message that was forwarded to b by b's routes from after the move,
// and only such a message.
func TestRelaySkipsWhatReachesAnyway(t *testing.T) {
	c := &Cluster{}
	moved := &relayState{to: "b", moved: true, v: version{incarnation: 5, seq: 10}}
	for _, tc := range []struct {
		name string
		st   *relayState
		sent any
		want bool
	}{
		{"not forwarded", moved, nil, false},
		{"forwarded to another node", moved, []sentTo{{"c", version{5, 99}}}, false},
		{"by b's routes before the move", moved, []sentTo{{"b", version{5, 9}}}, false},
		{"by b's routes of the move", moved, []sentTo{{"c", version{1, 1}}, {"b", version{5, 10}}}, true},
		{"by b's routes after a restart", moved, []sentTo{{"b", version{6, 1}}}, true},
		{"by routes older than b's incarnation", moved, []sentTo{{"b", version{4, 50}}}, false},
		{"before b said where the session is", &relayState{to: "b"}, []sentTo{{"b", version{9, 9}}}, false},
	} {
		if got := c.reachesAnyway(tc.st, broker.MsgRef{Node: "x", N: 1, Sent: tc.sent}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
