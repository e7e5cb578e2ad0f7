package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// listenPatience bounds how long 'herd serve' waits for its listen address
// to become usable. It is shorter than the two minutes the Kubernetes
// startup probe in deploy/k8s allows, so the server exits with the reason
// before the kubelet kills it without one.
const listenPatience = 90 * time.Second

// Backoff between listen attempts.
const (
	listenFirstRetry = 250 * time.Millisecond
	listenMaxRetry   = 5 * time.Second
)

// listenFunc opens a TCP listener; net.Listen, or a stand-in in tests.
type listenFunc func(ctx context.Context, addr string) (net.Listener, error)

func netListen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// listenPatiently listens on addr. When the address's name does not
// resolve yet, or resolves to an address this host does not have yet (a
// pod starts before DNS publishes its record), it retries with doubling
// backoff for up to patience, logging each failure; any other error, such
// as an address in use, returns at once.
func listenPatiently(ctx context.Context, listen listenFunc, addr string, patience time.Duration, logger *slog.Logger) (net.Listener, error) {
	deadline := time.Now().Add(patience)
	wait := listenFirstRetry
	for {
		ln, err := listen(ctx, addr)
		if err == nil || !notYetUsable(err) {
			return ln, err
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w (still failing after %v)", err, patience)
		}
		logger.Warn("cannot listen yet; retrying", "addr", addr, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, listenMaxRetry)
	}
}

// notYetUsable reports whether a listen error may pass by itself: a name
// that does not resolve, or an address not (yet) on this host.
func notYetUsable(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
