package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// quicInitial is the first datagram of a QUIC version 1 client for sni:
// an Initial packet (RFC 9001 section 5) carrying a real crypto/tls
// ClientHello in a CRYPTO frame, padded to 1200 bytes as RFC 9000 asks of
// a client's first datagram. It is built the way the pcap importer's
// tests build theirs; nothing here decodes it (the gateway reads it with
// the importer's decoder).
func quicInitial(sni, alpn string) ([]byte, error) {
	hello, err := clientHello(sni, alpn)
	if err != nil {
		return nil, err
	}
	const size = 1200
	dcid := []byte{0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}
	hdr := []byte{0xc0 | 3} // long header, Initial, 4-byte packet number
	hdr = binary.BigEndian.AppendUint32(hdr, 1)
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no source connection ID, no token
	payloadLen := size - len(hdr) - 2 - 4 - 16
	frame := []byte{0x06, 0x00, 0x40 | byte(len(hello)>>8), byte(len(hello))} // CRYPTO at offset 0
	frame = append(frame, hello...)
	if len(frame) > payloadLen {
		return nil, fmt.Errorf("the ClientHello (%d bytes) does not fit one Initial", len(hello))
	}
	payload := append(frame, make([]byte, payloadLen-len(frame))...) // PADDING
	hdr = binary.BigEndian.AppendUint16(hdr, 0x4000|uint16(4+len(payload)+16))
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, 0) // packet number 0

	saltV1 := []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	initial, err := hkdf.Extract(sha256.New, dcid, saltV1)
	if err != nil {
		return nil, err
	}
	secret := expandLabel(initial, "client in", 32)
	block, err := aes.NewCipher(expandLabel(secret, "quic key", 16))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := expandLabel(secret, "quic iv", 12) // xor packet number 0: unchanged
	pkt := aead.Seal(append([]byte(nil), hdr...), nonce, payload, hdr)
	hp, err := aes.NewCipher(expandLabel(secret, "quic hp", 16))
	if err != nil {
		return nil, err
	}
	var mask [16]byte
	hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := range 4 {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt, nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(secret []byte, label string, n int) []byte {
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(len("tls13 "+label)))
	info = append(info, "tls13 "+label...)
	info = append(info, 0)
	out, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		panic(err) // n is small: cannot fail
	}
	return out
}

// clientHello is the ClientHello handshake message (without its TLS
// record header) that crypto/tls sends first, with one X25519 key share so
// that it fits an Initial.
func clientHello(sni, alpn string) ([]byte, error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}})
		_ = c.Handshake() // the pipe closes under it
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		return nil, err
	}
	return body, nil
}
