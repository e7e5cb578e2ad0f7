// Package buildinfo says which build of herd is running: the version given
// at link time, or else what the Go toolchain recorded (module version, VCS
// revision and commit time).
package buildinfo

import (
	"runtime/debug"
	"sync"
)

// version is set with -ldflags "-X github.com/herd-dev/herd/internal/buildinfo.version=v1.2.3".
var version = ""

// Info describes a build.
type Info struct {
	Version   string // the link-time version, the module version, or "(devel)"
	Revision  string // VCS revision, "" if unknown
	Time      string // VCS commit time (RFC 3339), "" if unknown
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string
}

// Get returns the running binary's build information.
var Get = sync.OnceValue(func() Info {
	info := Info{Version: version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = "(devel)"
		}
		return info
	}
	info.GoVersion = bi.GoVersion
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
})

// String renders the information on one line, as herd version prints it:
// "v1.2.3 (rev 0123abcd, 2026-12-01T10:00:00Z, go1.26.8)".
func (i Info) String() string {
	s := i.Version
	extra := ""
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		extra = "rev " + rev
		if i.Modified {
			extra += "+dirty"
		}
	}
	if i.Time != "" {
		extra = join(extra, i.Time)
	}
	if i.GoVersion != "" {
		extra = join(extra, i.GoVersion)
	}
	if extra != "" {
		s += " (" + extra + ")"
	}
	return s
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}
