package mqtt

import (
	"bufio"
	"fmt"
	"testing"
)

// loopReader returns the same bytes forever, as a connection that keeps sending one packet.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

var benchSizes = []int{64, 4096}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("size=%dKiB", n/1024)
	}
	return fmt.Sprintf("size=%dB", n)
}

func benchPublish(size int) *Publish {
	return &Publish{QoS: AtLeastOnce, PacketID: 42, Topic: "devices/d42/sensors/temperature", Payload: make([]byte, size)}
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []Version{Version311, Version5} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("v=%s/%s", v, sizeName(size)), func(b *testing.B) {
				pkt, err := benchPublish(size).Encode(nil, v)
				if err != nil {
					b.Fatal(err)
				}
				r := NewReader(bufio.NewReader(&loopReader{b: pkt}))
				r.Version = v
				b.SetBytes(int64(len(pkt)))
				b.ReportAllocs()
				for b.Loop() {
					p, err := r.ReadPacket()
					if err != nil {
						b.Fatal(err)
					}
					if len(p.(*Publish).Payload) != size {
						b.Fatal("short payload")
					}
				}
			})
		}
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []Version{Version311, Version5} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("v=%s/%s", v, sizeName(size)), func(b *testing.B) {
				p := benchPublish(size)
				buf := make([]byte, 0, p.Size(v))
				b.SetBytes(int64(p.Size(v)))
				b.ReportAllocs()
				for b.Loop() {
					out, err := p.Encode(buf[:0], v)
					if err != nil {
						b.Fatal(err)
					}
					buf = out
				}
			})
		}
	}
}

func benchConnect(v Version) *Connect {
	c := &Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: "sensor-00042",
		UsernameFlag: true, Username: "fleet", PasswordFlag: true, Password: []byte("s3cret-token"),
		WillFlag: true, WillQoS: 1, WillTopic: "devices/sensor-00042/status", WillPayload: []byte("offline")}
	if v == Version5 {
		c.Properties.SessionExpiry = 3600
		c.Properties.Set(PropSessionExpiry)
		c.Properties.ReceiveMaximum = 100
		c.Properties.Set(PropReceiveMaximum)
	}
	return c
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, v := range []Version{Version311, Version5} {
		b.Run("v="+v.String(), func(b *testing.B) {
			pkt, err := benchConnect(v).Encode(nil, v)
			if err != nil {
				b.Fatal(err)
			}
			r := NewReader(bufio.NewReader(&loopReader{b: pkt}))
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadPacket(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeConnect(b *testing.B) {
	for _, v := range []Version{Version311, Version5} {
		b.Run("v="+v.String(), func(b *testing.B) {
			c := benchConnect(v)
			buf, _ := c.Encode(nil, v)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = c.Encode(buf[:0], v)
			}
		})
	}
}

func TestPublishPathsDoNotAllocate(t *testing.T) {
	for _, v := range []Version{Version311, Version5} {
		for _, size := range benchSizes {
			p := benchPublish(size)
			pkt, _ := p.Encode(nil, v)
			r := NewReader(bufio.NewReader(&loopReader{b: pkt}))
			r.Version = v
			if _, err := r.ReadPacket(); err != nil { // warm the reused storage
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = r.ReadPacket() }); n != 0 {
				t.Errorf("v=%s %s: decode allocates %.1f times per PUBLISH", v, sizeName(size), n)
			}
			buf := make([]byte, 0, len(pkt))
			if n := testing.AllocsPerRun(100, func() { buf, _ = p.Encode(buf[:0], v) }); n != 0 {
				t.Errorf("v=%s %s: encode allocates %.1f times per PUBLISH", v, sizeName(size), n)
			}
		}
	}
}
