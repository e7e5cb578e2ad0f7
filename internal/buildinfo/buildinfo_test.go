package buildinfo

import "testing"

func TestInfo_String(t *testing.T) {
	tests := []struct {
		info Info
		want string
	}{
		{Info{Version: "(devel)"}, "(devel)"},
		{Info{Version: "v1.2.3", GoVersion: "go1.26.8"}, "v1.2.3 (go1.26.8)"},
		{Info{Version: "(devel)", Revision: "0123456789abcdef0123", Time: "2026-12-01T10:00:00Z", GoVersion: "go1.26.8"},
			"(devel) (rev 0123456789ab, 2026-12-01T10:00:00Z, go1.26.8)"},
		{Info{Version: "v1", Revision: "abc", Modified: true}, "v1 (rev abc+dirty)"},
	}
	for _, tt := range tests {
		if got := tt.info.String(); got != tt.want {
			t.Errorf("%+v.String() = %q; want %q", tt.info, got, tt.want)
		}
	}
}

func TestGet_NeverEmpty(t *testing.T) {
	if Get().Version == "" {
		t.Error("Get().Version is empty; want a version or (devel)")
	}
}
