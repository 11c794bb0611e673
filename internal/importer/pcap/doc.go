// Package pcap turns a packet capture (pcap or pcapng, as Wireshark,
// tcpdump or pktmon write them) into flows.
//
// The file formats are read with gopacket's pure-Go pcapgo readers; the
// format is told by the magic number, never by the file name (pcap in
// either byte order, with micro- or nanosecond timestamps; pcapng; either
// of them gzip-compressed). Link types: Ethernet (with VLAN tags), Linux
// cooked captures v1 and v2, raw IPv4/IPv6, and BSD loopback (NULL and
// LOOP). IPv4 and IPv6 (with extension headers); later IP fragments are
// ignored.
//
// What becomes a flow:
//
//   - A TCP connection is one flow with its start, end and the payload
//     bytes each way (counted from sequence numbers, so retransmissions
//     count once). Its Kind is tls when the client's first bytes are a TLS
//     ClientHello (SNI, ALPN and the highest version offered, from
//     supported_versions when present: "1.3", "1.2", "1.3-draft23"), and
//     tcp otherwise. A SYN that got no answer, or a reset instead of a
//     SYN-ACK, is said in Error.
//   - A connection that carries HTTP/1.x gives one flow per request, not
//     one per connection, because a request is what a reader of the
//     timeline asks about: a keep-alive connection to a CDN may fetch a
//     hundred files. Each request flow has the method, URL, Host and the
//     response status; the connection's bytes are shared out by where
//     each request and response begins in its stream (the first request
//     also carries the handshake). Bodies are skipped by Content-Length or
//     by following the chunked encoding, so the next message is found
//     wherever it starts. Keys of the second and later requests end in
//     "#n".
//   - A CONNECT request seen on the wire (the client-to-proxy leg) is a
//     connect flow for its target host and port, with the proxy's status
//     and the SNI, ALPN and version of the ClientHello sent inside the
//     tunnel; the tunnel's bytes are its own.
//   - A QUIC association (client address and port to server address and
//     port) is one quic flow. Its client Initial packets are decrypted
//     (RFC 9001: HKDF from the version's initial salt, AES-128-GCM,
//     header protection with AES-ECB; versions 1, 2 and drafts 29-32) and
//     the ClientHello is read from their CRYPTO frames.
//   - Each DNS, mDNS or LLMNR query (UDP) is a dns flow named by its
//     question, with the answer's time, code and addresses. The addresses
//     also name later connections to them that carry no SNI or Host; such
//     a flow says "host named from DNS answer" in its Note. Without either,
//     Host is the server's address.
//   - An HTTP request in a single UDP datagram (SSDP M-SEARCH, NOTIFY) is
//     an http flow. Other UDP traffic makes no flow, except in a live
//     Stream told to note it (Stream.NoteUDP, which pilotwire gateway
//     uses): there each UDP association is a udp flow, NTP said as such.
//
// Streams are put in order of sequence number only as far as the parsers
// need them (the ClientHello, HTTP header blocks), holding at most 64 KiB of
// out-of-order data per direction; bodies and the rest of a TLS stream are
// only counted. A flow is emitted when its connection closes (FIN both
// ways or RST, plus a short linger for the last ACKs), after five minutes
// of silence in capture time, or at the end of the file, so memory is
// bounded by the connections open at once, not by the size of the file.
//
// Keys are local to the file: "tcp:<client>-<server>:<n>", where n is the
// number of the connection's first packet (1-based, as Wireshark numbers
// frames); "udp:…" for QUIC and SSDP, "dns:<client>-<server>:<id>:<n>" for
// DNS. The importer package prefixes them with the file's identity.
//
// Damage: a packet whose headers cannot be decoded is reported to the skip
// function ("packet 12 (offset 0x1f40)") and reading goes on. A file that
// breaks off is read up to the break, its flows emitted, and Read returns
// an error naming the offset. gopacket's pcapng reader trusts the lengths
// it reads, so a guard checks each pcapng block before it gets there (see
// ngGuard), and a panic in gopacket becomes an error.
package pcap
