package pcap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// sealInitial builds a client Initial packet the way RFC 9001 section 5
// says, the inverse of openInitial, with a 4-byte packet number.
func sealInitial(t testing.TB, version uint32, dcid []byte, pn uint32, payload []byte) []byte {
	t.Helper()
	ver, ok := lookupQUICVersion(version)
	if !ok {
		t.Fatalf("version %#x", version)
	}
	typ := byte(0)
	if ver.v2 {
		typ = 1
	}
	hdr := []byte{0xc0 | typ<<4 | 3}
	hdr = binary.BigEndian.AppendUint32(hdr, version)
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 4, 1, 2, 3, 4) // source connection ID
	hdr = append(hdr, 0)             // no token
	hdr = binary.BigEndian.AppendUint16(hdr, 0x4000|uint16(4+len(payload)+16))
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)

	initial, _ := hkdf.Extract(sha256.New, dcid, ver.salt)
	secret, _ := expandLabel(initial, "client in", 32)
	key, _ := expandLabel(secret, ver.prefix+"key", 16)
	iv, _ := expandLabel(secret, ver.prefix+"iv", 12)
	hp, _ := expandLabel(secret, ver.prefix+"hp", 16)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := append([]byte(nil), iv...)
	for i := 0; i < 4; i++ {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	pkt := aead.Seal(append([]byte(nil), hdr...), nonce, payload, hdr)
	hpc, _ := aes.NewCipher(hp)
	var mask [16]byte
	hpc.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := 0; i < 4; i++ {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

func cryptoFrame(off int, data []byte) []byte {
	f := []byte{0x06, 0x40 | byte(off>>8), byte(off)}
	f = append(f, 0x40|byte(len(data)>>8), byte(len(data)))
	return append(f, data...)
}

// TestQUICInitial: a ClientHello split over two Initial packets, its
// CRYPTO frames out of order and mixed with PING and PADDING, for QUIC
// versions 1 and 2 and draft 29.
func TestQUICInitial(t *testing.T) {
	record := clientHelloBytes(t, "quic.example", "h3")
	hello := record[5:] // the handshake message, without the TLS record header
	for _, version := range []uint32{1, 0x6b3343cf, 0xff00001d} {
		t.Run(fmt.Sprintf("%#x", version), func(t *testing.T) {
			dcid := []byte{8, 7, 6, 5, 4, 3, 2, 1}
			cut := len(hello) / 2
			p1 := append(cryptoFrame(cut, hello[cut:]), 0x01)
			p1 = append(p1, make([]byte, 300)...) // PADDING
			p2 := append([]byte{0x01}, cryptoFrame(0, hello[:cut])...)
			p2 = append(p2, make([]byte, 300)...)
			s := newSynth(t, linkEthernet)
			d1 := sealInitial(t, version, dcid, 0, p1)
			d2 := sealInitial(t, version, dcid, 1, p2)
			s.udp("10.0.0.2:50001", "192.0.2.9:443", d1)
			s.udp("192.0.2.9:443", "10.0.0.2:50001", make([]byte, 900))
			s.udp("10.0.0.2:50001", "192.0.2.9:443", d2)
			res := readBytes(t, s.pcap(false, false))
			f := onlyFlow(t, res)
			want := flow.Flow{
				Key:   "udp:10.0.0.2:50001-192.0.2.9:443:1",
				Start: t0.Add(10 * 1e6), End: t0.Add(30 * 1e6),
				Client: "10.0.0.2", ClientPort: 50001, Source: flow.SourcePcap, Kind: flow.KindQUIC, Scheme: "https",
				Host: "quic.example", Port: 443, BytesUp: int64(len(d1) + len(d2)), BytesDown: 900,
				SNI: "quic.example", ALPN: "h3", TLSVersion: "1.3",
			}
			if !reflect.DeepEqual(f, want) {
				t.Errorf("got  %+v\nwant %+v", f, want)
			}
			if !reflect.DeepEqual(res.flows[0].hellos, []int{3}) {
				t.Errorf("hello completed by packets %v, want [3]", res.flows[0].hellos)
			}
		})
	}
}

// TestInitialKeys checks the key derivation against the test vectors of
// RFC 9001 appendix A.1 (version 1) and RFC 9369 appendix A.1 (version 2).
func TestInitialKeys(t *testing.T) {
	dcid, _ := hex.DecodeString("8394c8f03e515708")
	for _, tc := range []struct {
		version     uint32
		key, iv, hp string
	}{
		{1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{0x6b3343cf, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	} {
		ver, _ := lookupQUICVersion(tc.version)
		initial, _ := hkdf.Extract(sha256.New, dcid, ver.salt)
		secret, _ := expandLabel(initial, "client in", 32)
		key, _ := expandLabel(secret, ver.prefix+"key", 16)
		iv, _ := expandLabel(secret, ver.prefix+"iv", 12)
		hp, _ := expandLabel(secret, ver.prefix+"hp", 16)
		if got := hex.EncodeToString(key) + " " + hex.EncodeToString(iv) + " " + hex.EncodeToString(hp); got != tc.key+" "+tc.iv+" "+tc.hp {
			t.Errorf("version %#x: key iv hp = %s, want %s %s %s", tc.version, got, tc.key, tc.iv, tc.hp)
		}
	}
}
