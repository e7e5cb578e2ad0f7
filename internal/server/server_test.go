package server

import (
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/herd"
)

// A server is ready only when updates flow both ways with the herd: out to
// at least one neighbor, and in from at least one.
func TestServer_NotReady(t *testing.T) {
	tests := []struct {
		name    string
		serving bool
		out, in []bool // per neighbor
		want    string // "" or a part of the reason
	}{
		{"not serving yet", false, []bool{true}, []bool{true}, "not accepting connections"},
		{"no neighbors", true, nil, nil, ""},
		{"both ways with one neighbor", true, []bool{true, false}, []bool{false, true}, ""},
		{"no link at all", true, []bool{false, false}, []bool{false, false}, "no peer link is up (0 of 2 neighbors)"},
		{"only outbound", true, []bool{true, true}, []bool{false, false}, "nothing from the herd arrives"},
		{"only inbound", true, []bool{false, false}, []bool{true, false}, "updates taken here do not spread"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			neighbors := map[string]string{}
			for i := range tt.out {
				neighbors[string(rune('A'+i))] = "127.0.0.1:1"
			}
			s, err := New(Options{Name: "Z", Node: herd.NewNode("Z", nil), Places: bigPlaces{}, Neighbors: neighbors})
			if err != nil {
				t.Fatal(err)
			}
			s.serving.Store(tt.serving)
			for i := range tt.out {
				l := s.links[string(rune('A'+i))]
				l.outUp.Store(tt.out[i])
				l.inUp.Store(tt.in[i])
			}
			got := s.NotReady()
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("NotReady() = %q; want %q", got, tt.want)
			}
		})
	}
}
