package store

import (
	"fmt"

	"github.com/avocet-mqtt/avocet/mqtt"
	"github.com/avocet-mqtt/avocet/retain"
)

// RetainedPrefix begins the key of every retained message: "r/" followed by the
// topic name. The value is the message as (*mqtt.Message).AppendBinary writes it.
const RetainedPrefix = "r/"

// kv is what the retained adapter needs of a DB or a Mem.
type kv interface {
	put(key string, value []byte) error
	del(key string) error
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Retained returns the retain.Store kept in db: Put and Delete queue their
// change like Set and Delete (they return ErrClosed after Close, nil otherwise),
// and Load reads what has been written.
func (db *DB) Retained() retain.Store { return retained{db} }

// retained stores retained messages in a kv under RetainedPrefix.
type retained struct{ kv kv }

// Put encodes m at once, on the caller's goroutine, and queues it.
func (r retained) Put(m *mqtt.Message) error {
	b, err := m.AppendBinary(nil)
	if err != nil {
		return fmt.Errorf("store: retained %q: %w", m.Topic, err)
	}
	return r.kv.put(RetainedPrefix+m.Topic, b)
}

func (r retained) Delete(topic string) error {
	return r.kv.del(RetainedPrefix + topic)
}

// Load decodes every stored message, in topic order. A record that does not
// decode, or whose topic is not the one its key names, stops Load with an error
// naming the key.
func (r retained) Load(fn func(m *mqtt.Message) error) error {
	return r.kv.Scan(RetainedPrefix, func(key string, value []byte) error {
		m, err := mqtt.UnmarshalMessage(value)
		if err != nil {
			return fmt.Errorf("store: retained %q: %w", key, err)
		}
		if RetainedPrefix+m.Topic != key {
			return fmt.Errorf("store: retained %q: holds a message of topic %q", key, m.Topic)
		}
		return fn(m)
	})
}
