package main

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/avocet-mqtt/avocet/admin"
	"github.com/avocet-mqtt/avocet/bridge"
	"github.com/avocet-mqtt/avocet/mqtt"
)

// unreachableBridge is a [[bridge]] to a port nothing listens on; it goes
// after ctlConfig's [admin] keys.
const unreachableBridge = `
[[bridge]]
name = "up"
address = "tcp://127.0.0.1:1"
reconnect_min = "100ms"
reconnect_max = "200ms"
[[bridge.topic]]
pattern = "out/#"
qos = 1
`

func TestCtlBridgeListShowsAnUnreachableBridge(t *testing.T) {
	b := startCtlBroker(t, unreachableBridge)
	nc, err := net.Dial("tcp", b.tcp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := newClient(t, nc, mqtt.Version5, "pub")
	c.send(&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "out/a", Payload: []byte("1")})
	if ack, ok := c.read().(*mqtt.Puback); !ok || ack.PacketID != 1 {
		t.Fatalf("PUBACK: %#v", ack)
	}
	c.send(&mqtt.Publish{QoS: 1, PacketID: 2, Topic: "other", Payload: []byte("2")})
	if ack, ok := c.read().(*mqtt.Puback); !ok || ack.PacketID != 2 {
		t.Fatalf("PUBACK: %#v", ack)
	}

	var pg admin.Page[bridge.Status]
	b.okJSON(t, &pg, "bridge", "list")
	if pg.Total != 1 || len(pg.Items) != 1 {
		t.Fatalf("bridge list --json: %+v", pg)
	}
	if s := pg.Items[0]; s.Name != "up" || s.Connected || s.Address != "" || s.Queued != 1 || s.ForwardedOut != 0 {
		t.Fatalf("bridge list --json: %+v", s)
	}

	out := b.ok(t, "bridge", "list")
	if !strings.HasPrefix(out, "BRIDGE ") {
		t.Fatalf("bridge list:\n%s", out)
	}
	if row := strings.Fields(rowOf(out, "up")); len(row) != 8 || row[1] != "no" || row[2] != "-" || row[3] != "1" {
		t.Fatalf("bridge list:\n%s", out)
	}

	var st admin.Status
	b.okJSON(t, &st, "status")
	if st.Bridges != (admin.BridgeSummary{Count: 1, Connected: 0}) {
		t.Fatalf("status bridges: %+v", st.Bridges)
	}
	if out := b.ok(t, "status"); !regexp.MustCompile(`(?m)^bridges +1 running, 0 connected`).MatchString(out) {
		t.Fatalf("status:\n%s", out)
	}
}
