package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herd-dev/herd/internal/config"
)

// root is the repository's root folder, found by walking up to go.mod.
var root = func() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("deploytest: no go.mod above the working directory")
		}
		dir = parent
	}
}()

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeYAML decodes every document of the YAML file at rel into a new T.
func decodeYAML[T any](t *testing.T, rel string) []T {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []T
	for {
		var doc T
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		docs = append(docs, doc)
	}
}

func parseConfig(t *testing.T, where string, data []byte) *config.Config {
	t.Helper()
	cfg, err := config.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return cfg
}

// splitAddr splits host:port.
func splitAddr(t *testing.T, addr string) (host string, port int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: port is not a number", addr)
	}
	return host, port
}

// adminPort is the port every server's admin address uses; the probes and
// published ports of a deployment can only point at one.
func adminPort(t *testing.T, cfg *config.Config) int {
	t.Helper()
	port := 0
	for _, s := range cfg.Servers {
		if s.Admin == "" {
			t.Fatalf("server %s has no admin address for health checks and metrics", s.Name)
		}
		_, p := splitAddr(t, s.Admin)
		if port != 0 && p != port {
			t.Fatalf("server %s has admin port %d, another has %d", s.Name, p, port)
		}
		port = p
	}
	return port
}

func TestEveryYAMLFileParses(t *testing.T) {
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if docs := decodeYAML[yaml.Node](t, rel); len(docs) == 0 {
			t.Errorf("%s: no YAML document", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConfigsAreTheSeedHerd checks that every shipped configuration is
// valid and links its servers as SPEC.md's five-server table does.
func TestConfigsAreTheSeedHerd(t *testing.T) {
	seed := sortedLinks(config.Default().Links(), nil)
	for _, tc := range []struct {
		name string
		data func(t *testing.T) []byte
		// seedName maps the file's server names to the seed's, if they differ.
		seedName map[string]string
	}{
		{"compose", composeConfig, nil},
		{"kubernetes", func(t *testing.T) []byte { return readKubernetes(t).configData(t) },
			map[string]string{"herd-0": "Alford", "herd-1": "Ball", "herd-2": "Hamilton", "herd-3": "Holiday", "herd-4": "Welsh"}},
		{"systemd", func(t *testing.T) []byte { return readFile(t, "deploy/systemd/herd.yaml") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConfig(t, tc.name, tc.data(t))
			got := sortedLinks(cfg.Links(), tc.seedName)
			if fmt.Sprint(got) != fmt.Sprint(seed) {
				t.Errorf("links %v, want the seed's %v", got, seed)
			}
			adminPort(t, cfg)
			if cfg.LogTo != config.LogToStdout {
				t.Errorf("log_to: %s, want stdout, which the platform collects", cfg.LogTo)
			}
		})
	}
}

// sortedLinks renames a herd's links by rename (when it has the name) and
// sorts each server's neighbors.
func sortedLinks(links map[string][]string, rename map[string]string) map[string][]string {
	name := func(s string) string {
		if n, ok := rename[s]; ok {
			return n
		}
		return s
	}
	out := map[string][]string{}
	for s, ns := range links {
		for _, n := range ns {
			out[name(s)] = append(out[name(s)], name(n))
		}
		slices.Sort(out[name(s)])
	}
	return out
}
