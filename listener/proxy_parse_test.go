package listener

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
)

// v2 builds a version 2 header: the signature, version 2 with command cmd,
// the family and transport byte fam, and body (addresses, then any TLVs).
func v2(cmd, fam byte, body ...[]byte) []byte {
	b := append([]byte{}, sigV2...)
	b = append(b, 0x20|cmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-16))
	return b
}

// Addresses of the version 2 rows, field by field.
var (
	inet4 = []byte{
		192, 0, 2, 1, // source address 192.0.2.1
		198, 51, 100, 7, // destination address 198.51.100.7
		0xdc, 0x04, // source port 56324
		0x07, 0x5b, // destination port 1883
	}
	inet6 = []byte{
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // source 2001:db8::1
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // destination 2001:db8::2
		0x1f, 0x90, // source port 8080
		0x22, 0xb3, // destination port 8883
	}
	unixAddrs = func() []byte {
		b := make([]byte, 216)
		copy(b, "/run/client.sock") // source path, NUL-padded to 108 bytes
		copy(b[108:], "/run/avocet.sock")
		return b
	}()
	// tlvs are what AWS NLB appends: PP2_TYPE_AWS (0xEA) with a VPC
	// endpoint id, and PP2_TYPE_NOOP (0x04) padding.
	tlvs = []byte{0xea, 0x00, 0x05, 0x01, 'v', 'p', 'c', 'e', 0x04, 0x00, 0x02, 0x00, 0x00}
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		size int    // header size; 0 for an error
		src  string // RemoteAddr's String; "" for the socket's
		err  string // part of the error; "incomplete" for errIncomplete
	}{
		// Version 1.
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n"), 46, "192.0.2.1:56324", ""},
		{"v1 TCP4 then data", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n\x10\x00"), 46, "192.0.2.1:56324", ""},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 8080 8883\r\n"), 46, "[2001:db8::1]:8080", ""},
		{"v1 TCP6 v4-mapped", []byte("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), 37, "192.0.2.1:1", ""},
		{"v1 ports 0 and 65535", []byte("PROXY TCP4 10.0.0.1 10.0.0.2 0 65535\r\n"), 38, "10.0.0.1:0", ""},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), 15, "", ""},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:f...f:ffff 65535\r\n"), 37, "", ""},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), 104, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", ""},
		{"v1 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 91) + "\r\n"), 107, "", ""},

		{"v1 prefix", []byte("PROX"), 0, "", "incomplete"},
		{"v1 no CRLF yet", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 5632"), 0, "", "incomplete"},
		{"v1 CR without LF yet", []byte("PROXY UNKNOWN\r"), 0, "", "incomplete"},
		{"v1 108 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n"), 0, "", "more than 107"},
		{"v1 no CRLF in 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100)), 0, "", "no CRLF within 107"},
		{"v1 LF alone", []byte("PROXY UNKNOWN\n"), 0, "", "byte 0xa"},
		{"v1 CR then other", []byte("PROXY UNKNOWN\rX\n"), 0, "", "CR not followed by LF"},
		{"v1 NUL", []byte("PROXY TCP4 1.2.3.4\x00"), 0, "", "byte 0x0"},
		{"v1 lower case", []byte("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n"), 0, "", "no PROXY header"},
		{"v1 TCP5", []byte("PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n"), 0, "", `unknown protocol "TCP5"`},
		{"v1 no protocol", []byte("PROXY \r\n"), 0, "", `unknown protocol ""`},
		{"v1 TCP4 with IPv6", []byte("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n"), 0, "", "in a TCP4 header"},
		{"v1 TCP6 with IPv4", []byte("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"), 0, "", "in a TCP6 header"},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"), 0, "", "in a TCP6 header"},
		{"v1 IPv4 leading zero", []byte("PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n"), 0, "", "source address"},
		{"v1 hostname", []byte("PROXY TCP4 example.com 198.51.100.7 1 2\r\n"), 0, "", "source address"},
		{"v1 port too large", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n"), 0, "", "source port"},
		{"v1 negative port", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 -2\r\n"), 0, "", "destination port"},
		{"v1 signed port", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n"), 0, "", "source port"},
		{"v1 missing port", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n"), 0, "", "has 3 fields"},
		{"v1 extra field", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n"), 0, "", "has 5 fields"},
		{"v1 double space", []byte("PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n"), 0, "", "has 5 fields"},
		{"v1 trailing space", []byte("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n"), 0, "", "has 5 fields"},

		// Version 2.
		{"v2 TCP4", v2(cmdProxy, 0x11, inet4), 28, "192.0.2.1:56324", ""},
		{"v2 TCP4 then data", append(v2(cmdProxy, 0x11, inet4), 0x10, 0x00), 28, "192.0.2.1:56324", ""},
		{"v2 TCP4 with TLVs", v2(cmdProxy, 0x11, inet4, tlvs), 41, "192.0.2.1:56324", ""},
		{"v2 TCP6", v2(cmdProxy, 0x21, inet6), 52, "[2001:db8::1]:8080", ""},
		{"v2 UNIX stream", v2(cmdProxy, 0x31, unixAddrs), 232, "/run/client.sock", ""},
		{"v2 LOCAL", v2(cmdLocal, 0x00), 16, "", ""},
		{"v2 LOCAL with addresses", v2(cmdLocal, 0x11, inet4), 28, "", ""},
		{"v2 LOCAL ignores the family", v2(cmdLocal, 0xff, inet4), 28, "", ""},
		{"v2 PROXY UNSPEC", v2(cmdProxy, 0x00, tlvs), 29, "", ""},
		{"v2 largest", v2(cmdProxy, 0x11, inet4, make([]byte, maxHeaderV2-28)), maxHeaderV2, "192.0.2.1:56324", ""},

		{"v2 signature prefix", sigV2[:5], 0, "", "incomplete"},
		{"v2 fixed part prefix", v2(cmdProxy, 0x11, inet4)[:15], 0, "", "incomplete"},
		{"v2 addresses prefix", v2(cmdProxy, 0x11, inet4)[:27], 0, "", "incomplete"},
		{"v2 bad signature", append(append([]byte{}, sigV2[:11]...), 0x0b), 0, "", "no PROXY header"},
		{"v2 version 1", append(append([]byte{}, sigV2...), 0x11, 0x11, 0, 12), 0, "", "version 1"},
		{"v2 version 3", append(append([]byte{}, sigV2...), 0x31, 0x11, 0, 12), 0, "", "version 3"},
		{"v2 command 2", v2(2, 0x11, inet4), 0, "", "unknown command 0x2"},
		{"v2 too large", v2(cmdProxy, 0x11, inet4, make([]byte, maxHeaderV2-27)), 0, "", "more than the 2048"},
		{"v2 too large, first 16 bytes", v2(cmdProxy, 0x11, inet4, make([]byte, 60000))[:16], 0, "", "more than the 2048"},
		{"v2 family 4", v2(cmdProxy, 0x41, inet4), 0, "", "unknown address family 0x4"},
		{"v2 transport 3", v2(cmdProxy, 0x13, inet4), 0, "", "unknown transport 0x3"},
		{"v2 INET without transport", v2(cmdProxy, 0x10, inet4), 0, "", "mixes UNSPEC"},
		{"v2 UNSPEC with transport", v2(cmdProxy, 0x01, inet4), 0, "", "mixes UNSPEC"},
		{"v2 UDP4", v2(cmdProxy, 0x12, inet4), 0, "", "datagram"},
		{"v2 UNIX dgram", v2(cmdProxy, 0x32, unixAddrs), 0, "", "datagram"},
		{"v2 TCP4 block short", v2(cmdProxy, 0x11, inet4[:11]), 0, "", "address block of 11 bytes, want at least 12"},
		{"v2 TCP6 with IPv4 block", v2(cmdProxy, 0x21, inet4), 0, "", "want at least 36"},

		// Neither.
		{"MQTT CONNECT", []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'}, 0, "", "no PROXY header"},
		{"TLS ClientHello", []byte{0x16, 0x03, 0x01, 0x00, 0xf4}, 0, "", "no PROXY header"},
		{"HTTP", []byte("GET /mqtt HTTP/1.1\r\n"), 0, "", "no PROXY header"},
		{"empty", nil, 0, "", "incomplete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := parseHeader(tt.in)
			switch {
			case tt.err == "incomplete":
				if !errors.Is(err, errIncomplete) {
					t.Fatalf("err = %v, want errIncomplete", err)
				}
				return
			case tt.err != "":
				if err == nil || errors.Is(err, errIncomplete) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			if h.size != tt.size {
				t.Errorf("size %d, want %d", h.size, tt.size)
			}
			switch {
			case tt.src == "" && h.src != nil:
				t.Errorf("source %v, want none (the socket's)", h.src)
			case tt.src != "" && (h.src == nil || h.src.String() != tt.src):
				t.Errorf("source %v, want %s", h.src, tt.src)
			}
			if a, ok := h.src.(*net.TCPAddr); ok && a.IP == nil {
				t.Errorf("source %#v has no IP", a)
			}
			// Every proper prefix of a valid header is incomplete: no
			// early success, no early failure.
			for i := range tt.size {
				if _, _, err := parseHeader(tt.in[:i]); !errors.Is(err, errIncomplete) {
					t.Fatalf("prefix of %d bytes: err = %v, want errIncomplete", i, err)
				}
			}
		})
	}
}

// FuzzParseHeader checks that parseHeader never panics, keeps to the size
// bounds, and gives the same answer however the bytes arrive.
func FuzzParseHeader(f *testing.F) {
	for _, s := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 8080 8883\r\nrest"),
		[]byte("PROXY UNKNOWN\r\n"),
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
		v2(cmdProxy, 0x11, inet4),
		v2(cmdProxy, 0x21, inet6, tlvs),
		v2(cmdProxy, 0x31, unixAddrs),
		v2(cmdLocal, 0x00),
		v2(cmdProxy, 0x12, inet4),
		{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, need, err := parseHeader(b)
		switch {
		case errors.Is(err, errIncomplete):
			if len(b) > maxHeaderV2 || need != 0 && (need <= len(b) || need > maxHeaderV2) {
				t.Fatalf("incomplete with %d bytes, need %d", len(b), need)
			}
			return
		case err != nil:
			return
		}
		if h.size <= 0 || h.size > len(b) || h.size > maxHeaderV2 || b[0] == 'P' && h.size > maxHeaderV1 {
			t.Fatalf("size %d of %d bytes", h.size, len(b))
		}
		if h2, _, err := parseHeader(b[:h.size]); err != nil || h2.size != h.size || !sameAddr(h2.src, h.src) {
			t.Fatalf("the header alone parses to %+v, %v; with what follows to %+v", h2, err, h)
		}
		for i := range h.size {
			if _, _, err := parseHeader(b[:i]); !errors.Is(err, errIncomplete) {
				t.Fatalf("prefix of %d bytes: err = %v, want errIncomplete", i, err)
			}
		}
	})
}

func sameAddr(a, b net.Addr) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
}
