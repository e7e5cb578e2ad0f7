package deploytest

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/config"
)

// composeFile mirrors the parts of deploy/compose.yaml that the tests read,
// in the short syntax the file uses; the decoder resolves its merge keys.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"configs"`
	Networks map[string]any `yaml:"networks"`
	Volumes  map[string]any `yaml:"volumes"`
}

type composeService struct {
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Configs     []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
	Networks []string `yaml:"networks"`
	Ports    []string `yaml:"ports"`
	Volumes  []string `yaml:"volumes"`
}

// containerPorts are the container sides of a service's published ports
// ("11551:11550", "127.0.0.1:12551:12550").
func (s composeService) containerPorts(t *testing.T) []int {
	t.Helper()
	var ports []int
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(p, "/")
		n, err := strconv.Atoi(p[strings.LastIndex(p, ":")+1:])
		if err != nil {
			t.Fatalf("compose: port %q", p)
		}
		ports = append(ports, n)
	}
	return ports
}

// mountedConfig returns the file, relative to the repository, that the
// service sees at target.
func (f composeFile) mountedConfig(s composeService, target string) string {
	for _, c := range s.Configs {
		if c.Target == target {
			return path.Join("deploy", f.Configs[c.Source].File)
		}
	}
	return ""
}

func composeConfig(t *testing.T) []byte { return readFile(t, "deploy/herd.compose.yaml") }

func TestCompose(t *testing.T) {
	f := decodeYAML[composeFile](t, "deploy/compose.yaml")[0]
	cfg := parseConfig(t, "deploy/herd.compose.yaml", composeConfig(t))
	cfgPath := imageConfigPath(t)
	admin := adminPort(t, cfg)
	dataVolumes := map[string]string{} // volume name → service

	for _, s := range cfg.Servers {
		host, port := splitAddr(t, s.Addr)
		svc, ok := f.Services[host]
		if !ok {
			t.Errorf("server %s: its address %s names no compose service", s.Name, s.Addr)
			continue
		}
		if want := []string{"serve", "-config", cfgPath, s.Name}; !slices.Equal(svc.Command, want) {
			t.Errorf("service %s: command %q, want %q", host, svc.Command, want)
		}
		if got := f.mountedConfig(svc, cfgPath); got != "deploy/herd.compose.yaml" {
			t.Errorf("service %s: %s is %q, want deploy/herd.compose.yaml", host, cfgPath, got)
		}
		ports := svc.containerPorts(t)
		for _, p := range []int{port, admin} {
			if !slices.Contains(ports, p) {
				t.Errorf("service %s: publishes %q, not container port %d", host, svc.Ports, p)
			}
		}
		if _, ok := svc.Environment[config.EnvPeerSecret]; !ok {
			t.Errorf("service %s: no %s in its environment", host, config.EnvPeerSecret)
		}
		if !slices.ContainsFunc(svc.Networks, func(n string) bool { _, ok := f.Networks[n]; return ok }) {
			t.Errorf("service %s: networks %q, want the file's own network", host, svc.Networks)
		}
		volume := ""
		for _, v := range svc.Volumes {
			if name, target, _ := strings.Cut(v, ":"); target == cfg.DataDir {
				volume = name
			}
		}
		if _, ok := f.Volumes[volume]; !ok {
			t.Errorf("service %s: no named volume at data_dir %s", host, cfg.DataDir)
		} else if other, dup := dataVolumes[volume]; dup {
			t.Errorf("services %s and %s share the volume %s", other, host, volume)
		}
		dataVolumes[volume] = host
	}
	if len(f.Services) != len(cfg.Servers) {
		t.Errorf("compose has %d services for %d servers", len(f.Services), len(cfg.Servers))
	}
}
