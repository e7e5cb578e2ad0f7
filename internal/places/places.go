// Package places answers "what is near this point" in the format of Google
// Places Nearby Search (legacy): a JSON object with html_attributions, results,
// status and, when present, next_page_token.
//
// Every provider (the legacy Google API, Places API (New) translated to the
// legacy shape, and the built-in offline data) implements Provider. A Provider
// returns the whole JSON body with results already cut to Query.Limit; the
// server only folds its newlines and frames it.
//
// The remote providers, Google and GoogleNew, share pooled connections and run
// behind a Guard that joins identical lookups, caches, rate-limits and times
// out upstream requests; NewRemote builds them. Instrument reports every
// lookup of any provider to an Observer, for metrics. The API
// key never appears in an error or a log line. Google passes the legacy body
// through byte for byte. GoogleNew asks for GoogleNewFieldMask, which Google
// bills as "Nearby Search Enterprise" (rating, userRatingCount, priceLevel and
// currentOpeningHours are Enterprise fields; the rest, photos included, are
// "Nearby Search Pro").
package places

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Query is one nearby search.
type Query struct {
	Lat, Lng     float64 // centre, decimal degrees
	RadiusMeters float64 // > 0
	Limit        int     // 1..20: the most results to return
}

// Provider finds places near a point.
type Provider interface {
	// Nearby returns a Nearby Search JSON body with at most q.Limit results.
	// A failed lookup returns an error; ErrorBody turns it into a body a client
	// can still read.
	Nearby(ctx context.Context, q Query) ([]byte, error)
}

// Appender is a Provider that can also append its answer to a buffer the
// caller reuses, sparing an allocation per lookup. AppendNearby returns dst
// extended by the body Nearby would return, or dst unchanged and an error.
type Appender interface {
	Provider
	AppendNearby(ctx context.Context, dst []byte, q Query) ([]byte, error)
}

// Status values of a Nearby Search answer.
const (
	StatusOK             = "OK"
	StatusZeroResults    = "ZERO_RESULTS"
	StatusInvalidRequest = "INVALID_REQUEST"
	StatusRequestDenied  = "REQUEST_DENIED"
	StatusOverQueryLimit = "OVER_QUERY_LIMIT"
	StatusUnknownError   = "UNKNOWN_ERROR"
)

// Error is a failed lookup with the Nearby Search status it maps to.
type Error struct {
	Status  string // one of the Status constants
	Message string
}

func (e *Error) Error() string { return "places: " + e.Status + ": " + e.Message }

// ErrorBody renders err as a Nearby Search answer with no results, a status
// and an error_message. Errors that are not *Error (timeouts, refused
// connections) become UNKNOWN_ERROR.
func ErrorBody(err error) []byte {
	status, msg := StatusUnknownError, err.Error()
	var pe *Error
	switch {
	case errors.As(err, &pe):
		status, msg = pe.Status, pe.Message
	case errors.Is(err, context.DeadlineExceeded):
		msg = "places: upstream did not answer in time"
	}
	body, mErr := json.MarshalIndent(struct {
		HTMLAttributions []string `json:"html_attributions"`
		Results          []any    `json:"results"`
		Status           string   `json:"status"`
		ErrorMessage     string   `json:"error_message"`
	}{[]string{}, []any{}, status, msg}, "", "   ")
	if mErr != nil {
		panic(fmt.Sprintf("places: marshal error body: %v", mErr)) // only strings: cannot fail
	}
	return body
}
