package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failingListen fails with each of errs in turn, then listens on loopback.
func failingListen(errs ...error) (listenFunc, *int) {
	calls := 0
	return func(ctx context.Context, addr string) (net.Listener, error) {
		calls++
		if calls <= len(errs) {
			return nil, errs[calls-1]
		}
		return netListen(ctx, "127.0.0.1:0")
	}, &calls
}

func TestListenPatiently(t *testing.T) {
	notFound := &net.DNSError{Err: "no such host", Name: "herd-0.herd.herd.svc.cluster.local", IsNotFound: true}
	notHere := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	tests := []struct {
		name      string
		errs      []error
		patience  time.Duration
		wantCalls int
		wantErr   error // nil: listening
		wantLogs  int   // warnings logged
	}{
		{"name resolves on the third try", []error{notFound, notFound}, time.Minute, 3, nil, 2},
		{"address appears on the second try", []error{notHere}, time.Minute, 2, nil, 1},
		{"address in use: no retry", []error{inUse}, time.Minute, 1, inUse, 0},
		{"patience runs out", []error{notFound, notFound, notFound, notFound}, 500 * time.Millisecond, 2, notFound, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen, calls := failingListen(tt.errs...)
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			ln, err := listenPatiently(t.Context(), listen, "herd-0.herd.herd.svc.cluster.local:11550", tt.patience, logger)
			if ln != nil {
				ln.Close()
			}
			if (tt.wantErr == nil) != (err == nil) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("listenPatiently: err %v; want %v", err, tt.wantErr)
			}
			if *calls != tt.wantCalls {
				t.Errorf("listen called %d times; want %d", *calls, tt.wantCalls)
			}
			warnings := strings.Count(logs.String(), `level=WARN msg="cannot listen yet; retrying" addr=herd-0.herd.herd.svc.cluster.local:11550`)
			if warnings != tt.wantLogs {
				t.Errorf("logged %d retry warnings naming the address; want %d:\n%s", warnings, tt.wantLogs, logs.String())
			}
		})
	}
}

func TestListenPatiently_StopsOnCancel(t *testing.T) {
	notFound := &net.DNSError{Err: "no such host", Name: "nowhere", IsNotFound: true}
	listen, _ := failingListen(notFound, notFound, notFound, notFound, notFound, notFound)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := listenPatiently(ctx, listen, "nowhere:1", time.Minute, slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("listenPatiently after cancel: err %v after %v; want the context's error soon after", err, time.Since(start))
	}
}
