package member

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
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
		// logged says the log was open when Open failed: it must then say
		// why the server did not start.
		logged bool
	}{
		{"data_dir is a file", func(c *config.Config) { c.DataDir = file }, "data_dir", true},
		{"log_dir is under a file", func(c *config.Config) { c.LogDir = filepath.Join(file, "logs") }, "log_dir", false},
		{"the server already runs on this data_dir", func(*config.Config) {}, "data_dir", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.setup(cfg)
			var logs bytes.Buffer // written by the log's goroutine until Open, failing, has closed it
			out := io.Writer(&logs)
			if !tc.logged {
				out = nil
			}
			m, err := Open(context.Background(), cfg, name, Overrides{LogOutput: out})
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			if m != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, %v; want no member and an error naming %s", m, err, tc.want)
			}
			if tc.logged && !strings.Contains(logs.String(), `level=ERROR msg="cannot start" server=`+name) {
				t.Errorf("the log does not say why the server did not start:\n%s", logs.String())
			}
		})
	}
}

// TestOpen_StartWarningsAndPeerSecret checks what a member says at start
// about its secrets: a peer secret shorter than 16 bytes is refused, and a
// missing peer secret or places key is a warning for herd serve to print.
func TestOpen_StartWarningsAndPeerSecret(t *testing.T) {
	for _, tc := range []struct {
		name         string
		env          map[string]string
		wantErr      string
		wantWarnings []string // each names its variable
	}{
		{"both set", map[string]string{config.EnvPeerSecret: strings.Repeat("s", 16), config.EnvPlacesAPIKey: "key"}, "", nil},
		{"no peer secret", map[string]string{config.EnvPlacesAPIKey: "key"}, "", []string{config.EnvPeerSecret}},
		{"no places key", map[string]string{config.EnvPeerSecret: strings.Repeat("s", 32)}, "", []string{config.EnvPlacesAPIKey}},
		{"neither", nil, "", []string{config.EnvPeerSecret, config.EnvPlacesAPIKey}},
		{"a 15-byte peer secret", map[string]string{config.EnvPeerSecret: strings.Repeat("s", 15), config.EnvPlacesAPIKey: "key"}, config.EnvPeerSecret, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Default()
			cfg.LogDir, cfg.DataDir = filepath.Join(dir, "logs"), filepath.Join(dir, "data")
			cfg.Places.Provider = config.ProviderGoogle
			var logs bytes.Buffer
			m, err := Open(context.Background(), cfg, "Alford", Overrides{LogOutput: &logs, Env: func(k string) string { return tc.env[k] }})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Open = %v; want an error naming %s", err, tc.wantErr)
				}
				if m != nil {
					m.Close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.Warnings) != len(tc.wantWarnings) {
				t.Fatalf("Warnings = %q; want one naming each of %v", m.Warnings, tc.wantWarnings)
			}
			for i, name := range tc.wantWarnings {
				if !strings.Contains(m.Warnings[i], name) {
					t.Errorf("warning %q does not name %s", m.Warnings[i], name)
				}
			}
			m.Close() // flushes the log
			if missing := slices.Contains(tc.wantWarnings, config.EnvPeerSecret) && !strings.Contains(logs.String(), config.EnvPeerSecret+" is not set"); missing {
				t.Errorf("the log does not warn that %s is not set:\n%s", config.EnvPeerSecret, logs.String())
			}
		})
	}
}
