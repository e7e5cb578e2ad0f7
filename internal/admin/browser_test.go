package admin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/herd-dev/herd/internal/herdtest"
)

// chromium finds a Chromium or Chrome binary. Without one the test skips,
// except under CI=true, where it fails: CI installs chromium (.ci/run), and
// must not pass by skipping the browser test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const msg = "chromium is not installed (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so the browser test may not be skipped")
	}
	t.Skip(msg + ": skipping the browser test")
	return ""
}

// edge is one link of the topology as the page draws it.
type edge struct {
	A     string `json:"a"`
	B     string `json:"b"`
	State string `json:"state"`
}

// pageView is what the test reads off the status page.
type pageView struct {
	Edges   []edge            `json:"edges"`
	Nodes   map[string]string `json:"nodes"` // name -> data-state
	Updates string            `json:"updates"`
	Images  int               `json:"images"`
	Poll    string            `json:"poll"`
}

const readPage = `(() => ({
	edges: Array.from(document.querySelectorAll('#topology line[data-state]'),
		(e) => ({a: e.dataset.a, b: e.dataset.b, state: e.dataset.state})),
	nodes: Object.fromEntries(Array.from(document.querySelectorAll('#topology g[data-name]'),
		(g) => [g.dataset.name, g.dataset.state])),
	updates: document.getElementById('updates').textContent,
	images: document.querySelectorAll('img').length,
	poll: document.getElementById('poll').dataset.state,
}))()`

func TestStatusPageInBrowser(t *testing.T) {
	exe := chromium(t)
	h := startHerd(t, herdtest.SeedTopology, nil)
	hostile := `<img/src/onerror=alert(1)>`
	c := h.Dial("Ball")
	c.Ask(iamat(hostile))
	c.Ask(iamat("kiwi.cs.ucla.edu"))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	var mu sync.Mutex
	var problems []string // script errors and dialogs: neither may happen
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "uncaught exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				p += " " + ex.Description
			}
		case *page.EventJavascriptDialogOpening:
			p = "dialog opened: " + ev.Message
		default:
			return
		}
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}))
	defer cancel()
	checkProblems := func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Fatalf("the page misbehaved:\n%s", strings.Join(problems, "\n"))
		}
	}

	url := adminURL(t, h, "Alford") + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s in chromium: %v", url, err)
	}
	t.Logf("opened %s in %s", url, exe)

	// waitFor polls the page until ok accepts what it shows.
	waitFor := func(what string, ok func(pageView) error) pageView {
		t.Helper()
		var view pageView
		herdtest.Eventually(t, 20*time.Second, func() error {
			checkProblems()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var err error
			if view, err = chromedp.Run(rctx, chromedp.Evaluate[pageView](readPage)); err != nil {
				return fmt.Errorf("%s: read the page: %w", what, err)
			}
			if err := ok(view); err != nil {
				return fmt.Errorf("%s: %w (page: %+v)", what, err, view)
			}
			return nil
		})
		return view
	}

	wantEdges := [][2]string{
		{"Alford", "Hamilton"}, {"Alford", "Welsh"}, {"Ball", "Holiday"}, {"Ball", "Welsh"}, {"Hamilton", "Holiday"},
	}
	edgeStates := func(v pageView, down ...string) error {
		if len(v.Edges) != len(wantEdges) {
			return fmt.Errorf("%d edges drawn, want %d", len(v.Edges), len(wantEdges))
		}
		for _, e := range v.Edges {
			if !slices.Contains(wantEdges, [2]string{e.A, e.B}) {
				return fmt.Errorf("unexpected edge %s-%s", e.A, e.B)
			}
			want := "up"
			if slices.Contains(down, e.A) || slices.Contains(down, e.B) {
				want = "down"
			}
			if e.State != want {
				return fmt.Errorf("edge %s-%s is %s, want %s", e.A, e.B, e.State, want)
			}
		}
		return nil
	}

	waitFor("every link up and the updates listed", func(v pageView) error {
		if v.Poll != "ok" {
			return fmt.Errorf("poll state %q", v.Poll)
		}
		if !strings.Contains(v.Updates, hostile) || !strings.Contains(v.Updates, "kiwi.cs.ucla.edu") {
			return fmt.Errorf("updates list %q lacks the clients", v.Updates)
		}
		for name, state := range v.Nodes {
			if state != "up" {
				return fmt.Errorf("server %s is %s", name, state)
			}
		}
		return edgeStates(v)
	})
	view := waitFor("the hostile client id shown as text", func(v pageView) error {
		if v.Images != 0 {
			return fmt.Errorf("%d img elements: a client id was parsed as HTML", v.Images)
		}
		return nil
	})
	if len(view.Nodes) != 5 {
		t.Errorf("nodes drawn: %v, want the five servers", view.Nodes)
	}
	saveScreenshot(ctx, t, "admin-status-page.png")

	h.Stop("Hamilton")
	waitFor("Hamilton's links down", func(v pageView) error {
		if v.Nodes["Hamilton"] != "down" {
			return fmt.Errorf("Hamilton is %q", v.Nodes["Hamilton"])
		}
		return edgeStates(v, "Hamilton")
	})
	saveScreenshot(ctx, t, "admin-status-page-hamilton-down.png")
	checkProblems()
}

// saveScreenshot saves what the browser shows into $HERD_ARTIFACTS, or the
// test's temporary directory.
func saveScreenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("HERD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot saved to %s", path)
}
