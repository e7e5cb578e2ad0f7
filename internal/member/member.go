// Package member assembles one herd server from its configuration: the log
// file, the durable store and the node rebuilt from it, the places provider,
// and the network server. The herd command runs a Member per process; tests
// run several in one process.
package member

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/herd-dev/herd/internal/admin"
	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/durable"
	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/logging"
	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/places/offline"
	"github.com/herd-dev/herd/internal/server"
)

// Overrides replace parts a member would otherwise build from its
// configuration and environment; tests use them.
type Overrides struct {
	// Places replaces the configured provider.
	Places places.Provider
	// LogOutput replaces the log file or stdout (LogPath is then empty).
	LogOutput io.Writer
	// Stdout and Stderr replace os.Stdout (for log_to: stdout) and
	// os.Stderr (where a failing log output is reported).
	Stdout, Stderr io.Writer
	// Neighbors replaces the neighbors' addresses from the configuration.
	Neighbors map[string]string
	// Dial replaces how peer connections are opened.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Env replaces os.Getenv for the secrets.
	Env func(string) string
	// AdminListener, if set, is used for the admin interface instead of
	// listening on the configured admin address (and turns the interface on
	// without one). Serve takes it over and closes it.
	AdminListener net.Listener
}

// Member is one running herd server.
type Member struct {
	Name    string
	Addr    string // from the configuration
	LogPath string
	Node    *herd.Node
	Server  *server.Server
	Store   *durable.Store
	Places  places.Provider
	Logger  *slog.Logger
	// Warnings are what an operator must hear at start, besides the log:
	// herd serve prints them on stderr.
	Warnings []string
	// Admin is the metrics, health and status interface; nil when the
	// server has no admin address and no Overrides.AdminListener.
	Admin *admin.Server

	adminAddr string       // the configured admin address
	adminLn   net.Listener // Overrides.AdminListener
	log       *logging.Log
	closers   []io.Closer
}

// minPeerSecretBytes is the shortest HERD_PEER_SECRET a server accepts.
const minPeerSecretBytes = 16

// Open builds the member called name. Close releases what it holds.
func Open(ctx context.Context, cfg *config.Config, name string, o Overrides) (m *Member, err error) {
	sc, ok := cfg.Server(name)
	if !ok {
		return nil, fmt.Errorf("member: no server named %q in the configuration (have %v)", name, cfg.Names())
	}
	getenv := o.Env
	if getenv == nil {
		getenv = os.Getenv
	}
	secret := getenv(config.EnvPeerSecret)
	if secret != "" && len(secret) < minPeerSecretBytes {
		return nil, fmt.Errorf("member: %s is %d bytes; use at least %d (for example from openssl rand -hex 32)",
			config.EnvPeerSecret, len(secret), minPeerSecretBytes)
	}
	m = &Member{Name: name, Addr: sc.Addr, adminAddr: sc.Admin, adminLn: o.AdminListener}
	opened := m // the error returns below set m to nil
	defer func() {
		if err != nil {
			if opened.Logger != nil { // so the log says why the server did not start
				opened.Logger.Error("cannot start", "err", err)
			}
			opened.Close()
		}
	}()

	m.log, err = logging.Open(cfg, name, logging.Options{Output: o.LogOutput, Stdout: o.Stdout, Stderr: o.Stderr})
	if err != nil {
		return nil, fmt.Errorf("member: %w", err)
	}
	m.closers = append(m.closers, m.log)
	m.Logger, m.LogPath = m.log.Logger, m.log.Path
	if secret == "" {
		m.warn(config.EnvPeerSecret + " is not set: anyone who can connect can inject locations")
	}

	m.Store, err = durable.Open(durable.Options{
		Dir: filepath.Join(cfg.DataDir, name), Name: name, Fsync: cfg.Fsync, Logger: m.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("member: data_dir: %w", err)
	}
	m.closers = append(m.closers, m.Store)
	m.Node = m.Store.Node()

	m.Places = o.Places
	if m.Places == nil {
		key := getenv(config.EnvPlacesAPIKey)
		if key == "" && cfg.Places.Provider != config.ProviderOffline {
			m.Warnings = append(m.Warnings, "places: no API key ("+config.EnvPlacesAPIKey+" is not set); Google will deny every request")
		}
		if m.Places, err = openPlaces(ctx, cfg.Places, key, m.Logger); err != nil {
			return nil, err
		}
	}
	var metrics *admin.Metrics
	var serverMetrics server.Metrics
	if m.adminAddr != "" || m.adminLn != nil {
		metrics = admin.NewMetrics()
		serverMetrics = metrics
		m.Places = places.Instrument(m.Places, metrics.Places(cfg.Places.Provider))
	}

	neighbors := o.Neighbors
	if neighbors == nil {
		neighbors = map[string]string{}
		for _, n := range cfg.Links()[name] {
			peer, _ := cfg.Server(n)
			neighbors[n] = peer.Addr
		}
	}
	tlsConfig, err := peerTLS(cfg, sc)
	if err != nil {
		return nil, err
	}
	m.Node.SetLimits(herd.Limits{
		MaxClientIDBytes:   cfg.Limits.MaxClientIDBytes,
		MaxClockAheadNanos: int64(cfg.Limits.MaxClockAhead),
		MaxClients:         cfg.Limits.MaxClients,
	})
	m.Server, err = server.New(server.Options{
		Name:                name,
		Node:                m.Node,
		Neighbors:           neighbors,
		Places:              m.Places,
		PlacesMayBlock:      places.MayBlock(m.Places),
		Store:               m.Store,
		Secret:              []byte(secret),
		TLS:                 tlsConfig,
		PlacesTimeout:       cfg.Places.Timeout.D(),
		MaxLineBytes:        cfg.Limits.MaxLineBytes,
		IdleTimeout:         cfg.Limits.IdleTimeout.D(),
		MaxConnections:      cfg.Limits.MaxConnections,
		MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
		WriteTimeout:        cfg.Limits.WriteTimeout.D(),
		Heartbeat:           cfg.Peers.Heartbeat.D(),
		DeadAfter:           cfg.Peers.DeadAfter.D(),
		Logger:              m.Logger,
		Metrics:             serverMetrics,
		Dial:                o.Dial,
	})
	if err != nil {
		return nil, err
	}
	if metrics != nil {
		m.Admin, err = admin.New(admin.Options{
			Name: name, Addr: sc.Addr, Server: m.Server, Node: m.Node, Store: m.Store,
			Metrics: metrics, Config: cfg, Pprof: cfg.AdminPprof, Logger: m.Logger,
			Token: getenv(config.EnvAdminToken), MetricsToken: getenv(config.EnvMetricsToken),
			LogDropped: m.LogDropped,
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func openPlaces(ctx context.Context, cfg config.Places, key string, logger *slog.Logger) (places.Provider, error) {
	if cfg.Provider == config.ProviderOffline {
		p, err := offline.New(ctx, cfg.Offline.OSM, logger)
		if err != nil {
			return nil, fmt.Errorf("member: places.offline: %w", err)
		}
		return p, nil
	}
	remote := places.RemoteOptions{API: places.APIGoogle, URL: cfg.Google.URL, Key: key, Guard: places.GuardOptions{
		Name:      cfg.Provider,
		Timeout:   cfg.Timeout.D(),
		CacheTTL:  cfg.CacheTTL.D(),
		RateLimit: cfg.RateLimit,
		RateBurst: cfg.RateBurst,
		Logger:    logger,
	}}
	if cfg.Provider == config.ProviderGoogleNew {
		remote.API, remote.URL = places.APIGoogleNew, cfg.GoogleNew.URL
	}
	g, err := places.NewRemote(remote)
	if err != nil {
		return nil, fmt.Errorf("member: places: %w", err)
	}
	return g, nil
}

func peerTLS(cfg *config.Config, sc config.Server) (*tls.Config, error) {
	if cfg.Peers.TLSCA == "" {
		return nil, nil
	}
	caPEM, err := os.ReadFile(cfg.Peers.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("member: peers.tls_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("member: peers.tls_ca: %s holds no PEM certificate", cfg.Peers.TLSCA)
	}
	cert, err := tls.LoadX509KeyPair(sc.TLSCert, sc.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("member: servers[%s].tls_cert: %w", sc.Name, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// Serve runs the member on ln until ctx is cancelled, with its admin
// interface (if it has one) on the admin address. It returns at once,
// closing ln, if it cannot listen there; the admin interface stops after the
// server has.
func (m *Member) Serve(ctx context.Context, ln net.Listener) error {
	adminDone := make(chan error, 1)
	actx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	if m.Admin == nil {
		adminDone <- nil
	} else {
		aln := m.adminLn
		if aln == nil {
			var err error
			if aln, err = net.Listen("tcp", m.adminAddr); err != nil {
				ln.Close()
				return fmt.Errorf("member: admin: %w", err)
			}
		}
		go func() { adminDone <- m.Admin.Serve(actx, aln) }() // ends after stopAdmin
	}

	err := m.Server.Serve(ctx, ln)
	stopAdmin()
	return errors.Join(err, <-adminDone)
}

// LogDropped returns how many log lines were dropped because the log
// could not be written.
func (m *Member) LogDropped() uint64 { return m.log.Dropped() }

// warn tells the operator msg at start: in the log, and through Warnings,
// which herd serve prints on stderr.
func (m *Member) warn(msg string) {
	m.Logger.Warn(msg)
	m.Warnings = append(m.Warnings, msg)
}

// Close saves the node's link cursors, releases the store and flushes the
// log.
func (m *Member) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i].Close())
	}
	m.closers = nil
	return errors.Join(errs...)
}
