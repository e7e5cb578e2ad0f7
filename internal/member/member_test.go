package member

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/config"
)

// TestOpenFailsWithAnError checks that a member that cannot start says why,
// naming the setting at fault, and releases what it had opened.
func TestOpenFailsWithAnError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := func() *config.Config {
		cfg := config.Default()
		cfg.LogDir, cfg.DataDir = filepath.Join(dir, "logs"), filepath.Join(dir, "data")
		return cfg
	}
	name := base().Names()[0]

	running, err := Open(context.Background(), base(), name, Overrides{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()

	for _, tc := range []struct {
		name  string
		setup func(*config.Config)
		want  string
	}{
		{"data_dir is a file", func(c *config.Config) { c.DataDir = file }, "data_dir"},
		{"log_dir is under a file", func(c *config.Config) { c.LogDir = filepath.Join(file, "logs") }, "log_dir"},
		{"the server already runs on this data_dir", func(*config.Config) {}, "data_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.setup(cfg)
			m, err := Open(context.Background(), cfg, name, Overrides{})
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			if m != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, %v; want no member and an error naming %s", m, err, tc.want)
			}
		})
	}
}
