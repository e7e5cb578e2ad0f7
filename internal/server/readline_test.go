package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// readAll runs input through a connection's line reader, written in the
// given chunks, and returns each line read (marking cut ones) until EOF.
func readAll(t *testing.T, maxLine int, chunks ...[]byte) (lines []string, cut []bool) {
	t.Helper()
	client, srv := net.Pipe()
	s := &Server{opt: Options{MaxLineBytes: maxLine, LongLineMemory: 64 << 20}}
	c := &acceptedConn{s: s, conn: srv, readTimeout: 5 * time.Second}
	c.br = bufio.NewReaderSize(connReader{c, srv}, readBufferSize)
	go func() {
		for _, ch := range chunks {
			client.Write(ch)
		}
		client.Close()
	}()
	for {
		line, tooLong, err := c.readLine(maxLine)
		if err == nil || len(line) > 0 && errors.Is(err, io.EOF) {
			lines, cut = append(lines, string(line)), append(cut, tooLong)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("readLine: %v", err)
			}
			return lines, cut
		}
	}
}

func TestReadLine(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 10_000)
	tests := []struct {
		name    string
		chunks  [][]byte
		want    []string
		wantCut []bool
	}{
		{"pipelined", [][]byte{[]byte("A 1\nB 2\n")}, []string{"A 1", "B 2"}, []bool{false, false}},
		{"split", [][]byte{[]byte("IAM"), []byte("AT x\nWHAT"), []byte("SAT\n")}, []string{"IAMAT x", "WHATSAT"}, []bool{false, false}},
		{"last line without newline", [][]byte{[]byte("A\nB")}, []string{"A", "B"}, []bool{false, false}},
		{"CR kept", [][]byte{[]byte("A\r\n")}, []string{"A\r"}, []bool{false}},
		{"empty lines", [][]byte{[]byte("\n\n")}, []string{"", ""}, []bool{false, false}},
		{"long line cut, next line whole", [][]byte{long, []byte("\nok\n")}, []string{string(long[:100]), "ok"}, []bool{true, false}},
		{"long line over many reads", [][]byte{long[:3000], long[3000:], []byte("\n")}, []string{string(long[:100])}, []bool{true}},
		{"exactly the cap", [][]byte{long[:100], []byte("\n")}, []string{string(long[:100])}, []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cut := readAll(t, 100, tt.chunks...)
			if len(got) != len(tt.want) {
				t.Fatalf("lines = %q; want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] || cut[i] != tt.wantCut[i] {
					t.Errorf("line %d = %q (cut %v); want %q (cut %v)", i, got[i], cut[i], tt.want[i], tt.wantCut[i])
				}
			}
		})
	}
}

// FuzzReadLine: however input is split into two writes, the reader returns
// the same lines as splitting it at newlines, each cut to the cap.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte("IAMAT a +1+1 1.5\nWHATSAT a 10 5\n"), 7)
	f.Add([]byte("x\n\ny"), 1)
	f.Fuzz(func(t *testing.T, in []byte, at int) {
		if at < 0 || at > len(in) {
			at = len(in) / 2
		}
		const limit = 64
		got, _ := readAll(t, limit, in[:at], in[at:])
		var want []string
		for i, l := range bytes.Split(in, []byte("\n")) {
			if i == bytes.Count(in, []byte("\n")) && len(l) == 0 {
				break // input ended with a newline
			}
			want = append(want, string(l[:min(len(l), limit)]))
		}
		if len(got) != len(want) {
			t.Fatalf("lines of %q split at %d = %q; want %q", in, at, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d of %q split at %d = %q; want %q", i, in, at, got[i], want[i])
			}
		}
	})
}
