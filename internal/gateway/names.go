package gateway

import (
	"net/netip"
	"sync"
)

// names remembers, for each client, the name that DNS answers gave each
// address, so that a connection carrying no SNI or Host is named as the
// client knew its server. It holds at most max entries; the oldest go
// first (a device resolves the names it uses again as their answers
// expire, which refreshes them).
type names struct {
	mu    sync.Mutex
	max   int
	m     map[nameKey]string
	order []nameKey // ring of keys in the order they were added
	next  int
}

type nameKey struct{ client, addr netip.Addr }

// maxNames bounds the map: a device provisioning resolves a few hundred
// names; a LAN of devices some thousands.
const maxNames = 1 << 16

func newNames(max int) *names {
	return &names{max: max, m: make(map[nameKey]string)}
}

// learn records that client was told addr for name.
func (n *names) learn(client, addr netip.Addr, name string) {
	k := nameKey{client.Unmap(), addr.Unmap()}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[k]; ok {
		n.m[k] = name
		return
	}
	if len(n.order) < n.max {
		n.order = append(n.order, k)
	} else {
		delete(n.m, n.order[n.next])
		n.order[n.next] = k
		n.next = (n.next + 1) % n.max
	}
	n.m[k] = name
}

// name returns the name client was told for addr, or "".
func (n *names) name(client, addr netip.Addr) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[nameKey{client.Unmap(), addr.Unmap()}]
}

// len is how many entries the map holds.
func (n *names) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.m)
}
