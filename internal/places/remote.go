package places

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
)

// API names a remote Nearby Search API.
type API int

// The remote APIs.
const (
	// APIGoogle is the legacy Nearby Search (see Google).
	APIGoogle API = iota + 1
	// APIGoogleNew is Places API (New) searchNearby (see GoogleNew).
	APIGoogleNew
)

// RemoteOptions say which remote API NewRemote asks, and how.
type RemoteOptions struct {
	API API
	// URL is the API's endpoint.
	URL string
	// Key is the API key; empty builds a provider whose requests Google
	// will deny.
	Key string
	// Guard tunes the Guard around the provider; its Name names the
	// provider in logs, and its Logger gets the warning about a missing key.
	Guard GuardOptions
}

// NewRemote builds the remote provider that opts name, wrapped in a Guard
// tuned by opts.Guard. Without a key it warns once, in opts.Guard.Logger.
func NewRemote(opts RemoteOptions) (*Guard, error) {
	if opts.URL == "" {
		return nil, errors.New("places: a remote provider needs an upstream URL")
	}
	client := newHTTPClient()
	var p Provider
	switch opts.API {
	case APIGoogle:
		p = NewGoogle(opts.URL, opts.Key, client)
	case APIGoogleNew:
		p = NewGoogleNew(opts.URL, opts.Key, client)
	default:
		return nil, fmt.Errorf("places: unknown remote API %d", opts.API)
	}
	if opts.Key == "" {
		logger := cmp.Or(opts.Guard.Logger, slog.New(slog.DiscardHandler))
		logger.Warn("places: no API key; Google will deny every request", "provider", opts.Guard.Name)
	}
	return NewGuard(p, opts.Guard), nil
}
