// Package jsontok holds the few token-level helpers the streaming JSON
// importers (HAR, net-log) share, so that a huge array is read one element
// at a time instead of decoded whole.
package jsontok

import (
	"encoding/json"
	"fmt"
)

// ExpectDelim reads the next token and fails unless it is want.
func ExpectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v where %q was expected", tok, string(want))
	}
	return nil
}

// ObjectKey reads the next token as an object key.
func ObjectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("found %v where an object key was expected", tok)
	}
	return k, nil
}

// SkipValue consumes the next value token by token, so a large skipped
// value (HAR pages, net-log polledData) is never buffered whole.
func SkipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
