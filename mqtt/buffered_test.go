package mqtt

import (
	"bufio"
	"bytes"
	"testing"
)

func TestPacketBuffered(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want bool
	}{
		{[]byte{0xc0}, false},                        // PINGREQ's type only
		{[]byte{0xc0, 0x00}, true},                   // PINGREQ
		{[]byte{0x40, 0x02, 0x00}, false},            // PUBACK, one byte short
		{[]byte{0x40, 0x02, 0x00, 0x01}, true},       // PUBACK
		{[]byte{0x40, 0x02, 0x00, 0x01, 0xc0}, true}, // and the next one begun
		{[]byte{0x30, 0x80, 0x01}, false},            // 128 bytes announced, none there
		{append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...), true},
		{[]byte{0x30, 0xff, 0xff, 0xff, 0xff}, false}, // malformed: left to ReadPacket
	} {
		br := bufio.NewReader(bytes.NewReader(tc.in))
		if _, err := br.Peek(1); err != nil {
			t.Fatal(err)
		}
		if got := NewReader(br).PacketBuffered(); got != tc.want {
			t.Errorf("% x: %v, want %v", tc.in, got, tc.want)
		}
	}
}
