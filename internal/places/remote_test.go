package places

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const secretKey = "AIzaSy-very-secret-test-key"

// logBuffer collects log lines from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func TestNewRemote(t *testing.T) {
	tests := []struct {
		api      API
		url      string
		wantType string
		wantErr  string
	}{
		{APIGoogle, "http://127.0.0.1:1/json", "*places.Google", ""},
		{APIGoogleNew, "http://127.0.0.1:1/v1", "*places.GoogleNew", ""},
		{0, "http://127.0.0.1:1/json", "", "places: unknown remote API 0"},
		{APIGoogle, "", "", "places: a remote provider needs an upstream URL"},
	}
	for _, tt := range tests {
		g, err := NewRemote(RemoteOptions{API: tt.api, URL: tt.url, Key: "k", Guard: GuardOptions{Name: "remote"}})
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NewRemote(%d, %q) = %v, %v; want error %q", tt.api, tt.url, g, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("NewRemote(%d, %q): %v", tt.api, tt.url, err)
		}
		if got := typeName(g.provider); got != tt.wantType || g.name != "remote" {
			t.Errorf("NewRemote(%d) guards %s named %q; want %s named remote", tt.api, got, g.name, tt.wantType)
		}
	}
}

func typeName(p Provider) string {
	switch p.(type) {
	case *Google:
		return "*places.Google"
	case *GoogleNew:
		return "*places.GoogleNew"
	}
	return "other"
}

func TestNewRemoteTuning(t *testing.T) {
	const url = "http://127.0.0.1:1/json"
	g, err := NewRemote(RemoteOptions{API: APIGoogle, URL: url, Key: "k", Guard: GuardOptions{
		Timeout: 3 * time.Second, CacheTTL: time.Minute, RateLimit: 5, RateBurst: 7,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if g.timeout != 3*time.Second || g.cache == nil || g.cache.ttl != time.Minute ||
		g.limiter == nil || g.limiter.Limit() != 5 || g.limiter.Burst() != 7 {
		t.Errorf("guard timeout %v, cache %+v, limiter %+v: not as configured", g.timeout, g.cache, g.limiter)
	}
	if u := g.provider.(*Google).url; u != url {
		t.Errorf("url = %q, want %q", u, url)
	}

	g, err = NewRemote(RemoteOptions{API: APIGoogleNew, URL: url, Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if g.timeout != DefaultTimeout || g.cache != nil || g.limiter != nil {
		t.Errorf("zero options: timeout %v, cache %v, limiter %v; want defaults, no cache, no limit", g.timeout, g.cache, g.limiter)
	}
}

func TestNewRemoteWarnsOnceWithoutKey(t *testing.T) {
	srv := stubServer(t, answerWith(http.StatusOK, `{"error_message":"You must use an API key.","html_attributions":[],"results":[],"status":"REQUEST_DENIED"}`))
	logger, logs := newTestLogger()
	p, err := NewRemote(RemoteOptions{API: APIGoogle, URL: srv.URL, Guard: GuardOptions{Name: "google", Logger: logger}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Nearby(context.Background(), uclaQuery); err != nil {
			t.Fatalf("Nearby: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "no API key"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "status=REQUEST_DENIED"); n != 3 {
		t.Errorf("logged %d denied upstream requests, want 3:\n%s", n, logs)
	}
}

// TestKeyNeverLeaks drives both providers through every way a lookup can
// fail and checks that the key shows in no error, error body or log line.
func TestKeyNeverLeaks(t *testing.T) {
	closed := stubServer(t, answerWith(http.StatusOK, "{}"))
	closed.Close() // connection refused: http.Client's error repeats the URL

	release := make(chan struct{})
	hung := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })

	echo := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		// A hostile or broken upstream sends the request back: redirect
		// to it (not followed) with an error status.
		http.Redirect(w, r, "http://elsewhere.example"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})
	denied := stubServer(t, answerWith(http.StatusForbidden, googleError(403, "PERMISSION_DENIED", "API key expired.")))

	for provider, api := range map[string]API{"google": APIGoogle, "google-new": APIGoogleNew} {
		for name, url := range map[string]string{"refused": closed.URL, "hung": hung.URL, "redirect": echo.URL, "denied": denied.URL} {
			t.Run(provider+"/"+name, func(t *testing.T) {
				logger, logs := newTestLogger()
				p, err := NewRemote(RemoteOptions{API: api, URL: url, Key: secretKey, Guard: GuardOptions{
					Name: provider, Timeout: 50 * time.Millisecond, Logger: logger,
				}})
				if err != nil {
					t.Fatal(err)
				}
				_, err = p.Nearby(context.Background(), uclaQuery)
				if err == nil {
					t.Fatal("Nearby succeeded, want an error")
				}
				// A lookup that timed out may return before its upstream
				// request ends and is logged.
				waitUntil(t, "the upstream request is logged", func() bool {
					return strings.Contains(logs.String(), "places upstream request")
				})
				for what, text := range map[string]string{"error": err.Error(), "error body": string(ErrorBody(err)), "log": logs.String()} {
					if strings.Contains(text, secretKey) {
						t.Errorf("%s holds the key: %s", what, text)
					}
				}
				if !strings.Contains(logs.String(), "provider="+provider) || !strings.Contains(logs.String(), "latency=") {
					t.Errorf("log lacks provider or latency:\n%s", logs)
				}
				if api == APIGoogle && name == "refused" && !strings.Contains(err.Error(), "key=REDACTED") {
					t.Errorf("error %q: want the request URL with its key redacted", err)
				}
			})
		}
	}
}
