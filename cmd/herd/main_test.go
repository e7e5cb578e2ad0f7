package main

import (
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
