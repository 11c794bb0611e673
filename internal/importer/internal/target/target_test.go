package target

import (
	"testing"

	"github.com/pilotwire/pilotwire/internal/flow"
)

func TestSetURL(t *testing.T) {
	tests := []struct {
		raw, scheme, host string
		port              int
		bad               bool
	}{
		{"https://Login.Live.com/ppsecure/deviceaddcredential.srf", "https", "login.live.com", 443, false},
		{"http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab", "http", "ctldl.windowsupdate.com", 80, false},
		{"wss://client.wns.windows.com:8443/x", "wss", "client.wns.windows.com", 8443, false},
		{"http://[2001:db8::1]/", "http", "2001:db8::1", 80, false},
		{"ftp://files.example/x", "ftp", "files.example", 0, false},
		{"/relative/path", "", "", 0, true},
		{"http://%zz/", "", "", 0, true},
	}
	for _, tt := range tests {
		var f flow.Flow
		err := SetURL(&f, tt.raw)
		if (err != nil) != tt.bad {
			t.Errorf("SetURL(%q) error = %v, want error %v", tt.raw, err, tt.bad)
			continue
		}
		if !tt.bad && (f.Scheme != tt.scheme || f.Host != tt.host || f.Port != tt.port || f.URL != tt.raw) {
			t.Errorf("SetURL(%q) = %s %s %d %s", tt.raw, f.Scheme, f.Host, f.Port, f.URL)
		}
	}
}

func TestSetConnect(t *testing.T) {
	tests := []struct {
		authority, host string
		port            int
	}{
		{"login.live.com:443", "login.live.com", 443},
		{"https://EU.Manage.Microsoft.com:443/", "eu.manage.microsoft.com", 443},
		{"[2001:db8::1]:8443", "2001:db8::1", 8443},
		{"no-port.example", "no-port.example", 443},
	}
	for _, tt := range tests {
		var f flow.Flow
		SetConnect(&f, tt.authority)
		if f.Kind != flow.KindConnect || f.Host != tt.host || f.Port != tt.port {
			t.Errorf("SetConnect(%q) = %s %s:%d", tt.authority, f.Kind, f.Host, f.Port)
		}
	}
}
