package places

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// cutResults returns body with its top-level "results" array cut to its
// first limit elements. Every other byte stays as it was: unknown fields, key
// order, white space and the spacing before the array's closing bracket. A
// body without a results array comes back unchanged. body must be valid JSON.
func cutResults(body []byte, limit int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("places: read answer: %w", err)
	} else if tok != json.Delim('{') {
		return nil, errors.New("places: answer is not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("places: read answer: %w", err)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("places: read answer: %w", err)
		}
		if key != "results" || value[0] != '[' {
			continue
		}
		keep, last, err := arrayCut(value, limit)
		if err != nil {
			return nil, err
		}
		if keep == last {
			return body, nil
		}
		// value holds the array's exact bytes, and it ends where the
		// decoder stands.
		start := int(dec.InputOffset()) - len(value)
		return append(body[:start+keep:start+keep], body[start+last:]...), nil
	}
	return body, nil
}

// arrayCut reports which bytes of the JSON array to drop so that limit
// elements remain: those in [keep, last), from the end of the last element
// kept to the end of the array's last element.
func arrayCut(array []byte, limit int) (keep, last int, err error) {
	dec := json.NewDecoder(bytes.NewReader(array))
	if _, err := dec.Token(); err != nil { // the opening '['
		return 0, 0, fmt.Errorf("places: read results: %w", err)
	}
	keep = int(dec.InputOffset())
	last = keep
	var skip json.RawMessage
	for n := 0; dec.More(); n++ {
		if err := dec.Decode(&skip); err != nil {
			return 0, 0, fmt.Errorf("places: read results: %w", err)
		}
		last = int(dec.InputOffset())
		if n < limit {
			keep = last
		}
	}
	return keep, last, nil
}
