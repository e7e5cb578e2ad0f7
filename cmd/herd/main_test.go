package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	want := "herd " + buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out, _, err := herdCmd(t, args...)
		if err != nil || out != want {
			t.Errorf("herd %s: %q, %v; want %q", args[0], out, err, want)
		}
	}
}

// TestExitStatus_BadFlagSaidOnce: a bad flag is reported once, by the flag
// package with the command's usage, not again by main; other errors are
// printed by main; both exit 2.
func TestExitStatus_BadFlagSaidOnce(t *testing.T) {
	for _, args := range [][]string{{"up", "-bogus"}, {"serve", "-bogus", "X"}, {"client", "-bogus"}, {"bench", "-bogus"}} {
		var stderr bytes.Buffer
		env := &Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
		status := exitStatus(&stderr, Run(t.Context(), env, args))
		if n := strings.Count(stderr.String(), "flag provided but not defined: -bogus"); status != 2 || n != 1 {
			t.Errorf("herd %s: exit %d, the bad flag said %d times; want 2, once:\n%s", strings.Join(args, " "), status, n, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if status := exitStatus(&stderr, errors.New("serve: boom")); status != 2 || stderr.String() != "herd: serve: boom\n" {
		t.Errorf("exitStatus of an error: %d, %q; want 2, %q", status, stderr.String(), "herd: serve: boom\n")
	}
}
