// Package config reads, defaults and validates a herd configuration file.
//
// The YAML keys in SPEC.md are a contract with operators: every one of them is
// accepted, unknown keys are rejected by name, and a bad value is reported with
// the path of the field that holds it (for example "servers[2].neighbors[0]").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Provider names accepted by places.provider.
const (
	ProviderOffline   = "offline"
	ProviderGoogle    = "google"
	ProviderGoogleNew = "google-new"
)

// Fsync modes accepted by the fsync key, as in Redis's appendfsync.
const (
	FsyncAlways   = "always"
	FsyncEverySec = "everysec"
	FsyncNo       = "no"
)

// Values of the log keys.
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"

	LogFormatText = "text"
	LogFormatJSON = "json"

	LogToFile   = "file"
	LogToStdout = "stdout"
)

// Default upstream URLs.
const (
	DefaultGoogleURL    = "https://maps.googleapis.com/maps/api/place/nearbysearch/json"
	DefaultGoogleNewURL = "https://places.googleapis.com/v1/places:searchNearby"
)

// Environment variables that carry secrets; they never come from the file.
const (
	EnvPlacesAPIKey = "GOOGLE_PLACES_API_KEY"
	EnvPeerSecret   = "HERD_PEER_SECRET"
	// EnvAdminToken holds the token that the admin listener's page, /api/
	// and /debug/pprof/ require when it is set.
	EnvAdminToken = "HERD_ADMIN_TOKEN"
	// EnvMetricsToken holds the token that /metrics requires when it is set
	// (the admin token is accepted there too). Without it /metrics is open,
	// like /healthz and /readyz, so that probes and Prometheus work without
	// a credential.
	EnvMetricsToken = "HERD_METRICS_TOKEN"
)

// Config is a whole herd: every server's address and links, and what they share.
type Config struct {
	LogDir  string `yaml:"log_dir"`
	DataDir string `yaml:"data_dir"`
	// RunDir holds PID and status files for herd up, down and status;
	// by default "run" next to log_dir.
	RunDir     string   `yaml:"run_dir"`
	Fsync      string   `yaml:"fsync"`
	AdminPprof bool     `yaml:"admin_pprof"`
	Servers    []Server `yaml:"servers"`
	Places     Places   `yaml:"places"`
	Limits     Limits   `yaml:"limits"`
	Peers      Peers    `yaml:"peers"`

	// LogLevel is the least level logged: debug, info, warn or error.
	// Peer heartbeats and acknowledgements are debug.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (logfmt) or json, one record per line either way.
	LogFormat string `yaml:"log_format"`
	// LogTo is file (log_dir/NAME.log) or stdout.
	LogTo string `yaml:"log_to"`
	// LogMaxBytes rotates NAME.log once it grows past this size; 0 never does.
	LogMaxBytes int64 `yaml:"log_max_bytes"`
	// LogKeep is how many rotated log files are kept.
	LogKeep int `yaml:"log_keep"`

	// Source is the absolute path of the file this came from; "" for the
	// built-in herd.
	Source string `yaml:"-"`
}

// Server is one member of the herd.
type Server struct {
	Name string `yaml:"name"`
	// Addr is where clients and the other servers reach this server.
	Addr string `yaml:"addr"`
	// Listen is the address the server binds, when it is not Addr: for
	// example 0.0.0.0:11550 in a container or pod, where Addr's name
	// resolves to one interface but port forwards arrive on another.
	Listen    string   `yaml:"listen"`
	Neighbors []string `yaml:"neighbors"`
	// Admin is the optional HTTP address for metrics, health and the status page.
	Admin string `yaml:"admin"`
	// TLSCert and TLSKey are this server's certificate for peer links (with Peers.TLSCA).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Places selects and tunes the places provider.
type Places struct {
	Provider string `yaml:"provider"`
	// Timeout bounds one upstream lookup.
	Timeout Duration `yaml:"timeout"`
	// CacheTTL keeps answers for identical lookups this long; 0 disables the cache.
	CacheTTL Duration `yaml:"cache_ttl"`
	// RateLimit caps upstream requests per second per server; 0 means no limit.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is the number of requests allowed at once above RateLimit.
	RateBurst int      `yaml:"rate_burst"`
	Google    Upstream `yaml:"google"`
	GoogleNew Upstream `yaml:"google_new"`
	Offline   Offline  `yaml:"offline"`
}

// Upstream is a remote places API.
type Upstream struct {
	URL string `yaml:"url"`
}

// Offline configures the built-in provider.
type Offline struct {
	// OSM lists OpenStreetMap extracts (.osm.pbf, .osm, .osm.bz2) to load.
	OSM []string `yaml:"osm"`
}

// Limits bound what one client can cost a server.
type Limits struct {
	MaxLineBytes   int      `yaml:"max_line_bytes"`
	IdleTimeout    Duration `yaml:"idle_timeout"`
	MaxConnections int      `yaml:"max_connections"`
	// WriteTimeout drops a client that has not read its replies for this long.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxClientIDBytes is the longest client id an IAMAT may carry.
	MaxClientIDBytes int `yaml:"max_client_id_bytes"`
	// MaxClockAhead refuses an IAMAT whose time is further than this ahead
	// of the server's clock, so that no client can pin a location forever.
	MaxClockAhead Duration `yaml:"max_clock_ahead"`
	// MaxClients caps the clients a server takes new IAMATs for; 0 means
	// no cap. Known clients still update, and flooded updates are always
	// stored, so every server keeps the same table.
	MaxClients int `yaml:"max_clients"`
	// MaxConnectionsPerIP caps the connections open from one address.
	// Neighbors' links are never refused for it.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
}

// Peers tunes the links between servers.
type Peers struct {
	// Heartbeat is how often an idle link proves it is alive.
	Heartbeat Duration `yaml:"heartbeat"`
	// DeadAfter drops a link that has been silent this long.
	DeadAfter Duration `yaml:"dead_after"`
	// TLSCA, when set, turns on TLS for peer links, verified against this CA.
	TLSCA string `yaml:"tls_ca"`
}

// Duration is a time.Duration written in YAML as "10s", "250ms" and the like.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 10s or 250ms", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the seed's five-server herd on 127.0.0.1:11550-11554 with the
// offline places provider, so a fresh machine needs no file, key or network.
func Default() *Config {
	c := &Config{
		Servers: []Server{
			{Name: "Alford", Addr: "127.0.0.1:11550", Neighbors: []string{"Hamilton", "Welsh"}, Admin: "127.0.0.1:12550"},
			{Name: "Ball", Addr: "127.0.0.1:11551", Neighbors: []string{"Holiday", "Welsh"}, Admin: "127.0.0.1:12551"},
			{Name: "Hamilton", Addr: "127.0.0.1:11552", Neighbors: []string{"Alford", "Holiday"}, Admin: "127.0.0.1:12552"},
			{Name: "Holiday", Addr: "127.0.0.1:11553", Neighbors: []string{"Ball", "Hamilton"}, Admin: "127.0.0.1:12553"},
			{Name: "Welsh", Addr: "127.0.0.1:11554", Neighbors: []string{"Alford", "Ball"}, Admin: "127.0.0.1:12554"},
		},
	}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills in every field left empty with its default.
func (c *Config) ApplyDefaults() {
	setDefault(&c.LogDir, "logs")
	setDefault(&c.DataDir, "data")
	setDefault(&c.RunDir, filepath.Join(filepath.Dir(filepath.Clean(c.LogDir)), "run"))
	setDefault(&c.Fsync, FsyncEverySec)
	setDefault(&c.Places.Provider, ProviderOffline)
	setDefault(&c.Places.Google.URL, DefaultGoogleURL)
	setDefault(&c.Places.GoogleNew.URL, DefaultGoogleNewURL)
	if c.Places.Timeout == 0 {
		c.Places.Timeout = Duration(10 * time.Second)
	}
	if c.Places.RateBurst == 0 {
		c.Places.RateBurst = 10
	}
	if c.Limits.MaxLineBytes == 0 {
		c.Limits.MaxLineBytes = 64 << 10
	}
	if c.Limits.IdleTimeout == 0 {
		c.Limits.IdleTimeout = Duration(10 * time.Minute)
	}
	if c.Limits.MaxConnections == 0 {
		c.Limits.MaxConnections = 10000
	}
	if c.Limits.WriteTimeout == 0 {
		c.Limits.WriteTimeout = Duration(30 * time.Second)
	}
	if c.Limits.MaxClientIDBytes == 0 {
		c.Limits.MaxClientIDBytes = min(256, c.Limits.MaxLineBytes)
	}
	if c.Limits.MaxClockAhead == 0 {
		c.Limits.MaxClockAhead = Duration(24 * time.Hour)
	}
	if c.Limits.MaxConnectionsPerIP == 0 {
		c.Limits.MaxConnectionsPerIP = 1000
	}
	setDefault(&c.LogLevel, LogLevelInfo)
	setDefault(&c.LogFormat, LogFormatText)
	setDefault(&c.LogTo, LogToFile)
	if c.LogKeep == 0 {
		c.LogKeep = 5
	}
	if c.Peers.Heartbeat == 0 {
		c.Peers.Heartbeat = Duration(time.Second)
	}
	if c.Peers.DeadAfter == 0 {
		c.Peers.DeadAfter = Duration(5 * time.Second)
	}
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// Parse decodes a configuration, fills in defaults and validates it.
func Parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	// The file as a tree, for what the decoder does not say: which field
	// an error is about, and fractions it would cut silently.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config: %s", explainYAMLError(err))
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %s", nameFields(explainYAMLError(err), &root))
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: the file holds more than one YAML document; give one")
	}
	if err := checkWholeNumbers(&root, reflect.TypeFor[Config](), ""); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ReadFile parses the file at path. Relative log_dir, data_dir, OSM and TLS
// paths are taken relative to the file's folder, so a herd runs the same from
// any working directory.
func ReadFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	c.Source = path
	c.resolvePaths(filepath.Dir(path))
	return c, nil
}

func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.LogDir)
	abs(&c.DataDir)
	abs(&c.RunDir)
	abs(&c.Peers.TLSCA)
	for i := range c.Places.Offline.OSM {
		abs(&c.Places.Offline.OSM[i])
	}
	for i := range c.Servers {
		abs(&c.Servers[i].TLSCert)
		abs(&c.Servers[i].TLSKey)
	}
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// yamlSections names where each Go type sits in the file, for error messages.
var yamlSections = map[string]string{
	"config.Config":   "the top level",
	"config.Server":   "servers[]",
	"config.Places":   "places",
	"config.Upstream": "places.google / places.google_new",
	"config.Offline":  "places.offline",
	"config.Limits":   "limits",
	"config.Peers":    "peers",
}

func explainYAMLError(err error) string {
	return unknownField.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := unknownField.FindStringSubmatch(m)
		where := yamlSections[sub[2]]
		if where == "" {
			where = sub[2]
		}
		return fmt.Sprintf("unknown key %q in %s", sub[1], where)
	})
}

// checkWholeNumbers finds an integer field given a number that is not
// whole, such as max_connections: 1.5, which the decoder would silently cut
// to 1. n is the YAML value of a field of type t, named path.
func checkWholeNumbers(n *yaml.Node, t reflect.Type, path string) error {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil // it decodes itself (Duration)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkWholeNumbers(c, t, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fieldByYAMLKey(t, key)
			if !ok {
				continue // the decoder has reported it
			}
			if err := checkWholeNumbers(n.Content[i+1], f.Type, keyPath(path, key)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, c := range n.Content {
			if err := checkWholeNumbers(c, t.Elem(), indexPath(path, i)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if n.ShortTag() != "!!float" {
				return nil // an integer, or a value the decoder has refused
			}
			if f, err := strconv.ParseFloat(n.Value, 64); err != nil || f != math.Trunc(f) {
				return fmt.Errorf("%s (line %d): %s is not a whole number", path, n.Line, n.Value)
			}
		}
	}
	return nil
}

// keyPath and indexPath name a value inside the one named path, as
// Validate names fields: places.timeout, servers[0].
func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// fieldByYAMLKey returns the field of struct type t that key sets.
func fieldByYAMLKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// lineError is how the YAML decoder (and Duration) place an error: by line.
var lineError = regexp.MustCompile(`line (\d+): (.*)`)

// nameFields adds to each "line N: ..." in msg the field whose value on
// line N the error is about, as in "servers[0].neighbors (line 6): ...", so
// that a value of the wrong type is reported with the field that holds it.
func nameFields(msg string, root *yaml.Node) string {
	values := valuesByLine(root)
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		m := lineError.FindStringSubmatchIndex(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(l[m[2]:m[3]])
		if path := fieldFor(values[n], l[m[4]:m[5]]); path != "" {
			lines[i] = l[:m[0]] + path + " (" + l[m[0]:m[3]] + ")" + l[m[3]:]
		}
	}
	return strings.Join(lines, "\n")
}

// yamlValue is a value in a configuration file and the field that holds it.
type yamlValue struct {
	path string // as Validate names fields: servers[0].neighbors
	node *yaml.Node
}

// valuesByLine lists the values that start on each line, outer ones first.
func valuesByLine(root *yaml.Node) map[int][]yamlValue {
	values := map[int][]yamlValue{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if path != "" {
			values[n.Line] = append(values[n.Line], yamlValue{path, n})
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], keyPath(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, indexPath(path, i))
			}
		}
	}
	walk(root, "")
	return values
}

// fieldFor picks, among the values on a line, the one an error is about:
// the innermost scalar whose text it quotes, or list or map whose tag it
// names; failing both, the outermost value.
func fieldFor(values []yamlValue, err string) string {
	for _, v := range slices.Backward(values) {
		switch v.node.Kind {
		case yaml.ScalarNode:
			if quotesValue(err, v.node.Value) || strings.Contains(err, strconv.Quote(v.node.Value)) {
				return v.path
			}
		case yaml.SequenceNode, yaml.MappingNode:
			if strings.Contains(err, v.node.ShortTag()) {
				return v.path
			}
		}
	}
	if len(values) > 0 {
		return values[0].path
	}
	return ""
}

// quotesValue reports whether a YAML error quotes value in backquotes,
// as it does in full or, for a long value, as its start and "...".
func quotesValue(err, value string) bool {
	for _, m := range backquoted.FindAllStringSubmatch(err, -1) {
		if start, cut := strings.CutSuffix(m[1], "..."); m[1] == value || cut && strings.HasPrefix(value, start) {
			return true
		}
	}
	return false
}

var backquoted = regexp.MustCompile("`([^`]*)`")

// Server returns the server called name.
func (c *Config) Server(name string) (Server, bool) {
	for _, s := range c.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// ListenAddr returns the address s binds for clients and peers: Listen,
// or Addr when Listen is not set.
func (s Server) ListenAddr() string {
	if s.Listen != "" {
		return s.Listen
	}
	return s.Addr
}

// AdminReach returns the address at which other servers and herd status
// reach s's admin listener, or "" if it has none. An admin address with an
// unspecified host (0.0.0.0:12550, [::]:12550, :12550) binds every
// interface, so it is reached at the host of s's addr.
func (s Server) AdminReach() string {
	if s.Admin == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s.Admin)
	if err != nil {
		return s.Admin
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return s.Admin
	}
	addrHost, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return s.Admin
	}
	return net.JoinHostPort(addrHost, port)
}

// Names lists the servers in file order.
func (c *Config) Names() []string {
	names := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		names[i] = s.Name
	}
	return names
}

// Links returns every server's neighbors with links made undirected: if A lists
// B or B lists A, each has the other.
func (c *Config) Links() map[string][]string {
	seen := map[[2]string]bool{}
	links := make(map[string][]string, len(c.Servers))
	add := func(a, b string) {
		if !seen[[2]string{a, b}] {
			seen[[2]string{a, b}] = true
			links[a] = append(links[a], b)
		}
	}
	for _, s := range c.Servers {
		if _, ok := links[s.Name]; !ok {
			links[s.Name] = nil
		}
		for _, n := range s.Neighbors {
			add(s.Name, n)
			add(n, s.Name)
		}
	}
	return links
}

// checkAdminAddrs refuses an admin address that a server's client
// listener takes: its own, or another server's on the same host.
func (c *Config) checkAdminAddrs() error {
	for i, s := range c.Servers {
		if s.Admin == "" {
			continue
		}
		field := fmt.Sprintf("config: servers[%d].admin", i)
		if sameListener(s.Admin, s.ListenAddr()) {
			return fmt.Errorf("%s: %s is where %s listens for clients and peers", field, s.Admin, s.Name)
		}
		for _, other := range c.Servers {
			if other.Name != s.Name && (s.AdminReach() == other.Addr || s.Admin == other.ListenAddr()) {
				return fmt.Errorf("%s: %s is also %s's address", field, s.Admin, other.Name)
			}
		}
	}
	return nil
}

// sameListener reports whether listening on a and on b would take the same
// port of one host: the same port, and the same host or an unspecified one
// on either side, which binds every interface.
func sameListener(a, b string) bool {
	hostA, portA, errA := net.SplitHostPort(a)
	hostB, portB, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || portA != portB {
		return false
	}
	unspecified := func(host string) bool {
		ip := net.ParseIP(host)
		return host == "" || ip != nil && ip.IsUnspecified()
	}
	return hostA == hostB || unspecified(hostA) || unspecified(hostB)
}

// Validate checks every field and names the first bad one.
func (c *Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("config: servers: at least one server is required")
	}
	names := map[string]int{}
	addrs := map[string]string{}
	for i, s := range c.Servers {
		field := fmt.Sprintf("servers[%d]", i)
		if s.Name == "" {
			return fmt.Errorf("config: %s.name: missing", field)
		}
		if strings.ContainsFunc(s.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("config: %s.name: %q holds white space or control characters", field, s.Name)
		}
		if j, dup := names[s.Name]; dup {
			return fmt.Errorf("config: %s.name: %q is also servers[%d]", field, s.Name, j)
		}
		names[s.Name] = i
		if err := checkAddr(s.Addr); err != nil {
			return fmt.Errorf("config: %s.addr: %w", field, err)
		}
		if other, dup := addrs[s.Addr]; dup {
			return fmt.Errorf("config: %s.addr: %s is also %s's address", field, s.Addr, other)
		}
		addrs[s.Addr] = s.Name
		if s.Listen != "" {
			if err := checkListenAddr(s.Listen); err != nil {
				return fmt.Errorf("config: %s.listen: %w", field, err)
			}
		}
		if s.Admin != "" {
			if err := checkListenAddr(s.Admin); err != nil {
				return fmt.Errorf("config: %s.admin: %w", field, err)
			}
		}
		if (s.TLSCert == "") != (s.TLSKey == "") {
			return fmt.Errorf("config: %s.tls_cert, tls_key: give both or neither", field)
		}
		if s.TLSCert != "" && c.Peers.TLSCA == "" {
			return fmt.Errorf("config: peers.tls_ca: required when %s.tls_cert is set", field)
		}
		if c.Peers.TLSCA != "" && s.TLSCert == "" {
			return fmt.Errorf("config: %s.tls_cert: required when peers.tls_ca is set", field)
		}
	}
	if err := c.checkAdminAddrs(); err != nil {
		return err
	}
	for i, s := range c.Servers {
		for j, n := range s.Neighbors {
			field := fmt.Sprintf("servers[%d].neighbors[%d]", i, j)
			if _, ok := names[n]; !ok {
				return fmt.Errorf("config: %s: no server is named %q", field, n)
			}
			if n == s.Name {
				return fmt.Errorf("config: %s: %s cannot be its own neighbor", field, n)
			}
		}
	}
	if lonely := c.unreachable(); lonely != "" {
		return fmt.Errorf("config: servers: %s is not connected to %s through neighbors; every server must reach every other", lonely, c.Servers[0].Name)
	}
	switch c.Fsync {
	case FsyncAlways, FsyncEverySec, FsyncNo:
	default:
		return fmt.Errorf("config: fsync: %q is not one of always, everysec, no", c.Fsync)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.validateLogs(); err != nil {
		return err
	}
	if c.Peers.Heartbeat <= 0 {
		return errors.New("config: peers.heartbeat: must not be negative (0 means the default)")
	}
	if c.Peers.DeadAfter < 2*c.Peers.Heartbeat {
		return fmt.Errorf("config: peers.dead_after: %v must be at least twice peers.heartbeat %v", c.Peers.DeadAfter.D(), c.Peers.Heartbeat.D())
	}
	return c.Places.validate()
}

// MaxLineBytesLimit caps limits.max_line_bytes, so that every stored record
// fits one journal entry.
const MaxLineBytesLimit = 256 << 10

func (l *Limits) validate() error {
	switch {
	case l.MaxLineBytes < 64 || l.MaxLineBytes > MaxLineBytesLimit:
		return fmt.Errorf("config: limits.max_line_bytes: %d is not between 64 and %d", l.MaxLineBytes, MaxLineBytesLimit)
	case l.IdleTimeout < 0:
		return errors.New("config: limits.idle_timeout: must not be negative (0 means the default)")
	case l.MaxConnections < 0:
		return errors.New("config: limits.max_connections: must not be negative (0 means the default)")
	case l.WriteTimeout < 0:
		return errors.New("config: limits.write_timeout: must not be negative (0 means the default)")
	case l.MaxClientIDBytes < 0 || l.MaxClientIDBytes > l.MaxLineBytes:
		return fmt.Errorf("config: limits.max_client_id_bytes: %d is not between 1 and limits.max_line_bytes (%d)", l.MaxClientIDBytes, l.MaxLineBytes)
	case l.MaxClockAhead < 0:
		return errors.New("config: limits.max_clock_ahead: must not be negative (0 means the default)")
	case l.MaxClients < 0:
		return errors.New("config: limits.max_clients: must not be negative (0 means no cap)")
	case l.MaxConnectionsPerIP < 0:
		return errors.New("config: limits.max_connections_per_ip: must not be negative (0 means the default)")
	}
	return nil
}

func (c *Config) validateLogs() error {
	switch c.LogLevel {
	case LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError:
	default:
		return fmt.Errorf("config: log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case LogFormatText, LogFormatJSON:
	default:
		return fmt.Errorf("config: log_format: %q is not one of text, json", c.LogFormat)
	}
	switch c.LogTo {
	case LogToFile, LogToStdout:
	default:
		return fmt.Errorf("config: log_to: %q is not one of file, stdout", c.LogTo)
	}
	if c.LogMaxBytes < 0 {
		return errors.New("config: log_max_bytes: must not be negative (0 means never rotate)")
	}
	if c.LogKeep < 0 {
		return errors.New("config: log_keep: must not be negative (0 means the default)")
	}
	return nil
}

func (p *Places) validate() error {
	switch p.Provider {
	case ProviderOffline, ProviderGoogle, ProviderGoogleNew:
	default:
		return fmt.Errorf("config: places.provider: %q is not one of offline, google, google-new", p.Provider)
	}
	for _, f := range []struct{ field, raw string }{
		{"places.google.url", p.Google.URL},
		{"places.google_new.url", p.GoogleNew.URL},
	} {
		u, err := url.Parse(f.raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: %s: %q is not an http or https URL", f.field, f.raw)
		}
	}
	switch {
	case p.Timeout < 0:
		return errors.New("config: places.timeout: must not be negative (0 means the default)")
	case p.CacheTTL < 0:
		return errors.New("config: places.cache_ttl: must not be negative")
	case p.RateLimit < 0:
		return errors.New("config: places.rate_limit: must not be negative")
	case p.RateBurst < 0:
		return errors.New("config: places.rate_burst: must not be negative")
	}
	for i, f := range p.Offline.OSM {
		if !strings.HasSuffix(f, ".osm.pbf") && !strings.HasSuffix(f, ".osm") && !strings.HasSuffix(f, ".osm.bz2") {
			return fmt.Errorf("config: places.offline.osm[%d]: %q is not a .osm.pbf, .osm or .osm.bz2 file", i, f)
		}
	}
	return nil
}

// checkAddr checks an address other servers dial: it needs a host.
func checkAddr(addr string) error {
	if err := checkListenAddr(addr); err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(addr); host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	return nil
}

// checkListenAddr checks an address to listen on: host:port, where an empty
// host means every interface.
func checkListenAddr(addr string) error {
	if addr == "" {
		return errors.New("missing; want host:port")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "0" {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}

// unreachable returns a server that cannot be reached from the first one, or "".
func (c *Config) unreachable() string {
	links := c.Links()
	seen := map[string]bool{c.Servers[0].Name: true}
	queue := []string{c.Servers[0].Name}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, n := range links[s] {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	for _, s := range c.Servers {
		if !seen[s.Name] {
			return s.Name
		}
	}
	return ""
}
