package places

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxAnswerBytes bounds an upstream answer. Twenty legacy results with
// photos and attributions take well under 100 KB.
const maxAnswerBytes = 8 << 20

// newHTTPClient returns a client for remote providers. Its transport keeps
// connections to the upstream open between lookups, and it never follows a
// redirect, so the API key is never sent anywhere but the configured URL.
// It sets no overall timeout: each lookup carries its own deadline.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 64
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// send performs req and returns the body of a 2xx answer holding valid
// JSON. Every failure is an *Error (see fail) with the Nearby Search status
// it maps to; its text never holds the API key.
func send(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, requestFailed(req.Context(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	switch {
	case err != nil:
		return nil, requestFailed(req.Context(), err)
	case len(body) > maxAnswerBytes:
		return nil, fail(StatusUnknownError, fmt.Sprintf("upstream answer is larger than %d bytes", maxAnswerBytes), nil)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		httpStatus := "upstream answered HTTP " + resp.Status
		return nil, fail(statusForHTTP(resp.StatusCode), cmp.Or(upstreamMessage(body), httpStatus), errors.New(httpStatus))
	case !json.Valid(body):
		return nil, fail(StatusUnknownError, "upstream answered with invalid JSON", nil)
	}
	return body, nil
}

// statusForHTTP maps an HTTP error status to a Nearby Search status.
func statusForHTTP(code int) string {
	switch code {
	case http.StatusBadRequest:
		return StatusInvalidRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return StatusRequestDenied
	case http.StatusTooManyRequests:
		return StatusOverQueryLimit
	default:
		return StatusUnknownError
	}
}

// upstreamMessage returns the explanation in a Google error body, or "".
// Places API (New) sends {"error":{"code":403,"message":"...","status":"..."}};
// the legacy API sends {"error_message":"...", ...}.
func upstreamMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		ErrorMessage string `json:"error_message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return cmp.Or(e.Error.Message, e.ErrorMessage)
}

// fail returns an *Error with status and message. A non-nil cause is
// wrapped alongside it, so errors.As still finds the *Error (and ErrorBody
// shows only message) while errors.Is and logs see the cause.
func fail(status, message string, cause error) error {
	e := &Error{Status: status, Message: message}
	if cause == nil {
		return e
	}
	return fmt.Errorf("%w: %w", e, cause)
}

// requestFailed describes an error from building or sending a request, or
// reading its answer, as UNKNOWN_ERROR.
func requestFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return interrupted(ctx.Err())
	}
	return fail(StatusUnknownError, "upstream request failed", redactURL(err))
}

// interrupted describes a lookup whose context ended before an answer came.
func interrupted(ctxErr error) error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return fail(StatusUnknownError, "upstream did not answer in time", ctxErr)
	}
	return fail(StatusUnknownError, "lookup canceled", ctxErr)
}

// redactURL removes the API key from the URL that a *url.Error (what
// http.Client returns) repeats in its text. It edits err in place.
func redactURL(err error) error {
	ue, ok := errors.AsType[*url.Error](err)
	if !ok {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		ue.URL = "(unparsable URL)"
		return err
	}
	if q := u.Query(); q.Has(keyParam) {
		q.Set(keyParam, "REDACTED")
		u.RawQuery = q.Encode()
	}
	ue.URL = u.Redacted()
	return err
}

// statusOf returns the Nearby Search status an error maps to.
func statusOf(err error) string {
	if pe, ok := errors.AsType[*Error](err); ok {
		return pe.Status
	}
	return StatusUnknownError
}
