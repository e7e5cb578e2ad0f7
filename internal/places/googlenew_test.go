package places

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// uclaQuery is a lookup near UCLA, as in the seed paper.
var uclaQuery = Query{Lat: 34.06893, Lng: -118.445127, RadiusMeters: 10000, Limit: 5}

// stubServer starts an HTTP server that answers with handle and is closed
// when the test ends.
func stubServer(t *testing.T, handle http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handle)
	t.Cleanup(srv.Close)
	return srv
}

// answerWith returns a handler that sends status and body as JSON.
func answerWith(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestGoogleNewRequest(t *testing.T) {
	type seen struct {
		method, path, contentType, key, mask, body string
	}
	got := make(chan seen, 1)
	srv := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Goog-Api-Key"),
			r.Header.Get("X-Goog-FieldMask"), string(body)}
		answerWith(http.StatusOK, `{}`)(w, r)
	})

	p := NewGoogleNew(srv.URL+"/v1/places:searchNearby", "new-key", nil)
	if _, err := p.Nearby(context.Background(), uclaQuery); err != nil {
		t.Fatalf("Nearby: %v", err)
	}
	want := seen{
		method:      http.MethodPost,
		path:        "/v1/places:searchNearby",
		contentType: "application/json",
		key:         "new-key",
		mask: "places.id,places.displayName,places.location,places.viewport,places.shortFormattedAddress," +
			"places.types,places.rating,places.userRatingCount,places.businessStatus," +
			"places.currentOpeningHours.openNow,places.priceLevel,places.plusCode," +
			"places.iconBackgroundColor,places.iconMaskBaseUri,places.photos",
		body: `{"locationRestriction":{"circle":{"center":{"latitude":34.06893,"longitude":-118.445127},"radius":10000}},"maxResultCount":5}`,
	}
	if s := <-got; s != want {
		t.Errorf("request:\n got %+v\nwant %+v", s, want)
	}
}

func TestGoogleNewTranslation(t *testing.T) {
	response, err := os.ReadFile(filepath.Join("testdata", "searchnearby_new.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := stubServer(t, answerWith(http.StatusOK, string(response)))
	p := NewGoogleNew(srv.URL, "k", nil)

	got, err := p.Nearby(context.Background(), Query{Lat: 34.07, Lng: -118.44, RadiusMeters: 500, Limit: 20})
	if err != nil {
		t.Fatalf("Nearby: %v", err)
	}
	golden := filepath.Join("testdata", "searchnearby_legacy.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("translation differs from %s (go test -update rewrites it):\n%s", golden, got)
	}

	got, err = p.Nearby(context.Background(), Query{Lat: 34.07, Lng: -118.44, RadiusMeters: 500, Limit: 2})
	if err != nil {
		t.Fatalf("Nearby: %v", err)
	}
	var cut struct {
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	if err := json.Unmarshal(got, &cut); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if len(cut.Results) != 2 || cut.Results[1].Name != "Dickson Court" {
		t.Errorf("limit 2 kept %+v, want the first two places", cut.Results)
	}
}

func TestGoogleNewZeroResults(t *testing.T) {
	const want = `{
   "html_attributions": [],
   "results": [],
   "status": "ZERO_RESULTS"
}`
	for _, body := range []string{`{}`, `{"places": []}`, "{\n}\n"} {
		srv := stubServer(t, answerWith(http.StatusOK, body))
		got, err := NewGoogleNew(srv.URL, "k", nil).Nearby(context.Background(), uclaQuery)
		if err != nil {
			t.Fatalf("%s: Nearby: %v", body, err)
		}
		if string(got) != want {
			t.Errorf("%s: got\n%s\nwant\n%s", body, got, want)
		}
	}
}

// googleError is an error body as Google APIs send it.
func googleError(code int, status, message string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": message, "status": status,
		"details": []any{map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "X", "domain": "googleapis.com"}},
	}})
	return string(b)
}

func TestGoogleNewHTTPErrors(t *testing.T) {
	tests := []struct {
		code        int
		body        string
		wantStatus  string
		wantMessage string
	}{
		{400, googleError(400, "INVALID_ARGUMENT", "Invalid value at 'location_restriction.circle.radius' (TYPE_DOUBLE), 70000"),
			StatusInvalidRequest, "Invalid value at 'location_restriction.circle.radius' (TYPE_DOUBLE), 70000"},
		{401, googleError(401, "UNAUTHENTICATED", "Request is missing required authentication credential."),
			StatusRequestDenied, "Request is missing required authentication credential."},
		{403, googleError(403, "PERMISSION_DENIED", "Places API (New) has not been used in project 42 before or it is disabled."),
			StatusRequestDenied, "Places API (New) has not been used in project 42 before or it is disabled."},
		{429, googleError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'SearchNearby requests'."),
			StatusOverQueryLimit, "Quota exceeded for quota metric 'SearchNearby requests'."},
		{500, googleError(500, "INTERNAL", "Internal error encountered."),
			StatusUnknownError, "Internal error encountered."},
		{503, googleError(503, "UNAVAILABLE", "The service is currently unavailable."),
			StatusUnknownError, "The service is currently unavailable."},
		{502, "<html><body>Bad Gateway</body></html>",
			StatusUnknownError, "upstream answered HTTP 502 Bad Gateway"},
		{200, `{"places": [`, StatusUnknownError, "upstream answered with invalid JSON"},
		{200, `{"places": {"id": 1}}`, StatusUnknownError, "upstream answer does not fit Places API (New)"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			srv := stubServer(t, answerWith(tt.code, tt.body))
			body, err := NewGoogleNew(srv.URL, "k", nil).Nearby(context.Background(), uclaQuery)
			if err == nil {
				t.Fatalf("Nearby = %s, want an error", body)
			}
			assertPlacesError(t, err, tt.wantStatus, tt.wantMessage)
			var rendered struct {
				Status       string `json:"status"`
				ErrorMessage string `json:"error_message"`
			}
			if err := json.Unmarshal(ErrorBody(err), &rendered); err != nil {
				t.Fatal(err)
			}
			if rendered.Status != tt.wantStatus || rendered.ErrorMessage != tt.wantMessage {
				t.Errorf("ErrorBody = %+v, want %s %q", rendered, tt.wantStatus, tt.wantMessage)
			}
		})
	}
}

func TestGoogleNewTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewGoogleNew(srv.URL, "k", nil).Nearby(ctx, uclaQuery)
	assertPlacesError(t, err, StatusUnknownError, "upstream did not answer in time")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
}

// assertPlacesError checks that err is an *Error with status and message.
func assertPlacesError(t *testing.T, err error, status, message string) {
	t.Helper()
	pe, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *places.Error", err, err)
	}
	if pe.Status != status || pe.Message != message {
		t.Errorf("error = %s %q, want %s %q", pe.Status, pe.Message, status, message)
	}
	if !strings.HasPrefix(err.Error(), "places: ") {
		t.Errorf("error text %q lacks the places: prefix", err)
	}
}

func TestGoogleNewRejectsNaN(t *testing.T) {
	srv := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("a query that cannot be encoded reached the upstream")
	})
	q := uclaQuery
	q.Lat = math.NaN()
	_, err := NewGoogleNew(srv.URL, "k", nil).Nearby(context.Background(), q)
	assertPlacesError(t, err, StatusInvalidRequest, "query is not a finite location and radius")
}
