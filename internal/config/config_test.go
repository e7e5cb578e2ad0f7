package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const seedYAML = `
log_dir: logs
data_dir: data
servers:
  - name: Alford
    addr: 127.0.0.1:11550
    neighbors: [Hamilton, Welsh]
    admin: 127.0.0.1:12550
  - name: Ball
    addr: 127.0.0.1:11551
    neighbors: [Holiday, Welsh]
  - name: Hamilton
    addr: 127.0.0.1:11552
    neighbors: [Alford, Holiday]
  - name: Holiday
    addr: 127.0.0.1:11553
    neighbors: [Ball, Hamilton]
  - name: Welsh
    addr: 127.0.0.1:11554
    neighbors: [Alford, Ball]
places:
  provider: offline
  google:
    url: https://maps.googleapis.com/maps/api/place/nearbysearch/json
  google_new:
    url: https://places.googleapis.com/v1/places:searchNearby
  offline:
    osm: []
`

func TestParse_SpecExample(t *testing.T) {
	c, err := Parse(strings.NewReader(seedYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 5 || c.Servers[0].Admin != "127.0.0.1:12550" || c.Places.Provider != ProviderOffline {
		t.Errorf("parsed %+v", c)
	}
	if c.Fsync != FsyncEverySec || c.Places.Timeout.D().Seconds() != 10 || c.Limits.MaxLineBytes != 64<<10 {
		t.Errorf("defaults not applied: fsync %q, timeout %v, max line %d", c.Fsync, c.Places.Timeout.D(), c.Limits.MaxLineBytes)
	}
	if got := c.Links()["Alford"]; len(got) != 2 {
		t.Errorf("Alford's links = %v", got)
	}
}

func TestDefault_IsValidAndMatchesTheRepositoryFile(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(filepath.Join("..", "..", "herd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range d.Servers {
		got := f.Servers[i]
		if got.Name != s.Name || got.Addr != s.Addr || got.Admin != s.Admin || strings.Join(got.Neighbors, ",") != strings.Join(s.Neighbors, ",") {
			t.Errorf("herd.yaml server %d = %+v; built-in default %+v", i, got, s)
		}
	}
}

func TestLinks_AreUndirected(t *testing.T) {
	c, err := Parse(strings.NewReader(`
servers:
  - {name: A, addr: "127.0.0.1:1", neighbors: [B]}
  - {name: B, addr: "127.0.0.1:2"}
  - {name: C, addr: "127.0.0.1:3", neighbors: [B]}
`))
	if err != nil {
		t.Fatal(err)
	}
	links := c.Links()
	if strings.Join(links["B"], ",") != "A,C" || strings.Join(links["A"], ",") != "B" {
		t.Errorf("links = %v", links)
	}
}

func TestParse_Errors(t *testing.T) {
	two := func(extra string) string {
		return "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [B]}\n  - {name: B, addr: \"127.0.0.1:2\"}\n" + extra
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", two("colour: blue\n"), `unknown key "colour" in the top level`},
		{"unknown server key", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", port: 3}\n", `unknown key "port" in servers[]`},
		{"unknown places key", two("places: {provider: offline, key: x}\n"), `unknown key "key" in places`},
		{"no servers", "log_dir: x\n", "servers: at least one server"},
		{"missing name", "servers:\n  - {addr: \"127.0.0.1:1\"}\n", "servers[0].name: missing"},
		{"duplicate name", "servers:\n  - {name: A, addr: \"127.0.0.1:1\"}\n  - {name: A, addr: \"127.0.0.1:2\"}\n", `servers[1].name: "A" is also servers[0]`},
		{"space in name", "servers:\n  - {name: \"A B\", addr: \"127.0.0.1:1\"}\n", "servers[0].name"},
		{"bad addr", "servers:\n  - {name: A, addr: nowhere}\n", "servers[0].addr"},
		{"bad port", "servers:\n  - {name: A, addr: \"127.0.0.1:99999\"}\n", "servers[0].addr"},
		{"duplicate addr", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [B]}\n  - {name: B, addr: \"127.0.0.1:1\"}\n", "servers[1].addr"},
		{"admin on its own addr", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", admin: \"127.0.0.1:1\"}\n", "servers[0].admin: 127.0.0.1:1 is where A listens"},
		{"admin on every interface at its own port", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", admin: \"0.0.0.0:1\"}\n", "servers[0].admin: 0.0.0.0:1 is where A listens"},
		{"admin on its own listen", "servers:\n  - {name: A, addr: \"a.example:1\", listen: \":5\", admin: \"127.0.0.1:5\"}\n", "servers[0].admin: 127.0.0.1:5 is where A listens"},
		{"admin on another's addr", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [B], admin: \"127.0.0.1:2\"}\n  - {name: B, addr: \"127.0.0.1:2\"}\n", "servers[0].admin: 127.0.0.1:2 is also B's address"},
		{"admin on every interface at another's port", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [B], admin: \":2\"}\n  - {name: B, addr: \"127.0.0.1:2\"}\n", "servers[0].admin: :2 is also B's address"},
		{"unknown neighbor", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [Z]}\n", `servers[0].neighbors[0]: no server is named "Z"`},
		{"negative heartbeat", two("peers: {heartbeat: -1s}\n"), "peers.heartbeat: must not be negative"},
		{"number too large", two("limits: {max_line_bytes: 99999999999999999999}\n"), "limits.max_line_bytes (line"},
		{"self neighbor", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", neighbors: [A]}\n", "servers[0].neighbors[0]"},
		{"disconnected", "servers:\n  - {name: A, addr: \"127.0.0.1:1\"}\n  - {name: B, addr: \"127.0.0.1:2\"}\n", "B is not connected"},
		{"bad provider", two("places: {provider: bing}\n"), "places.provider"},
		{"bad url", two("places: {google: {url: \"ftp://x\"}}\n"), "places.google.url"},
		{"bad fsync", two("fsync: sometimes\n"), "fsync"},
		{"bad duration", two("places: {timeout: soon}\n"), "not a duration"},
		{"bad osm file", two("places: {offline: {osm: [x.txt]}}\n"), "places.offline.osm[0]"},
		{"tls without ca", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", tls_cert: a.pem, tls_key: a.key}\n", "peers.tls_ca"},
		{"not yaml", "servers: [", "config:"},
		{"line cap too big", two("limits: {max_line_bytes: 10000000}\n"), "limits.max_line_bytes"},
		{"dead before heartbeat", two("peers: {heartbeat: 2s, dead_after: 1s}\n"), "peers.dead_after"},
		{"dead too soon after heartbeat", two("peers: {heartbeat: 1s, dead_after: 1200ms}\n"), "peers.dead_after"},
		{"second document", two("---\nbogus: 1\n"), "more than one YAML document"},
		// A value of the wrong type is reported with the field holding it.
		{"neighbors not a list", "servers:\n  - name: A\n    addr: \"127.0.0.1:1\"\n    neighbors: B\n", "servers[0].neighbors (line 4): cannot unmarshal !!str `B`"},
		{"addr a list", "servers:\n  - {name: A, addr: [1, 2]}\n", "servers[0].addr (line 2): cannot unmarshal !!seq"},
		{"line cap not a number", two("limits: {max_line_bytes: abc}\n"), "limits.max_line_bytes (line 4): cannot unmarshal !!str `abc`"},
		{"pprof not a bool", two("admin_pprof: maybe\n"), "admin_pprof (line 4)"},
		{"fraction for an integer", two("limits:\n  max_connections: 1.5\n"), "limits.max_connections (line 5): 1.5 is not a whole number"},
		{"fraction in a flow map", two("places: {rate_burst: 2.5}\n"), "places.rate_burst (line 4): 2.5 is not a whole number"},
		{"duration without unit", two("places:\n  timeout: 10\n"), `places.timeout (line 5): "10" is not a duration`},
		{"client id longer than a line", two("limits: {max_line_bytes: 100, max_client_id_bytes: 200}\n"), "limits.max_client_id_bytes"},
		{"negative clock ahead", two("limits: {max_clock_ahead: -1h}\n"), "limits.max_clock_ahead"},
		{"negative client cap", two("limits: {max_clients: -1}\n"), "limits.max_clients"},
		{"negative per-address cap", two("limits: {max_connections_per_ip: -1}\n"), "limits.max_connections_per_ip"},
		{"bad log level", two("log_level: loud\n"), `log_level: "loud" is not one of debug, info, warn, error`},
		{"bad log format", two("log_format: xml\n"), `log_format: "xml"`},
		{"bad log destination", two("log_to: syslog\n"), `log_to: "syslog"`},
		{"negative log size", two("log_max_bytes: -1\n"), "log_max_bytes"},
		{"negative log keep", two("log_keep: -2\n"), "log_keep"},
		{"listen without port", "servers:\n  - {name: A, addr: \"a.example:1\", listen: \"0.0.0.0\"}\n", `servers[0].listen: "0.0.0.0" is not host:port`},
		{"listen on port 0", "servers:\n  - {name: A, addr: \"a.example:1\", listen: \":0\"}\n", `servers[0].listen: ":0" has no valid port`},
		{"admin without port", "servers:\n  - {name: A, addr: \"127.0.0.1:1\", admin: \"0.0.0.0\"}\n", "servers[0].admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

// The keys SPEC.md lists, with every value it names, are accepted.
func TestParse_SpecKeys(t *testing.T) {
	c, err := Parse(strings.NewReader(seedYAML + `
limits:
  max_client_id_bytes: 128
  max_clock_ahead: 2h
  max_clients: 5000
  max_connections_per_ip: 50
log_level: debug
log_format: json
log_to: stdout
log_max_bytes: 1048576
log_keep: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.MaxClientIDBytes != 128 || l.MaxClockAhead.D() != 2*time.Hour || l.MaxClients != 5000 || l.MaxConnectionsPerIP != 50 {
		t.Errorf("limits = %+v", l)
	}
	if c.LogLevel != LogLevelDebug || c.LogFormat != LogFormatJSON || c.LogTo != LogToStdout || c.LogMaxBytes != 1<<20 || c.LogKeep != 3 {
		t.Errorf("log keys: level %q format %q to %q max %d keep %d", c.LogLevel, c.LogFormat, c.LogTo, c.LogMaxBytes, c.LogKeep)
	}
}

func TestParse_SpecDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(seedYAML))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.MaxClientIDBytes != 256 || l.MaxClockAhead.D() != 24*time.Hour || l.MaxClients != 0 || l.MaxConnectionsPerIP != 1000 {
		t.Errorf("limits defaults = %+v", l)
	}
	if c.LogLevel != LogLevelInfo || c.LogFormat != LogFormatText || c.LogTo != LogToFile || c.LogMaxBytes != 0 || c.LogKeep != 5 {
		t.Errorf("log defaults: level %q format %q to %q max %d keep %d", c.LogLevel, c.LogFormat, c.LogTo, c.LogMaxBytes, c.LogKeep)
	}
	// A short line cap lowers the default id cap with it rather than
	// making the file invalid.
	short, err := Parse(strings.NewReader(seedYAML + "limits: {max_line_bytes: 100}\n"))
	if err != nil || short.Limits.MaxClientIDBytes != 100 {
		t.Errorf("max_line_bytes 100: id cap %d, err %v", short.Limits.MaxClientIDBytes, err)
	}
}

func TestServer_AdminReach(t *testing.T) {
	tests := []struct{ addr, admin, want string }{
		{"10.0.0.5:11550", "", ""},
		{"10.0.0.5:11550", "127.0.0.1:12550", "127.0.0.1:12550"},
		{"10.0.0.5:11550", "0.0.0.0:12550", "10.0.0.5:12550"},
		{"10.0.0.5:11550", ":12550", "10.0.0.5:12550"},
		{"herd-0.herd:11550", "[::]:12550", "herd-0.herd:12550"},
		{"[fd00::5]:11550", "0.0.0.0:12550", "[fd00::5]:12550"},
		{"herd-0.herd:11550", "admin.local:9000", "admin.local:9000"},
	}
	for _, tt := range tests {
		s := Server{Addr: tt.addr, Admin: tt.admin}
		if got := s.AdminReach(); got != tt.want {
			t.Errorf("Server{Addr: %q, Admin: %q}.AdminReach() = %q; want %q", tt.addr, tt.admin, got, tt.want)
		}
	}
}

func TestServer_ListenAddr(t *testing.T) {
	c, err := Parse(strings.NewReader(`
servers:
  - {name: A, addr: "a.example:11550", listen: "0.0.0.0:11550", neighbors: [B]}
  - {name: B, addr: "b.example:11550", listen: ":11550"}
  - {name: C, addr: "127.0.0.1:11552", neighbors: [B]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "0.0.0.0:11550", "B": ":11550", "C": "127.0.0.1:11552"}
	for _, s := range c.Servers {
		if got := s.ListenAddr(); got != want[s.Name] {
			t.Errorf("server %s: ListenAddr() = %q; want %q", s.Name, got, want[s.Name])
		}
	}
}

func TestReadFile_ResolvesPathsAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "herd.yaml")
	if err := os.WriteFile(path, []byte(seedYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogDir != filepath.Join(dir, "logs") || c.DataDir != filepath.Join(dir, "data") || c.Source != path {
		t.Errorf("log_dir %q, data_dir %q, source %q", c.LogDir, c.DataDir, c.Source)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}
