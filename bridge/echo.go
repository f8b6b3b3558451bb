package bridge

import (
	"hash/fnv"
	"time"

	"github.com/avocet-mqtt/avocet/mqtt"
)

// echoWindow is how long a message sent out is remembered, to recognise it
// when the remote broker sends it back to an inbound subscription.
const echoWindow = 30 * time.Second

// echoPurge is the number of remembered messages above which expired ones are
// removed on the next send.
const echoPurge = 4096

// echo counts the messages sent out with one topic and payload that have not
// come back yet.
type echo struct {
	n     int
	until time.Time
}

// echoKey identifies a message by its topic and a hash of its payload.
func echoKey(topic string, payload []byte) string {
	h := fnv.New64a()
	_, _ = h.Write(payload)
	var sum [8]byte
	return topic + "\x00" + string(h.Sum(sum[:0]))
}

// noteEcho remembers m, about to be sent out, when an inbound rule would take
// it back in.
func (br *Bridge) noteEcho(m *mqtt.Message) {
	if br.inRule(m.Topic) == nil {
		return
	}
	now := time.Now()
	k := echoKey(m.Topic, m.Payload)
	br.echoMu.Lock()
	defer br.echoMu.Unlock()
	if len(br.echoes) > echoPurge {
		for key, e := range br.echoes {
			if now.After(e.until) {
				delete(br.echoes, key)
			}
		}
	}
	e := br.echoes[k]
	if e == nil {
		e = &echo{}
		br.echoes[k] = e
	}
	e.n++
	e.until = now.Add(echoWindow)
}

// forgetEcho undoes noteEcho for a message that was not sent after all.
func (br *Bridge) forgetEcho(m *mqtt.Message) {
	k := echoKey(m.Topic, m.Payload)
	br.echoMu.Lock()
	defer br.echoMu.Unlock()
	if e := br.echoes[k]; e != nil {
		if e.n--; e.n <= 0 {
			delete(br.echoes, k)
		}
	}
}

// isEcho reports whether a message from the remote broker is one this bridge
// sent, and forgets it if so.
func (br *Bridge) isEcho(topic string, payload []byte) bool {
	k := echoKey(topic, payload)
	br.echoMu.Lock()
	defer br.echoMu.Unlock()
	e := br.echoes[k]
	if e == nil {
		return false
	}
	if time.Now().After(e.until) {
		delete(br.echoes, k)
		return false
	}
	if e.n--; e.n <= 0 {
		delete(br.echoes, k)
	}
	return true
}
