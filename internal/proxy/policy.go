package proxy

import "github.com/pilotwire/pilotwire/internal/flow"

// policyDenies asks the Policy about the target of a CONNECT or a proxied
// HTTP request (not the proxy's own answers: PAC, WPAD, its page), before
// anything is dialled, and returns the rule when it denies it. The rule
// becomes the 403's short body and the flow's Reason, so a person reading
// either knows which line of which list to change.
func (p *Proxy) policyDenies(f *flow.Flow) (string, bool) {
	if p.Policy == nil || (f.Kind != flow.KindConnect && f.Kind != flow.KindHTTP) {
		return "", false
	}
	allowed, rule := p.Policy(f.Host, f.Port)
	if allowed {
		return "", false
	}
	if rule == "" {
		rule = "denied by the proxy's policy"
	}
	return rule, true
}
