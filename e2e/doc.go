// Package e2e holds Avocet's end-to-end tests: the avocet command runs as a real
// process on loopback ports, and programs written by others talk to it.
//
//   - TestE2EMosquittoClients drives Debian's mosquitto_pub and mosquitto_sub
//     over TCP with MQTT 3.1, 3.1.1 and 5.0: QoS 0, 1 and 2, retained messages
//     and 5.0 user properties crossing to a 3.1.1 subscriber.
//   - TestE2EBrowserMQTTJS loads MQTT.js from the npm registry into headless
//     Chromium, which connects over WebSocket with MQTT 3.1.1 and with 5.0.
//
// The package has no code of its own, only tests. They skip unless the
// environment variable AVOCET_E2E is 1, which `make e2e` sets after
// .ci/install-e2e has installed Mosquitto's clients and Chromium; with it set,
// a missing program fails the test. The tests need the go command to build
// avocet, and the browser test needs npm and network access to the npm registry.
//
// What the protocol requires of each exchange is tested, packet by packet, in
// the broker package; these tests show that real clients agree.
package e2e
