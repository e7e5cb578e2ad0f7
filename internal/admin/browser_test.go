package admin_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
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

// node is one server of the topology as the page draws it.
type node struct {
	State string  `json:"state"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
}

// row is one server's row of the servers table, as text.
type row struct {
	State   string            `json:"state"`
	Message string            `json:"message"`
	Cells   map[string]string `json:"cells"` // column heading -> text
	Totals  map[string]string `json:"totals"`
}

// pageView is what the test reads off the status page.
type pageView struct {
	Edges       []edge          `json:"edges"`
	Nodes       map[string]node `json:"nodes"`
	Rows        map[string]row  `json:"rows"`
	Updates     string          `json:"updates"`
	UpdateLines []float64       `json:"updateLines"` // the height of each AT line, in lines of text
	Images      int             `json:"images"`
	Poll        string          `json:"poll"`
	Stream      string          `json:"stream"`
	LandPath    int             `json:"landPath"` // length of the land path data
	Clusters    []int           `json:"clusters"` // clients per group on the map
	Zoom        float64         `json:"zoom"`
	ScrollX     int             `json:"scrollX"` // how far the page scrolls sideways
}

const readPage = `(() => {
	const heads = Array.from(document.querySelectorAll('#servers thead th'), (th) => th.textContent);
	return {
		edges: Array.from(document.querySelectorAll('#topology line[data-state]'),
			(e) => ({a: e.dataset.a, b: e.dataset.b, state: e.dataset.state})),
		nodes: Object.fromEntries(Array.from(document.querySelectorAll('#topology g[data-name]'),
			(g) => [g.dataset.name, {state: g.dataset.state, x: +g.dataset.x, y: +g.dataset.y}])),
		rows: Object.fromEntries(Array.from(document.querySelectorAll('#servers tbody tr'), (tr) => {
			const cells = {}, totals = {};
			Array.from(tr.cells).forEach((td, i) => {
				cells[heads[i]] = td.innerText;
				if (td.dataset.total !== undefined) totals[heads[i]] = td.dataset.total;
			});
			const msg = tr.querySelector('td.message');
			return [tr.dataset.name, {state: tr.cells[1].innerText, message: msg ? msg.innerText : '', cells, totals}];
		})),
		updates: document.getElementById('updates').textContent,
		updateLines: Array.from(document.querySelectorAll('#updates .at'), (at) =>
			at.getBoundingClientRect().height / parseFloat(getComputedStyle(at).lineHeight || '16')),
		images: document.querySelectorAll('img').length,
		poll: document.getElementById('poll').dataset.state,
		stream: document.getElementById('stream').dataset.state,
		landPath: (document.querySelector('#map path.land')?.getAttribute('d') || '').length,
		clusters: Array.from(document.querySelectorAll('#map circle.cluster'), (c) => +c.dataset.count),
		zoom: +document.getElementById('map').dataset.zoom,
		scrollX: document.documentElement.scrollWidth - document.documentElement.clientWidth,
	};
})()`

// crosses reports whether segments p1-p2 and q1-q2 cross at a point inside
// both.
func crosses(p1, p2, q1, q2 node) bool {
	orient := func(a, b, c node) float64 { return (b.X-a.X)*(c.Y-a.Y) - (b.Y-a.Y)*(c.X-a.X) }
	d1, d2 := orient(q1, q2, p1), orient(q1, q2, p2)
	d3, d4 := orient(p1, p2, q1), orient(p1, p2, q2)
	return d1*d2 < 0 && d3*d4 < 0
}

func TestStatusPageInBrowser(t *testing.T) {
	exe := chromium(t)
	h := startHerd(t, herdtest.SeedTopology, nil)
	// Thirty clients around Los Angeles pile up on the world map; a few
	// more elsewhere stand alone.
	a := h.Dial("Alford")
	now := time.Now().Unix()
	for i := range 30 {
		a.Ask(fmt.Sprintf("IAMAT la-%d %+.6f%+.6f %d", i, 33.6+float64(i%6)*0.25, -118.9+float64(i/6)*0.25, now))
	}
	for i, loc := range []string{"+51.507400-000.127800", "+35.676200+139.650300", "-33.868800+151.209300", "-23.550500-046.633300"} {
		a.Ask(fmt.Sprintf("IAMAT far-%d %s %d", i, loc, now))
	}
	hostile := `<img/src/onerror=alert(1)>`
	c := h.Dial("Ball")
	c.Ask(iamat(hostile))
	c.Ask(iamat("kiwi.cs.ucla.edu"))
	const clients = 30 + 4 + 2

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
		chromedp.WindowSize(1400, 1000),
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

	view := waitFor("every link up, the updates listed, rates shown", func(v pageView) error {
		if v.Poll != "ok" || v.Stream != "live" {
			return fmt.Errorf("poll state %q, stream state %q", v.Poll, v.Stream)
		}
		if !strings.Contains(v.Updates, hostile) || !strings.Contains(v.Updates, "kiwi.cs.ucla.edu") {
			return fmt.Errorf("updates list %q lacks the clients", v.Updates)
		}
		if len(v.Nodes) != 5 {
			return fmt.Errorf("nodes drawn: %v, want the five servers", v.Nodes)
		}
		for name, n := range v.Nodes {
			if n.State != "up" {
				return fmt.Errorf("server %s is %s", name, n.State)
			}
		}
		for name, r := range v.Rows {
			if !strings.HasSuffix(strings.Fields(r.Cells["IAMAT"])[0], "/s") {
				return fmt.Errorf("%s's IAMAT cell %q shows no rate yet", name, r.Cells["IAMAT"])
			}
		}
		return edgeStates(v)
	})
	if view.Images != 0 {
		t.Errorf("%d img elements: a client id was parsed as HTML", view.Images)
	}

	// The seed's ring, laid out from its links, crosses none of them.
	for i, e := range view.Edges {
		for _, f := range view.Edges[i+1:] {
			if e.A == f.A || e.A == f.B || e.B == f.A || e.B == f.B {
				continue
			}
			if crosses(view.Nodes[e.A], view.Nodes[e.B], view.Nodes[f.A], view.Nodes[f.B]) {
				t.Errorf("links %s-%s and %s-%s cross", e.A, e.B, f.A, f.B)
			}
		}
	}
	// Totals, and the change sequence as what a server stored since it
	// started, not as the raw 4294967297 of its second run.
	alford := view.Rows["Alford"]
	if alford.Totals["IAMAT"] != fmt.Sprint(30+4) || view.Rows["Ball"].Totals["IAMAT"] != "2" {
		t.Errorf("IAMAT totals: Alford %q, Ball %q; want 34 and 2", alford.Totals["IAMAT"], view.Rows["Ball"].Totals["IAMAT"])
	}
	if stored := alford.Totals["stored"]; stored != fmt.Sprint(clients) {
		t.Errorf("Alford's stored total %q, want %d (every client once)", stored, clients)
	}
	for name, r := range view.Rows {
		if strings.Contains(strings.Join(slices.Collect(maps.Values(r.Cells)), " "), "42949") {
			t.Errorf("%s's row shows a raw change sequence: %v", name, r.Cells)
		}
	}
	// AT lines wrap between fields, never inside the coordinates.
	for i, lines := range view.UpdateLines {
		if lines > 2.5 {
			t.Errorf("update %d's AT line takes %.1f lines", i, lines)
		}
	}
	if view.ScrollX > 0 {
		t.Errorf("the page scrolls sideways by %d px at 1400 px", view.ScrollX)
	}

	// The map: land, and every sampled client in exactly one group; the
	// thirty around Los Angeles pile up into one.
	view = waitFor("the map drawn", func(v pageView) error {
		if v.LandPath < 10000 {
			return fmt.Errorf("land path of %d bytes", v.LandPath)
		}
		if sum(v.Clusters) != clients {
			return fmt.Errorf("groups %v hold %d clients, want %d", v.Clusters, sum(v.Clusters), clients)
		}
		return nil
	})
	if slices.Max(view.Clusters) < 30 {
		t.Errorf("groups at world zoom %v: the Los Angeles clients do not pile up", view.Clusters)
	}
	saveScreenshot(ctx, t, "admin-status-page.png")

	// Zooming in on Los Angeles with the mouse wheel splits its group.
	var at struct{ X, Y float64 }
	at, err := chromedp.Run(ctx, chromedp.Evaluate[struct{ X, Y float64 }](`(() => {
		const map = document.getElementById('map');
		map.scrollIntoView({block: 'center'});
		const p = map.createSVGPoint();
		p.x = -118.3; p.y = -34.2;
		const s = p.matrixTransform(map.getScreenCTM());
		return {x: s.x, y: s.y};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, input.DispatchMouseEventParams{
			// DeltaX is required, and a zero would be left out.
			Type: input.DispatchMouseEventTypeMouseWheel, X: at.X, Y: at.Y, DeltaX: 0.001, DeltaY: -300,
		}); err != nil {
			t.Fatal(err)
		}
	}
	zoomed := waitFor("zoomed in on Los Angeles", func(v pageView) error {
		if v.Zoom < 8 {
			return fmt.Errorf("zoom %v after four wheel steps", v.Zoom)
		}
		return nil
	})
	if slices.Max(zoomed.Clusters) >= 30 || len(zoomed.Clusters) < 4 {
		t.Errorf("groups zoomed in on Los Angeles: %v; want the thirty split", zoomed.Clusters)
	}
	saveScreenshot(ctx, t, "admin-status-page-zoomed.png")

	// A new update reaches the list through the stream.
	a.Ask(iamat("streamed.example"))
	waitFor("the streamed update listed", func(v pageView) error {
		if !strings.Contains(v.Updates, "streamed.example") {
			return errors.New("not listed")
		}
		return nil
	})

	h.Stop("Hamilton")
	view = waitFor("Hamilton's links down", func(v pageView) error {
		if v.Nodes["Hamilton"].State != "down" {
			return fmt.Errorf("Hamilton is %q", v.Nodes["Hamilton"].State)
		}
		return edgeStates(v, "Hamilton")
	})
	if msg := view.Rows["Hamilton"].Message; !strings.HasPrefix(msg, "nothing listens on ") || strings.Contains(msg, "dial tcp") {
		t.Errorf("Hamilton's row says %q; want why in words", msg)
	}
	saveScreenshot(ctx, t, "admin-status-page-hamilton-down.png")
	checkProblems()
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
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
