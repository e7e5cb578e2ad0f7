// Package admin is a herd server's operator interface: an HTTP listener,
// separate from the client and peer address, that serves
//
//   - GET /metrics: Prometheus metrics from a registry of the server's own
//     (several servers may run in one process);
//   - GET /healthz: liveness, from a bounded self-check (see Server.alive);
//   - GET /readyz: readiness;
//   - GET /api/status and GET /api/herd: JSON for scripts and for the page;
//   - GET /api/monitor: the updates the server stores, as they happen;
//   - GET /: a self-contained status page that draws the herd's topology,
//     counters and rates, latest updates and client locations on a map;
//   - /debug/pprof/: the Go profiler, only when the configuration asks for it.
//
// With a token (config.EnvAdminToken) set, everything but /healthz, /readyz and
// /metrics requires it; /metrics requires config.EnvMetricsToken when that is set.
//
// A server's Metrics is made first and given to server.New, since it counts
// commands as they happen; New then adds the collectors that read the
// server's state at scrape time.
package admin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/durable"
	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/server"
)

//go:generate go run ./internal/landgen -o static/land.json

//go:embed static
var staticFiles embed.FS

// Options configure a Server. All fields but Pprof, the tokens,
// LogDropped and Logger are required.
type Options struct {
	// Name is the server's name in the configuration.
	Name string
	// Addr is the server's client and peer address, shown in its status.
	Addr   string
	Server *server.Server
	Node   *herd.Node
	Store  *durable.Store
	// Metrics is the registry the server counts commands in.
	Metrics *Metrics
	// Config is the herd's configuration: GET /api/herd reads every other
	// server's status from the admin address it gives.
	Config *config.Config
	// Pprof serves the Go profiler under /debug/pprof/.
	Pprof bool
	// Token, when set, is required by everything but /healthz, /readyz and
	// /metrics (see config.EnvAdminToken), and sent to the other servers' admin
	// listeners.
	Token string
	// MetricsToken, when set, is required by /metrics (see config.EnvMetricsToken).
	MetricsToken string
	// LogDropped, if set, counts the log lines the server dropped because
	// its log output could not be written.
	LogDropped func() uint64
	Logger     *slog.Logger
}

// Server is one herd server's admin HTTP interface.
type Server struct {
	opt     Options
	handler http.Handler
	client  *http.Client // reads the other servers' statuses
	live    liveness
	// monitors holds a token per open GET /api/monitor stream.
	monitors chan struct{}
}

// New returns the admin interface of a server and registers the server's
// state collectors in opt.Metrics.
func New(opt Options) (*Server, error) {
	if opt.Name == "" || opt.Server == nil || opt.Node == nil || opt.Store == nil || opt.Metrics == nil || opt.Config == nil {
		return nil, errors.New("admin: Name, Server, Node, Store, Metrics and Config are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(checkToken(config.EnvAdminToken, opt.Token), checkToken(config.EnvMetricsToken, opt.MetricsToken)); err != nil {
		return nil, err
	}
	if err := opt.Metrics.registry.Register(newStateCollector(opt.Server, opt.Node, opt.Store, opt.LogDropped)); err != nil {
		return nil, fmt.Errorf("admin: register metrics: %w", err)
	}
	s := &Server{
		opt:      opt,
		monitors: make(chan struct{}, maxMonitors),
		client: &http.Client{
			Timeout: peerTimeout,
			// No Proxy: admin addresses are the herd's own, never reached through HTTP_PROXY.
			Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		},
	}
	s.handler = s.routes()
	return s, nil
}

func (s *Server) routes() http.Handler {
	open := http.NewServeMux()
	var metrics http.Handler = promhttp.HandlerFor(s.opt.Metrics.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.opt.Logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	if s.opt.MetricsToken != "" {
		metrics = requireToken(metrics, s.opt.MetricsToken, s.opt.Token)
	}
	open.Handle("GET /metrics", metrics)
	open.HandleFunc("GET /healthz", s.handleHealth)
	open.HandleFunc("GET /readyz", s.handleReady)
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		open.HandleFunc(path, onlyGet) // any other method, rather than the private catch-all's 404
	}

	private := http.NewServeMux()
	private.HandleFunc("GET /api/status", s.handleStatus)
	private.HandleFunc("GET /api/herd", s.handleHerd)
	private.HandleFunc("GET /api/monitor", s.handleMonitor)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(fmt.Sprintf("admin: embedded files: %v", err)) // the embed directive guarantees the directory
	}
	private.Handle("GET /{$}", pageHeaders(http.FileServerFS(static)))
	private.Handle("GET /static/", pageHeaders(http.StripPrefix("/static/", http.FileServerFS(static))))
	if s.opt.Pprof {
		private.HandleFunc("/debug/pprof/", pprof.Index)
		private.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		private.HandleFunc("/debug/pprof/profile", pprof.Profile)
		private.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		private.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// Anything not open is private: a path the private routes do not know
	// is a 404 only for whoever holds the token.
	open.Handle("/", requireToken(private, s.opt.Token))
	return open
}

// onlyGet answers a request to an open path with a method it does not take.
func onlyGet(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// pageHeaders locks the status page down: it may load scripts, styles and
// data from the admin listener only, and run no inline script, so that even
// a rendering mistake cannot turn a hostile client id into code.
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy",
			"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// handleHealth serves GET /healthz: 200 while the server makes progress
// (see alive), 503 with the reason otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.alive(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not alive:", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	fmt.Fprintln(w, "ok")
}

// handleReady serves GET /readyz: 200 while the server is ready (see
// notReady), 503 with the reason otherwise.
func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	reason := s.notReady()
	if reason == "" {
		fmt.Fprintln(w, "ready")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintln(w, "not ready:", reason)
}

// notReady returns why the server should not be sent clients, or "" if it
// should: its journal must take writes, or the updates it acknowledges are
// not durable, and its network edge must be ready (see
// server.Server.NotReady; the store is loaded before the server starts).
func (s *Server) notReady() string {
	if s.opt.Store != nil {
		if err := s.opt.Store.Err(); err != nil {
			return "journal writes fail, so updates are not durable: " + err.Error()
		}
	}
	return s.opt.Server.NotReady()
}

// shutdownTimeout bounds how long Serve waits for requests in flight (a
// pprof profile, say) before it closes their connections.
const shutdownTimeout = 5 * time.Second

// Serve answers admin requests on ln until ctx is cancelled, then shuts the
// listener down, giving requests in flight up to 5 s to finish. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler: s,
		// Requests end when ctx does: monitor streams would otherwise hold
		// the shutdown up.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.opt.Logger.Handler(), slog.LevelWarn),
	}
	s.opt.Logger.Info("admin listening", "addr", ln.Addr().String(), "pprof", s.opt.Pprof)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		s.opt.Logger.Error("admin listener failed", "err", err)
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.opt.Logger.Warn("admin: requests did not finish in time; closing them")
		err = hs.Close()
	}
	<-served // http.ErrServerClosed
	s.client.CloseIdleConnections()
	s.opt.Logger.Info("admin stopped")
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
