package pcap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
)

// QUIC versions whose Initial packets Read decrypts (RFC 9001 section 5.2,
// RFC 9369 for version 2, and the last drafts that browsers shipped).
type quicVersion struct {
	salt   []byte
	prefix string // HKDF label prefix: "quic " or "quicv2 "
	v2     bool   // version 2 numbers the Initial packet type 1, not 0
}

var (
	saltV1      = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2      = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	saltDraft29 = []byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}
)

func lookupQUICVersion(v uint32) (quicVersion, bool) {
	switch {
	case v == 1:
		return quicVersion{salt: saltV1, prefix: "quic "}, true
	case v == 0x6b3343cf:
		return quicVersion{salt: saltV2, prefix: "quicv2 ", v2: true}, true
	case v >= 0xff00001d && v <= 0xff000020: // drafts 29 to 32
		return quicVersion{salt: saltDraft29, prefix: "quic "}, true
	}
	return quicVersion{}, false
}

// looksLikeQUICInitial reports whether a UDP payload starts with a QUIC
// long-header Initial packet of a version Read knows.
func looksLikeQUICInitial(b []byte) bool {
	if len(b) < 7 || b[0]&0xc0 != 0xc0 {
		return false
	}
	ver, ok := lookupQUICVersion(binary.BigEndian.Uint32(b[1:5]))
	if !ok {
		return false
	}
	typ := (b[0] >> 4) & 3
	if ver.v2 {
		return typ == 1
	}
	return typ == 0
}

// quicState is what a QUIC association keeps while it looks for the
// ClientHello in the client's Initial packets.
type quicState struct {
	version uint32
	odcid   []byte // destination connection ID of the client's first Initial
	crypto  []byte // CRYPTO stream data, by offset
	have    []span // which parts of crypto have arrived
	hello   *clientHello
	done    bool // hello found, or given up
	tries   int
}

type span struct{ from, to int }

// maxQUICInitials bounds how many client Initial packets are decrypted
// looking for the hello.
const maxQUICInitials = 8

func (rd *reader) quicPacket(ts time.Time, p *packet, c *conn) {
	if c == nil {
		client, server := p.src, p.dst
		if portRank(p.src.Port()) < portRank(p.dst.Port()) {
			// The server's Initial, the client's missing from the
			// capture.
			client, server = server, client
		}
		c = rd.newConn(makeKey(protoUDP, p.src, p.dst), client, server, ts)
		c.quic = &quicState{}
	} else {
		rd.touch(c, ts)
	}
	if p.src != c.client {
		c.down.hi += int64(p.wireLen)
		return
	}
	c.up.hi += int64(p.wireLen)
	q := c.quic
	if q.done {
		return
	}
	q.tries++
	if q.tries > maxQUICInitials {
		q.done = true
		return
	}
	b := p.payload
	for len(b) > 0 && b[0]&0x80 != 0 {
		n, err := q.initial(b)
		if err != nil || n <= 0 {
			break
		}
		b = b[n:]
	}
	if msg := q.helloBytes(); msg != nil {
		q.done = true
		if h, err := parseClientHello(msg); err == nil {
			h.pkts = []int{rd.pkt}
			q.hello = h
			if rd.live {
				// Shown open as soon as its SNI is known, like a TLS
				// connection; its end replaces this record (same Key).
				f := rd.quicFlow(c)
				f.End = time.Time{}
				rd.out(f, h.pkts)
			}
		}
	}
}

// initial decrypts one long-header packet at the start of b and collects
// its CRYPTO frames. It returns the packet's length, so that coalesced
// packets can follow.
func (q *quicState) initial(b []byte) (int, error) {
	if len(b) < 7 {
		return 0, errShort
	}
	version := binary.BigEndian.Uint32(b[1:5])
	ver, ok := lookupQUICVersion(version)
	if !ok {
		return 0, errors.New("unknown QUIC version")
	}
	r := reader8{b: b[5:]}
	dcid := r.bytes(r.u8())
	r.bytes(r.u8()) // source connection ID
	typ := (b[0] >> 4) & 3
	isInitial := (typ == 0) != ver.v2
	if isInitial {
		r.bytes(int(r.varint())) // token
	}
	length := int(r.varint())
	if r.bad || length > len(r.b) || length < 20 {
		return 0, errShort
	}
	pnOff := len(b) - len(r.b)
	total := pnOff + length
	if !isInitial {
		return total, nil // 0-RTT or Handshake: not for us
	}
	if q.odcid == nil {
		q.odcid = append([]byte(nil), dcid...)
		q.version = version
	}
	pkt := make([]byte, total)
	copy(pkt, b[:total])
	plain, err := openInitial(ver, dcid, pkt, pnOff)
	if err != nil && string(dcid) != string(q.odcid) {
		copy(pkt, b[:total])
		plain, err = openInitial(ver, q.odcid, pkt, pnOff)
	}
	if err != nil {
		return total, err
	}
	q.frames(plain)
	return total, nil
}

// openInitial removes header protection and decrypts a client Initial
// packet in place (RFC 9001 sections 5.2 to 5.4).
func openInitial(ver quicVersion, dcid, pkt []byte, pnOff int) ([]byte, error) {
	initial, err := hkdf.Extract(sha256.New, dcid, ver.salt)
	if err != nil {
		return nil, err
	}
	secret, err := expandLabel(initial, "client in", 32)
	if err != nil {
		return nil, err
	}
	key, err1 := expandLabel(secret, ver.prefix+"key", 16)
	iv, err2 := expandLabel(secret, ver.prefix+"iv", 12)
	hp, err3 := expandLabel(secret, ver.prefix+"hp", 16)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	if len(pkt) < pnOff+4+16 {
		return nil, errShort
	}
	hpc, err := aes.NewCipher(hp)
	if err != nil {
		return nil, err
	}
	var mask [16]byte
	hpc.Encrypt(mask[:], pkt[pnOff+4:pnOff+4+16])
	pkt[0] ^= mask[0] & 0x0f
	pnLen := int(pkt[0]&3) + 1
	var pn uint64
	for i := 0; i < pnLen; i++ {
		pkt[pnOff+i] ^= mask[1+i]
		pn = pn<<8 | uint64(pkt[pnOff+i])
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 12)
	copy(nonce, iv)
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	hdr := pkt[:pnOff+pnLen]
	ct := pkt[pnOff+pnLen:]
	plain, err := aead.Open(ct[:0], nonce, ct, hdr)
	if err != nil {
		return nil, fmt.Errorf("QUIC Initial: %w", err)
	}
	return plain, nil
}

// expandLabel is HKDF-Expand-Label from TLS 1.3 (RFC 8446 section 7.1)
// with an empty context.
func expandLabel(secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = append(info, byte(n>>8), byte(n), byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), n)
}

// frames collects the CRYPTO frames of a decrypted Initial payload,
// skipping PADDING, PING and ACK.
func (q *quicState) frames(b []byte) {
	r := reader8{b: b}
	for len(r.b) > 0 && !r.bad {
		switch t := r.varint(); t {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK
			r.varint()
			r.varint()
			n := r.varint()
			r.varint()
			for i := uint64(0); i < n && !r.bad; i++ {
				r.varint()
				r.varint()
			}
			if t == 0x03 {
				r.varint()
				r.varint()
				r.varint()
			}
		case 0x06: // CRYPTO
			off := r.varint()
			data := r.bytes(int(min(r.varint(), maxHello)))
			if r.bad {
				return
			}
			q.addCrypto(off, data)
		default:
			return // CONNECTION_CLOSE or something unexpected
		}
	}
}

func (q *quicState) addCrypto(off uint64, data []byte) {
	if off >= maxHello || len(data) == 0 {
		return
	}
	end := min(int(off)+len(data), maxHello)
	if len(q.crypto) < end {
		q.crypto = append(q.crypto, make([]byte, end-len(q.crypto))...)
	}
	copy(q.crypto[off:end], data)
	q.have = append(q.have, span{int(off), end})
}

// helloBytes returns the ClientHello handshake message once the CRYPTO
// stream holds all of it from offset 0.
func (q *quicState) helloBytes() []byte {
	// Length of the contiguous prefix: the spans in order of where they
	// begin, merged while they touch.
	slices.SortFunc(q.have, func(a, b span) int { return a.from - b.from })
	prefix := 0
	for _, s := range q.have {
		if s.from > prefix {
			break
		}
		prefix = max(prefix, s.to)
	}
	if prefix < 4 {
		return nil
	}
	need := 4 + (int(q.crypto[1])<<16 | int(q.crypto[2])<<8 | int(q.crypto[3]))
	if need > prefix {
		return nil
	}
	return q.crypto[:need]
}

// varint reads a QUIC variable-length integer (RFC 9000 section 16).
func (r *reader8) varint() uint64 {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	n := 1 << (r.b[0] >> 6)
	if len(r.b) < n {
		r.bad = true
		r.b = nil
		return 0
	}
	v := uint64(r.b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(r.b[i])
	}
	r.b = r.b[n:]
	return v
}

func (rd *reader) quicFlow(c *conn) flow.Flow {
	f := rd.baseFlow(c)
	f.Key = connKeyString(c)
	f.Kind = flow.KindQUIC
	f.Scheme = "https"
	f.BytesUp, f.BytesDown = c.up.hi, c.down.hi
	if h := c.quic.hello; h != nil {
		applyHello(&f, h)
	} else {
		f.Note = "QUIC Initial without a readable ClientHello"
	}
	rd.nameHost(&f, c.server.Addr())
	return f
}
