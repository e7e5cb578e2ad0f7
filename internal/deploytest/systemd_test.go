package deploytest

import (
	"bufio"
	"bytes"
	"path"
	"slices"
	"strings"
	"testing"
)

// readUnit returns a unit file's directives, each with its values in order.
func readUnit(t *testing.T, rel string) map[string][]string {
	t.Helper()
	unit := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, rel)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", rel, line)
		}
		unit[k] = append(unit[k], v)
	}
	return unit
}

func TestSystemdUnit(t *testing.T) {
	unit := readUnit(t, "deploy/systemd/herd@.service")
	cfg := parseConfig(t, "deploy/systemd/herd.yaml", readFile(t, "deploy/systemd/herd.yaml"))
	for _, tc := range []struct{ key, want string }{
		{"User", "herd"},
		{"EnvironmentFile", "-/etc/herd/env"},
		{"Restart", "on-failure"},
		{"KillSignal", "SIGTERM"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"PrivateTmp", "yes"},
		{"StateDirectory", path.Base(cfg.DataDir)},
		{"LogsDirectory", path.Base(cfg.LogDir)},
	} {
		if got := unit[tc.key]; !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s=%q, want %q", tc.key, got, tc.want)
		}
	}
	if len(unit["TimeoutStopSec"]) != 1 {
		t.Error("no TimeoutStopSec")
	}
	if cfg.DataDir != "/var/lib/"+path.Base(cfg.DataDir) || cfg.LogDir != "/var/log/"+path.Base(cfg.LogDir) {
		t.Errorf("data_dir %s and log_dir %s are not the unit's state and logs folders", cfg.DataDir, cfg.LogDir)
	}
	writable := strings.Fields(strings.Join(unit["ReadWritePaths"], " "))
	for _, dir := range []string{cfg.DataDir, cfg.LogDir} {
		if !slices.Contains(writable, dir) {
			t.Errorf("ReadWritePaths %q lacks %s", writable, dir)
		}
	}
	exec := strings.Fields(strings.Join(unit["ExecStart"], " "))
	if len(exec) != 5 || path.Base(exec[0]) != "herd" || !slices.Equal(exec[1:], []string{"serve", "-config", "/etc/herd/herd.yaml", "%i"}) {
		t.Errorf("ExecStart=%q, want herd serve -config /etc/herd/herd.yaml %%i", exec)
	}
}
