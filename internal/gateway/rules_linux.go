package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The forwarding switches (one of each per network namespace): IPv4's,
// and IPv6's for every interface at once.
const (
	forwardingFile  = "/proc/sys/net/ipv4/ip_forward"
	forwardingFile6 = "/proc/sys/net/ipv6/conf/all/forwarding"
)

// forwardingComment starts the masquerade rule's comment, which keeps the
// forwarding values to restore: "… ip_forward was 0", followed by
// forwardingComment6 and IPv6's value when the gateway switched that on
// too.
const (
	forwardingComment  = "pilotwire gateway; net.ipv4.ip_forward was "
	forwardingComment6 = "; net.ipv6.conf.all.forwarding was "
)

// ErrNeedNetAdmin is returned when the process may not change the
// machine's firewall or forwarding.
var ErrNeedNetAdmin = errors.New("gateway: needs CAP_NET_ADMIN to change the firewall and forwarding: run it as root (sudo)")

// rule is one rule of the table: its text as nft lists it, and its
// expressions as installed.
type rule struct {
	text  string
	exprs []expr.Any
	udata []byte
}

// chainSpec is a chain of the table with its rules.
type chainSpec struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	head     string // nft's text for type, hook and priority
	rules    []rule
}

// plan is the table for p: DNS from the LAN to the forwarder, the LAN's
// other TCP (to addresses not of this machine) to the transparent
// listener, the rest masqueraded out of the WAN (with DropQUIC, but for
// the LAN's UDP to port 443). The rules hold for IPv4
// and IPv6 alike (a redirect goes to the LAN interface's own address of
// the packet's family, where the listeners are).
func (p Plan) plan() []chainSpec {
	iif, oif := cmpName(expr.MetaKeyIIFNAME, p.LAN), cmpName(expr.MetaKeyOIFNAME, p.WAN)
	l4 := func(proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
	}
	dport := func(port uint16) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		}
	}
	redirect := func(port uint16) []expr.Any {
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
			&expr.Redir{RegisterProtoMin: 1},
		}
	}
	notLocal := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	comment := p.comment()
	chains := []chainSpec{{
		name:     "prerouting",
		typ:      nftables.ChainTypeNAT,
		hook:     nftables.ChainHookPrerouting,
		priority: nftables.ChainPriorityNATDest,
		head:     "type nat hook prerouting priority dstnat; policy accept;",
		rules: []rule{{
			text:  fmt.Sprintf("iifname %q udp dport 53 redirect to :%d", p.LAN, p.DNSPort),
			exprs: cat(iif, l4(unix.IPPROTO_UDP), dport(53), redirect(p.DNSPort)),
		}, {
			text:  fmt.Sprintf("iifname %q tcp dport 53 redirect to :%d", p.LAN, p.DNSPort),
			exprs: cat(iif, l4(unix.IPPROTO_TCP), dport(53), redirect(p.DNSPort)),
		}, {
			text:  fmt.Sprintf("iifname %q fib daddr type != local meta l4proto tcp redirect to :%d", p.LAN, p.TCPPort),
			exprs: cat(iif, notLocal, l4(unix.IPPROTO_TCP), redirect(p.TCPPort)),
		}},
	}, {
		name:     "postrouting",
		typ:      nftables.ChainTypeNAT,
		hook:     nftables.ChainHookPostrouting,
		priority: nftables.ChainPriorityNATSource,
		head:     "type nat hook postrouting priority srcnat; policy accept;",
		rules: []rule{{
			text:  fmt.Sprintf("iifname %q oifname %q masquerade comment %q", p.LAN, p.WAN, comment),
			exprs: cat(iif, oif, []expr.Any{&expr.Masq{}}),
			udata: userdata.AppendString(nil, userdata.TypeComment, comment),
		}},
	}}
	if p.DropQUIC {
		chains = append(chains, chainSpec{
			name:     "forward",
			typ:      nftables.ChainTypeFilter,
			hook:     nftables.ChainHookForward,
			priority: nftables.ChainPriorityFilter,
			head:     "type filter hook forward priority filter; policy accept;",
			rules: []rule{{
				text:  fmt.Sprintf("iifname %q udp dport 443 drop", p.LAN),
				exprs: cat(iif, l4(unix.IPPROTO_UDP), dport(443), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}),
			}},
		})
	}
	return chains
}

// comment is the masquerade rule's comment: the forwarding values to
// restore.
func (p Plan) comment() string {
	c := forwardingComment + p.Forwarding
	if p.Forwarding6 != "" {
		c += forwardingComment6 + p.Forwarding6
	}
	return c
}

// parseComment reads the forwarding values back from a comment that
// comment wrote ("" where it says nothing).
func parseComment(s string) (fwd, fwd6 string) {
	rest, ok := strings.CutPrefix(s, forwardingComment)
	if !ok {
		return "", ""
	}
	v, v6, has6 := strings.Cut(rest, forwardingComment6)
	if v == "0" || v == "1" {
		fwd = v
	}
	if has6 && (v6 == "0" || v6 == "1") {
		fwd6 = v6
	}
	return fwd, fwd6
}

// cmpName matches an interface name, as nft does: NUL-padded to IFNAMSIZ.
func cmpName(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// Rules is the table the gateway installs for p, in nft's syntax (as
// `nft list table inet pilotwire` shows it).
func Rules(p Plan) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, c := range p.plan() {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\t%s\n", c.name, c.head)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.text)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String(), nil
}

func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// install replaces any table left behind with the plan's, in one
// transaction.
func install(p Plan) error {
	cc, err := nftables.New()
	if err != nil {
		return netlinkErr("nftables", err)
	}
	t := table()
	// Adding then deleting makes the delete succeed whether or not the
	// table exists; both happen in the one batch below.
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)
	for _, c := range p.plan() {
		ch := cc.AddChain(&nftables.Chain{
			Name: c.name, Table: t, Type: c.typ,
			Hooknum: c.hook, Priority: c.priority,
		})
		for _, r := range c.rules {
			cc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs, UserData: r.udata})
		}
	}
	if err := cc.Flush(); err != nil {
		return netlinkErr("installing nftables table inet "+TableName, err)
	}
	return nil
}

// findLeftover looks for the table and reads the forwarding value from
// its masquerade rule's comment.
func findLeftover(cc *nftables.Conn) (Leftover, error) {
	t, err := cc.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Leftover{}, nil
		}
		return Leftover{}, netlinkErr("listing nftables table inet "+TableName, err)
	}
	lo := Leftover{Found: true}
	rules, err := cc.GetRules(t, &nftables.Chain{Name: "postrouting", Table: t})
	if err != nil {
		return lo, nil // no such chain: nothing recorded
	}
	for _, r := range rules {
		if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
			if v, v6 := parseComment(s); v != "" {
				lo.Forwarding, lo.Forwarding6 = v, v6
			}
		}
	}
	return lo, nil
}

// Cleanup removes the table an earlier run left (a killed gateway) and
// restores IPv4 forwarding (and IPv6's, when that run changed it) to the
// values that run found. It reports what it found; no table is not an
// error.
func Cleanup() (Leftover, error) {
	cc, err := nftables.New()
	if err != nil {
		return Leftover{}, netlinkErr("nftables", err)
	}
	lo, err := findLeftover(cc)
	if err != nil || !lo.Found {
		return lo, err
	}
	cc.DelTable(table())
	if err := cc.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return lo, netlinkErr("deleting nftables table inet "+TableName, err)
	}
	if err := restoreForwarding(lo.Forwarding, lo.Forwarding6); err != nil {
		return lo, err
	}
	return lo, nil
}

// restoreForwarding sets IPv4 and IPv6 forwarding back to fwd and fwd6;
// an empty value leaves that one as it is.
func restoreForwarding(fwd, fwd6 string) error {
	var errs []error
	if fwd != "" {
		errs = append(errs, setForwarding(forwardingFile, fwd))
	}
	if fwd6 != "" {
		errs = append(errs, setForwarding(forwardingFile6, fwd6))
	}
	return errors.Join(errs...)
}

// netlinkErr says what failed; lacking the capability is said in one line.
func netlinkErr(what string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return ErrNeedNetAdmin
	}
	return fmt.Errorf("%s: %w", what, err)
}

// forwarding reads a forwarding switch (forwardingFile or
// forwardingFile6): "0" or "1".
func forwarding(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading %s forwarding: %w", family(file), err)
	}
	v := strings.TrimSpace(string(b))
	if v != "0" && v != "1" {
		return "", fmt.Errorf("reading %s forwarding: %s holds %q", family(file), file, v)
	}
	return v, nil
}

func setForwarding(file, v string) error {
	if err := os.WriteFile(file, []byte(v+"\n"), 0o644); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return ErrNeedNetAdmin
		}
		return fmt.Errorf("setting %s forwarding to %s: %w", family(file), v, err)
	}
	return nil
}

func family(file string) string {
	if file == forwardingFile6 {
		return "IPv6"
	}
	return "IPv4"
}
