package cluster

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/avocet-mqtt/avocet/session"
)

// Keys of the links in a session.Store. A node name never holds U+0000 in
// practice; a key ends the name at its last U+0000, so that one still parses.
//
//	l/e                   this node's epoch as a sender: 8 bytes, big endian
//	l/n/{peer}            the next unreserved sequence number to peer: 8 bytes
//	l/o/{peer}\x00{seq}   a durable item sent to peer and not yet acknowledged:
//	                      its kind byte, then its body
//	l/i/{sender}          what this node has done of sender's items: sender's
//	                      epoch, then the last sequence number done (8 bytes each)
//
// seq is sixteen hex digits, so that key order is sequence order.
const (
	keyLinkEpoch     = "l/e"
	prefixLinkNext   = "l/n/"
	prefixLinkOut    = "l/o/"
	prefixLinkIn     = "l/i/"
	linkReserveBlock = 4096 // sequence numbers reserved at a time
)

func linkOutKey(peer string, seq uint64) string {
	return prefixLinkOut + peer + "\x00" + fmt.Sprintf("%016x", seq)
}

func linkNextKey(peer string) string { return prefixLinkNext + peer }

func linkInKey(sender string) string { return prefixLinkIn + sender }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// parseLinkOutKey splits the rest of an l/o/ key into the peer and the
// sequence number.
func parseLinkOutKey(rest string) (peer string, seq uint64, err error) {
	i := strings.LastIndexByte(rest, 0)
	if i <= 0 || len(rest)-i-1 != 16 {
		return "", 0, fmt.Errorf("%w: link item key %q", errMalformed, rest)
	}
	seq, err = strconv.ParseUint(rest[i+1:], 16, 64)
	if err != nil || seq == 0 {
		return "", 0, fmt.Errorf("%w: link item key %q", errMalformed, rest)
	}
	return rest[:i], seq, nil
}

// senderState is what Links read back from a Store: the epoch, and per peer the
// reservation and the durable items not yet acknowledged.
type senderState struct {
	epoch uint64
	fresh bool // the epoch was created now, not read back
	peers map[string]*recoveredPeer
}

type recoveredPeer struct {
	reserved uint64    // l/n/{peer}; 0 when absent
	items    []outItem // ascending sequence numbers
}

// loadSenderState reads the epoch, the reservations and the durable items
// from store, creating the epoch when there is none. Records that do not parse
// are logged and deleted. It returns what it could read along with the first
// error.
func loadSenderState(store session.Store, logger *slog.Logger) (senderState, error) {
	s := senderState{peers: make(map[string]*recoveredPeer)}
	peer := func(name string) *recoveredPeer {
		p := s.peers[name]
		if p == nil {
			p = &recoveredPeer{}
			s.peers[name] = p
		}
		return p
	}
	var bad []string
	err := store.Scan(keyLinkEpoch, func(key string, value []byte) error {
		if key != keyLinkEpoch {
			return nil
		}
		if len(value) != 8 || binary.BigEndian.Uint64(value) == 0 {
			bad = append(bad, key)
			return nil
		}
		s.epoch = binary.BigEndian.Uint64(value)
		return nil
	})
	if err != nil {
		err = fmt.Errorf("cluster links: load epoch: %w", err)
	}
	if err == nil {
		err = store.Scan(prefixLinkNext, func(key string, value []byte) error {
			name := strings.TrimPrefix(key, prefixLinkNext)
			if name == "" || len(value) != 8 {
				bad = append(bad, key)
				return nil
			}
			peer(name).reserved = binary.BigEndian.Uint64(value)
			return nil
		})
		if err != nil {
			err = fmt.Errorf("cluster links: load reservations: %w", err)
		}
	}
	if err == nil {
		err = store.Scan(prefixLinkOut, func(key string, value []byte) error {
			name, seq, perr := parseLinkOutKey(strings.TrimPrefix(key, prefixLinkOut))
			if perr != nil || len(value) == 0 || len(value)-1 > maxItemBody {
				bad = append(bad, key)
				return nil
			}
			p := peer(name)
			p.items = append(p.items, outItem{seq: seq, Item: Item{
				Kind: value[0], Body: slices.Clone(value[1:]), Durable: true,
			}})
			return nil
		})
		if err != nil {
			err = fmt.Errorf("cluster links: load durable items: %w", err)
		}
	}
	for _, key := range bad {
		logger.Warn("cluster links: unreadable record deleted", "key", key)
		store.Delete(key)
	}
	for _, p := range s.peers {
		slices.SortFunc(p.items, func(a, b outItem) int {
			switch {
			case a.seq < b.seq:
				return -1
			case a.seq > b.seq:
				return 1
			}
			return 0
		})
	}
	if s.epoch == 0 {
		s.epoch, s.fresh = newEpoch(), true
		store.Set(keyLinkEpoch, be64(s.epoch))
	}
	return s, err
}

// loadReceiverState reads what this node has done of each sender's items.
func loadReceiverState(store session.Store, logger *slog.Logger) (map[string]*inbound, error) {
	senders := make(map[string]*inbound)
	var bad []string
	err := store.Scan(prefixLinkIn, func(key string, value []byte) error {
		name := strings.TrimPrefix(key, prefixLinkIn)
		if name == "" || len(value) != 16 || binary.BigEndian.Uint64(value) == 0 {
			bad = append(bad, key)
			return nil
		}
		st := newRecvState(binary.BigEndian.Uint64(value))
		done := binary.BigEndian.Uint64(value[8:])
		st.handed, st.frontier, st.persisted = done, done, done
		senders[name] = &inbound{st: st}
		return nil
	})
	for _, key := range bad {
		logger.Warn("cluster link server: unreadable record deleted", "key", key)
		store.Delete(key)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster link server: load received state: %w", err)
	}
	return senders, nil
}

// linkInValue is the value of an l/i/ key.
func linkInValue(epoch, done uint64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, epoch)
	return binary.BigEndian.AppendUint64(b, done)
}
