package places

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// keyParam is the query parameter that carries the legacy API's key.
const keyParam = "key"

// Google asks Google Places Nearby Search (legacy) and passes its answer on
// byte for byte, with only the results array cut to the query's limit.
type Google struct {
	url    string
	key    string
	client *http.Client
}

// NewGoogle returns a provider that sends GET requests to rawURL with key.
// A nil client gets a pooled client of its own; pass one client to every
// provider that should share connections.
func NewGoogle(rawURL, key string, client *http.Client) *Google {
	if client == nil {
		client = newHTTPClient()
	}
	return &Google{url: rawURL, key: key, client: client}
}

// Nearby implements Provider. An answer whose status is not OK (such as
// REQUEST_DENIED with an error_message) is still a Nearby Search body and is
// returned as such; HTTP failures and bodies that are not JSON objects are
// an *Error.
func (g *Google) Nearby(ctx context.Context, q Query) ([]byte, error) {
	u, err := url.Parse(g.url)
	if err != nil {
		return nil, fail(StatusUnknownError, "bad upstream URL", redactURL(err))
	}
	params := u.Query()
	params.Set("location", formatCoord(q.Lat)+","+formatCoord(q.Lng))
	params.Set("radius", formatCoord(q.RadiusMeters))
	if g.key != "" {
		params.Set(keyParam, g.key)
	}
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, requestFailed(ctx, err)
	}
	req.Header.Set("Accept", "application/json")
	body, err := send(g.client, req)
	if err != nil {
		return nil, err
	}
	cut, err := cutResults(body, q.Limit)
	if err != nil {
		return nil, fail(StatusUnknownError, "upstream answer is not a JSON object", err)
	}
	return cut, nil
}

// formatCoord writes f in the fewest digits that read back as f, without an
// exponent: 34.06893, -118.445127, 10000.
func formatCoord(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
