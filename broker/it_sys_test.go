package broker

// Integration tests of the $SYS topics.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
)

// With SysInterval set, a subscriber to $SYS/# gets the broker's version and the
// number of connected clients; a subscriber to # gets no $SYS topic, neither
// retained at subscription nor as they are published [MQTT-4.7.2-1].
func TestSysTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) {
		o.SysInterval = 100 * time.Millisecond
		o.Version = "9.9-test"
	})
	all := connect5(t, b.addr, "sys-all", nil)
	all.sub(t, nil, pahov5.SubscribeOptions{Topic: "#", QoS: 0})
	sys := connect5(t, b.addr, "sys-sub", nil)
	sys.sub(t, nil, pahov5.SubscribeOptions{Topic: "$SYS/#", QoS: 0})

	var version string
	connected, versions := -1, 0
	deadline := time.After(itTimeout)
	// Until the count includes both clients and the version came three times: by
	// then $SYS topics were published at least twice while "all" was subscribed.
	for connected != 2 || versions < 3 {
		select {
		case m := <-sys.msgs:
			switch m.Topic {
			case "$SYS/broker/version":
				version = string(m.Payload)
				versions++
			case "$SYS/broker/clients/connected":
				n, err := strconv.Atoi(string(m.Payload))
				if err != nil {
					t.Fatalf("clients connected %q", m.Payload)
				}
				connected = n
			}
		case <-deadline:
			t.Fatalf("version %q (%d times), clients connected %d", version, versions, connected)
		}
	}
	if version != "avocet 9.9-test" {
		t.Errorf("version %q", version)
	}
	for _, m := range all.flush(t, "sys/marker") {
		if strings.HasPrefix(m.Topic, "$") {
			t.Fatalf("subscriber to # got %s", m.Topic)
		}
	}
}
