package places

import (
	"cmp"
	"fmt"
	"log/slog"

	"github.com/herd-dev/herd/internal/config"
)

// NewRemote builds the remote provider that cfg.Provider names (google or
// google-new) with key, wrapped in a Guard tuned by cfg's timeout, cache_ttl,
// rate_limit and rate_burst. The offline provider is built elsewhere, so
// NewRemote refuses it. An empty key still builds the provider, whose
// requests Google will deny; NewRemote warns about it once.
func NewRemote(cfg config.Places, key string, logger *slog.Logger) (Provider, error) {
	logger = cmp.Or(logger, slog.New(slog.DiscardHandler))
	client := newHTTPClient()
	var p Provider
	switch cfg.Provider {
	case config.ProviderGoogle:
		p = NewGoogle(cmp.Or(cfg.Google.URL, config.DefaultGoogleURL), key, client)
	case config.ProviderGoogleNew:
		p = NewGoogleNew(cmp.Or(cfg.GoogleNew.URL, config.DefaultGoogleNewURL), key, client)
	default:
		return nil, fmt.Errorf("places: provider %q is not a remote provider", cfg.Provider)
	}
	if key == "" {
		logger.Warn("places: no API key; Google will deny every request",
			"provider", cfg.Provider, "env", config.EnvPlacesAPIKey)
	}
	return NewGuard(p, GuardOptions{
		Name:      cfg.Provider,
		Timeout:   cfg.Timeout.D(),
		CacheTTL:  cfg.CacheTTL.D(),
		RateLimit: cfg.RateLimit,
		RateBurst: cfg.RateBurst,
		Logger:    logger,
	}), nil
}
