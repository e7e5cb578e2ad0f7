package places

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

func TestGoogleRequest(t *testing.T) {
	tests := []struct {
		name                  string
		q                     Query
		key                   string
		wantLocation, wantRad string
		wantKey               []string
		wantBody              string
	}{
		{"seed example", Query{Lat: 34.06893, Lng: -118.445127, RadiusMeters: 10000, Limit: 2},
			"legacy-key", "34.06893,-118.445127", "10000", []string{"legacy-key"}, sampleLegacyCut2},
		{"fractions and signs", Query{Lat: -33.8670522, Lng: 151.1957362, RadiusMeters: 1500.5, Limit: 1},
			"k", "-33.8670522,151.1957362", "1500.5", []string{"k"}, sampleLegacyCut1},
		{"no key", Query{Lat: 0, Lng: 0.5, RadiusMeters: 50000, Limit: 20},
			"", "0,0.5", "50000", nil, sampleLegacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan url.Values, 1)
			srv := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/maps/api/place/nearbysearch/json" {
					t.Errorf("request %s %s, want GET of the configured path", r.Method, r.URL.Path)
				}
				got <- r.URL.Query()
				answerWith(http.StatusOK, sampleLegacy)(w, r)
			})
			body, err := NewGoogle(srv.URL+"/maps/api/place/nearbysearch/json", tt.key, nil).Nearby(context.Background(), tt.q)
			if err != nil {
				t.Fatalf("Nearby: %v", err)
			}
			params := <-got
			if params.Get("location") != tt.wantLocation || params.Get("radius") != tt.wantRad {
				t.Errorf("location=%q radius=%q, want %q and %q", params.Get("location"), params.Get("radius"), tt.wantLocation, tt.wantRad)
			}
			if k := params["key"]; len(k) != len(tt.wantKey) || (len(k) == 1 && k[0] != tt.wantKey[0]) {
				t.Errorf("key = %q, want %q", k, tt.wantKey)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body =\n%s\nwant\n%s", body, tt.wantBody)
			}
		})
	}
}

func TestGoogleAnswers(t *testing.T) {
	const denied = `{
   "error_message" : "The provided API key is invalid. ",
   "html_attributions" : [],
   "results" : [],
   "status" : "REQUEST_DENIED"
}`
	tests := []struct {
		name        string
		handle      http.HandlerFunc
		wantBody    string // when the lookup succeeds
		wantStatus  string // when it fails
		wantMessage string
	}{
		{name: "denied in the body is an answer", handle: answerWith(http.StatusOK, denied), wantBody: denied},
		{name: "403", handle: answerWith(http.StatusForbidden, "<html>Forbidden</html>"),
			wantStatus: StatusRequestDenied, wantMessage: "upstream answered HTTP 403 Forbidden"},
		{name: "400", handle: answerWith(http.StatusBadRequest, ""),
			wantStatus: StatusInvalidRequest, wantMessage: "upstream answered HTTP 400 Bad Request"},
		{name: "429", handle: answerWith(http.StatusTooManyRequests, `{"error_message":"slow down"}`),
			wantStatus: StatusOverQueryLimit, wantMessage: "slow down"},
		{name: "500", handle: answerWith(http.StatusInternalServerError, "oops"),
			wantStatus: StatusUnknownError, wantMessage: "upstream answered HTTP 500 Internal Server Error"},
		{name: "invalid JSON", handle: answerWith(http.StatusOK, `{"results": [`),
			wantStatus: StatusUnknownError, wantMessage: "upstream answered with invalid JSON"},
		{name: "not an object", handle: answerWith(http.StatusOK, `[{"results": []}]`),
			wantStatus: StatusUnknownError, wantMessage: "upstream answer is not a JSON object"},
		{name: "redirect not followed", handle: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
		}, wantStatus: StatusUnknownError, wantMessage: "upstream answered HTTP 302 Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := stubServer(t, tt.handle)
			body, err := NewGoogle(srv.URL, "k", nil).Nearby(context.Background(), uclaQuery)
			if tt.wantStatus == "" {
				if err != nil || string(body) != tt.wantBody {
					t.Fatalf("Nearby = %s, %v; want the body as sent", body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Nearby = %s, want an error", body)
			}
			assertPlacesError(t, err, tt.wantStatus, tt.wantMessage)
		})
	}
}

func TestGoogleReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(answerWith(http.StatusOK, sampleLegacy))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	g := NewGoogle(srv.URL, "k", nil)
	for range 10 {
		if _, err := g.Nearby(context.Background(), uclaQuery); err != nil {
			t.Fatalf("Nearby: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 lookups opened %d connections, want 1", n)
	}
}
