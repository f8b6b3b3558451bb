package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// subFormat is mosquitto_sub's -F output of a message. Its "MSG " marker sets
// messages apart from the protocol trace that -d prints on the same stream.
const (
	subFormat = "MSG %t qos=%q retain=%r props=[%P] %p"
	subMarker = "MSG "
)

// mosquitto runs Debian's Mosquitto clients against one broker.
type mosquitto struct {
	sub, pub   string // paths of mosquitto_sub and mosquitto_pub
	stdbuf     string // path of stdbuf, which makes mosquitto_sub's stdout line-buffered
	host, port string
}

// subscribe starts mosquitto_sub with the connection options and args, and
// waits until the broker has acknowledged its subscription with granted.
// The client prints its protocol trace (-d) and exits after its -C count of
// messages, or after 20s without one (-W).
func (m *mosquitto) subscribe(t *testing.T, granted int, args ...string) *process {
	t.Helper()
	full := append([]string{"-oL", m.sub, "-d", "-h", m.host, "-p", m.port, "-W", "20", "-F", subFormat}, args...)
	p := startProcess(t, "", m.stdbuf, full...)
	want := fmt.Sprintf("Subscribed (mid: 1): %d", granted)
	subscribed := func() bool { return slices.Contains(p.stdout.lines(), want) }
	poll(20*time.Second, func() bool { return subscribed() || p.exited() })
	if !subscribed() {
		t.Fatalf("mosquitto_sub %s: no %q within 20s, or it exited first\ntrace:\n%s%s",
			strings.Join(args, " "), want, p.stdout.String(), p.stderr.String())
	}
	return p
}

// publish runs mosquitto_pub with the connection options and args and waits
// for it to finish: for QoS 1 and 2, that is after the broker's PUBACK or PUBCOMP.
func (m *mosquitto) publish(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-d", "-h", m.host, "-p", m.port}, args...)
	if out, err := exec.CommandContext(ctx, m.pub, full...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %s: %v\ntrace:\n%s", strings.Join(args, " "), err, out)
	}
}

// expectMessages waits for a mosquitto_sub from subscribe to exit and
// compares the messages it printed, in any order, with want.
func expectMessages(t *testing.T, sub *process, want []string) {
	t.Helper()
	if !sub.wait(30 * time.Second) {
		t.Fatalf("mosquitto_sub did not exit within 30s\ntrace:\n%s", sub.stdout.String())
	}
	var got []string
	for _, l := range sub.stdout.lines() {
		if msg, ok := strings.CutPrefix(l, subMarker); ok {
			got = append(got, msg)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if sub.err != nil || !slices.Equal(got, want) {
		t.Errorf("mosquitto_sub exited with %v and received\n\t%s\nwant\n\t%s\ntrace:\n%s%s", sub.err,
			strings.Join(got, "\n\t"), strings.Join(want, "\n\t"), sub.stdout.String(), sub.stderr.String())
	}
}

func TestE2EMosquittoClients(t *testing.T) {
	requireE2E(t)
	m := &mosquitto{sub: program(t, "mosquitto_sub"), pub: program(t, "mosquitto_pub"), stdbuf: program(t, "stdbuf")}
	a := startAvocet(t)
	var err error
	if m.host, m.port, err = net.SplitHostPort(a.tcp); err != nil {
		t.Fatal(err)
	}
	q := strconv.Itoa

	versions := []string{"mqttv31", "mqttv311", "mqttv5"}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			// A subscription at each QoS gets messages published at each
			// QoS, by a client of each version, with the lower of the two
			// QoS [MQTT-3.8.4-6] (5.0: [MQTT-3.8.4-8]).
			for subQoS := 0; subQoS <= 2; subQoS++ {
				t.Run("subscribe_qos="+q(subQoS), func(t *testing.T) {
					root := fmt.Sprintf("e2e/%s/sub%d", v, subQoS)
					n := len(versions) * 3
					sub := m.subscribe(t, subQoS, "-V", v, "-q", q(subQoS), "-t", root+"/#", "-C", q(n))
					var want []string
					for _, pv := range versions {
						for pubQoS := 0; pubQoS <= 2; pubQoS++ {
							topic := fmt.Sprintf("%s/%s/pub%d", root, pv, pubQoS)
							payload := fmt.Sprintf("published at QoS %d over %s", pubQoS, pv)
							m.publish(t, "-V", pv, "-q", q(pubQoS), "-t", topic, "-m", payload)
							want = append(want, fmt.Sprintf("%s qos=%d retain=0 props=[] %s", topic, min(pubQoS, subQoS), payload))
						}
					}
					expectMessages(t, sub, want)
				})
			}

			// A retained message reaches a later subscriber with the retain
			// flag set, at the QoS it was published with (section 3.3.1.3 of
			// both 3.1.1 and 5.0).
			t.Run("retained", func(t *testing.T) {
				topic := "e2e/" + v + "/retained"
				payload := "kept for later subscribers over " + v
				m.publish(t, "-V", v, "-q", "1", "-r", "-t", topic, "-m", payload)
				sub := m.subscribe(t, 2, "-V", v, "-q", "2", "-t", topic, "-C", "1", "--retained-only")
				expectMessages(t, sub, []string{topic + " qos=1 retain=1 props=[] " + payload})
			})
		})
	}

	// User properties reach a 5.0 subscriber in their order [MQTT-3.3.2-18];
	// a 3.1.1 subscriber of the same topic gets the message without them.
	t.Run("user_property", func(t *testing.T) {
		topic := "e2e/properties"
		sub5 := m.subscribe(t, 1, "-V", "mqttv5", "-q", "1", "-t", topic, "-C", "1")
		sub311 := m.subscribe(t, 1, "-V", "mqttv311", "-q", "1", "-t", topic, "-C", "1")
		m.publish(t, "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "with properties",
			"-D", "publish", "user-property", "colour", "green",
			"-D", "publish", "user-property", "size", "small")
		expectMessages(t, sub5, []string{topic + " qos=1 retain=0 props=[colour:green size:small] with properties"})
		expectMessages(t, sub311, []string{topic + " qos=1 retain=0 props=[] with properties"})
	})
}
