package gateway

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestParseDHCPPool(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"192.168.77.0/24", "192.168.77.0/24", ""},
		{"192.168.77.130/25", "192.168.77.128/25", ""},
		{"10.0.0.0/16", "10.0.0.0/16", ""},
		{"192.168.77.0", "", `DHCP pool "192.168.77.0": not a CIDR such as 192.168.77.0/24`},
		{"fd00:77::/64", "", "not IPv4"},
		{"10.0.0.0/8", "", "want a prefix length from /16 to /30"},
		{"10.0.0.0/31", "", "want a prefix length from /16 to /30"},
	}
	for _, tc := range cases {
		p, err := ParseDHCPPool(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.in, p, err, tc.want)
		}
	}
	if _, err := newLeases(DHCP{Pool: netip.MustParsePrefix("10.78.0.0/24")}, netip.MustParsePrefix("10.77.0.1/24"), netip.MustParseAddr("10.77.0.1")); err == nil ||
		err.Error() != "--dhcp 10.78.0.0/24: not inside the LAN interface's subnet 10.77.0.0/24" {
		t.Errorf("a pool outside the LAN: %v", err)
	}
}

// client is a DHCP client's messages, built with the library's own
// constructors as a client would send them.
type client struct {
	t   *testing.T
	mac net.HardwareAddr
}

func newClient(t *testing.T, last byte) client {
	return client{t, net.HardwareAddr{0x52, 0x54, 0, 0, 0, last}}
}

func (c client) discover(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	m, err := dhcpv4.NewDiscovery(c.mac, mods...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// request asks for addr, choosing the server sid ("" : none, as when
// renewing with ciaddr instead).
func (c client) request(addr, sid, ciaddr string) *dhcpv4.DHCPv4 {
	return c.message(dhcpv4.MessageTypeRequest, addr, sid, ciaddr)
}

// message is a message of type t asking for the address asked, to the
// server sid, from ciaddr (each "" when not said).
func (c client) message(t dhcpv4.MessageType, asked, sid, ciaddr string) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(t), dhcpv4.WithHwAddr(c.mac)}
	if asked != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(asked))))
	}
	if sid != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(sid))))
	}
	if ciaddr != "" {
		mods = append(mods, dhcpv4.WithClientIP(net.ParseIP(ciaddr)))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// TestLeases plays a LAN's DHCP conversations against the lease table, in
// order, each answer exact: offers of the lowest free address, a request
// acknowledged with the gateway as router and DNS server, an offer taken
// back when the client chose another server, a renewal, a request for a
// taken address refused, a release, a declined address kept out, an
// offer not taken up freed after its hold, INFORM answered without an
// address, an exhausted pool.
func TestLeases(t *testing.T) {
	gw := netip.MustParseAddr("10.77.0.1")
	ls, err := newLeases(DHCP{Pool: netip.MustParsePrefix("10.77.0.252/30"), LeaseTime: 10 * time.Minute}, netip.MustParsePrefix("10.77.0.1/24"), gw)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d := newClient(t, 0xa), newClient(t, 0xb), newClient(t, 0xc), newClient(t, 0xd)
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		at     time.Duration
		req    *dhcpv4.DHCPv4
		want   string // message type and address given; "" no reply
		leased string
	}{
		{"A discovers", 0, a.discover(), "OFFER 10.77.0.252", ""},
		{"A requests it", 1, a.request("10.77.0.252", "10.77.0.1", ""), "ACK 10.77.0.252", "10.77.0.252"},
		{"B discovers", 2, b.discover(), "OFFER 10.77.0.253", ""},
		{"B chooses another server", 3, b.request("10.77.0.253", "10.77.0.9", ""), "", ""},
		{"C is offered what B left", 4, c.discover(), "OFFER 10.77.0.253", ""},
		{"C declines it (in use)", 5, c.message(dhcpv4.MessageTypeDecline, "10.77.0.253", "", ""), "", ""},
		{"C is offered the next (.255 is the broadcast address)", 6, c.discover(), "OFFER 10.77.0.254", ""},
		{"A renews", 7, a.request("", "", "10.77.0.252"), "ACK 10.77.0.252", "10.77.0.252"},
		{"D asks for A's address", 8, d.request("10.77.0.252", "10.77.0.1", ""), "NAK", ""},
		{"A releases", 9, a.message(dhcpv4.MessageTypeRelease, "", "", "10.77.0.252"), "", ""},
		{"D asks for it again", 10, d.request("10.77.0.252", "10.77.0.1", ""), "ACK 10.77.0.252", "10.77.0.252"},
		{"D informs", 11, d.message(dhcpv4.MessageTypeInform, "", "", "10.77.0.252"), "ACK 0.0.0.0", ""},
		{"B finds the pool exhausted while C's offer holds", 30 * time.Second, b.discover(), "", ""},
		{"C's offer not taken up is freed after its hold", time.Minute + 10, b.discover(), "OFFER 10.77.0.254", ""},
		{"D renews", 5 * time.Minute, d.request("", "", "10.77.0.252"), "ACK 10.77.0.252", "10.77.0.252"},
		{"the declined address is back after a lease's time", 11 * time.Minute, c.discover(), "OFFER 10.77.0.253", ""},
	}
	for _, s := range steps {
		resp, leased, err := ls.reply(s.req, t0.Add(s.at))
		var got string
		switch {
		case errors.Is(err, errNoReply):
		case err != nil && s.want == "":
			// The pool is exhausted: no answer, said in the log.
			if err.Error() != "the pool is exhausted" {
				t.Errorf("%s: %v", s.name, err)
			}
		case err != nil:
			t.Fatalf("%s: %v", s.name, err)
		default:
			got = resp.MessageType().String()
			if resp.MessageType() != dhcpv4.MessageTypeNak {
				got += " " + resp.YourIPAddr.String()
				if !resp.Router()[0].Equal(net.IP(gw.AsSlice())) || !resp.DNS()[0].Equal(net.IP(gw.AsSlice())) || resp.SubnetMask().String() != "ffffff00" {
					t.Errorf("%s: router %v, DNS %v, mask %v", s.name, resp.Router(), resp.DNS(), resp.SubnetMask())
				}
			}
			if !resp.ServerIdentifier().Equal(net.IP(gw.AsSlice())) || resp.TransactionID != s.req.TransactionID || resp.ClientHWAddr.String() != s.req.ClientHWAddr.String() {
				t.Errorf("%s: server %v, xid %v, chaddr %v", s.name, resp.ServerIdentifier(), resp.TransactionID, resp.ClientHWAddr)
			}
			if lt := resp.IPAddressLeaseTime(0); resp.YourIPAddr != nil && !resp.YourIPAddr.IsUnspecified() && lt != 10*time.Minute {
				t.Errorf("%s: lease time %v", s.name, lt)
			}
		}
		got = strings.ToUpper(strings.TrimSpace(got))
		if got != s.want {
			t.Errorf("%s: %q, want %q", s.name, got, s.want)
		}
		var l string
		if leased.IsValid() {
			l = leased.String()
		}
		if l != s.leased {
			t.Errorf("%s: leased %q, want %q", s.name, l, s.leased)
		}
	}
	if len(ls.byAddr) > 4 || len(ls.byMAC) > 4 {
		t.Errorf("%d leases by address, %d by client: more than the pool holds", len(ls.byAddr), len(ls.byMAC))
	}
}

// TestLeasesWholeSubnet: with the LAN's whole subnet as the pool, the
// network address and the gateway's own are never offered.
func TestLeasesWholeSubnet(t *testing.T) {
	ls, err := newLeases(DHCP{Pool: netip.MustParsePrefix("192.168.77.0/24")}, netip.MustParsePrefix("192.168.77.1/24"), netip.MustParseAddr("192.168.77.1"))
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := ls.reply(newClient(t, 1).discover(), time.Now())
	if err != nil || resp.YourIPAddr.String() != "192.168.77.2" || resp.IPAddressLeaseTime(0) != DefaultLeaseTime {
		t.Errorf("offer %v, %v", resp, err)
	}
	for _, a := range []string{"192.168.77.0", "192.168.77.1", "192.168.77.255", "192.168.78.1"} {
		if ls.usable(netip.MustParseAddr(a)) {
			t.Errorf("%s is usable", a)
		}
	}
}
