package catalog

import (
	"bytes"
	"fmt"
	"strings"
)

// regionSuffixes are the Intune service domains whose hosts name the
// tenant's scale unit (ASU) in a label: fef.msua01.manage.microsoft.com.
var regionSuffixes = [][]byte{
	[]byte(".manage.microsoft.com"),
	[]byte(".manage.microsoft.us"),
	[]byte(".manage.microsoftonline.cn"),
	[]byte(".manage.microsoft.cn"),
}

// region returns the scale-unit token in an Intune host name, upper-cased
// ("MSUA01", "AMSUA0602", "CNPASU01"), or "".
func region(name []byte) string {
	var rest []byte
	for _, s := range regionSuffixes {
		if bytes.HasSuffix(name, s) {
			rest = name[:len(name)-len(s)]
			break
		}
	}
	for len(rest) > 0 {
		label := rest
		if i := indexByte(rest, '.'); i >= 0 {
			label, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
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
func isRegionToken(label []byte) bool {
	var rest []byte
	switch {
	case bytes.HasPrefix(label, []byte("msu")):
		rest = label[3:]
	case bytes.HasPrefix(label, []byte("amsu")), bytes.HasPrefix(label, []byte("emsu")):
		rest = label[4:]
	case bytes.HasPrefix(label, []byte("cnpasu")):
		return digits(label[6:], 2, 4)
	default:
		return false
	}
	return len(rest) >= 3 && rest[0] >= 'a' && rest[0] <= 'z' && digits(rest[1:], 2, 4)
}

func digits(b []byte, min, max int) bool {
	if len(b) < min || len(b) > max {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
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
