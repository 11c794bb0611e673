package catalog

import (
	"fmt"
	"strings"
)

// regionSuffixes are the Intune service domains whose hosts name the
// tenant's scale unit (ASU) in a label: fef.msua01.manage.microsoft.com.
var regionSuffixes = []string{
	".manage.microsoft.com",
	".manage.microsoft.us",
	".manage.microsoftonline.cn",
	".manage.microsoft.cn",
}

// region returns the scale-unit token in an Intune host name, upper-cased
// ("MSUA01", "AMSUA0602", "CNPASU01"), or "".
func region[S string | []byte](name S) string {
	var rest S
	for _, s := range regionSuffixes {
		if len(name) >= len(s) && string(name[len(name)-len(s):]) == s {
			rest = name[:len(name)-len(s)]
			break
		}
	}
	for len(rest) > 0 {
		label := rest
		if i := indexByte(rest, '.'); i >= 0 {
			label, rest = rest[:i], rest[i+1:]
		} else {
			rest = rest[:0]
		}
		if !isRegionToken(label) {
			continue
		}
		if r, ok := knownRegions[string(label)]; ok {
			return r
		}
		return strings.ToUpper(string(label))
	}
	return ""
}

// isRegionToken reports whether label is a scale-unit token: "msu" or
// "amsu" (also "emsu", unverified but asked about) plus a region letter and
// 2 to 4 digits, or the 21Vianet form "cnpasu" plus digits.
func isRegionToken[S string | []byte](label S) bool {
	var rest S
	switch {
	case hasPrefix(label, "msu"):
		rest = label[3:]
	case hasPrefix(label, "amsu"), hasPrefix(label, "emsu"):
		rest = label[4:]
	case hasPrefix(label, "cnpasu"):
		return digits(label[6:], 2, 4)
	default:
		return false
	}
	return len(rest) >= 3 && rest[0] >= 'a' && rest[0] <= 'z' && digits(rest[1:], 2, 4)
}

func hasPrefix[S string | []byte](s S, prefix string) bool {
	return len(s) >= len(prefix) && string(s[:len(prefix)]) == prefix
}

func digits[S string | []byte](b S, min, max int) bool {
	if len(b) < min || len(b) > max {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// knownRegions holds the upper-case form of the plausible scale-unit
// tokens, so that Lookup need not allocate for them. It is built once and
// only read afterwards.
var knownRegions = func() map[string]string {
	m := map[string]string{}
	put := func(s string) { m[s] = strings.ToUpper(s) }
	for _, letter := range "abcd" {
		for n := 1; n <= 20; n++ {
			put(fmt.Sprintf("msu%c%02d", letter, n))
			for k := 1; k <= 9; k++ {
				put(fmt.Sprintf("amsu%c%02d%02d", letter, n, k))
				put(fmt.Sprintf("emsu%c%02d%02d", letter, n, k))
			}
		}
	}
	for n := 1; n <= 9; n++ {
		put(fmt.Sprintf("cnpasu%02d", n))
	}
	return m
}()
