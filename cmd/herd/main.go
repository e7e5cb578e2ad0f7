// Command herd runs an application server herd: servers that take client
// locations (IAMAT), flood them to each other, and answer what is near a
// client (WHATSAT). See README.md and SPEC.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/herd-dev/herd/internal/buildinfo"
	"github.com/herd-dev/herd/internal/config"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *Env, args []string) error
}

// Env is what a subcommand may touch, so tests can run it in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

var commands = []command{
	{"serve", "run one server in the foreground", runServe},
	{"up", "start the herd's servers (or those named) in the background", runUp},
	{"down", "stop the herd's servers (or those named)", runDown},
	{"restart", "stop, then start, the herd's servers (or those named)", runRestart},
	{"status", "show which servers are up and which links are connected", runStatus},
	{"client", "send commands to a server, interactively or from a script", runClient},
	{"bench", "measure throughput, latency, propagation, catch-up and memory", runBench},
	{"version", "print the version and the revision it was built from (also -version)", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // a second signal forces exit
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(os.Stderr, "herd: forced exit")
		os.Exit(130)
	}()
	env := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(exitStatus(os.Stderr, Run(ctx, env, os.Args[1:])))
}

// exitStatus prints what went wrong, unless it was printed already (help,
// or a bad flag with the usage), and returns the process's exit status: 0
// without an error, 2 with one.
func exitStatus(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var printed flagError
	if !errors.Is(err, flag.ErrHelp) && !errors.As(err, &printed) {
		fmt.Fprintln(stderr, "herd:", err)
	}
	return 2
}

// Run dispatches args to a subcommand.
func Run(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	if args[0] == "-version" || args[0] == "--version" {
		return runVersion(ctx, env, args[1:])
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	usage(env.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: herd <command> [flags] [args]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'herd <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set for a subcommand with the -config flag every
// subcommand shares.
func newFlagSet(env *Env, name, args, summary string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg := fs.String("config", "herd.yaml", "configuration file (the built-in five-server herd if the default file is absent)")
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: herd %s [flags] %s\n\n%s\n\nflags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs, cfg
}

// flagError is a bad flag, which the flag package has already printed with
// the command's usage.
type flagError struct{ error }

func (e flagError) Unwrap() error { return e.error }

// parseFlags parses a command's flags; a bad one is a flagError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return flagError{err}
	}
	return err
}

// loadConfig reads the configuration file. When the file is the default one
// and does not exist, the built-in seed herd is used instead.
func loadConfig(fs *flag.FlagSet, path string) (*config.Config, error) {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	if _, err := os.Stat(path); !explicit && errors.Is(err, os.ErrNotExist) {
		return config.Default(), nil
	}
	return config.ReadFile(path)
}

// runVersion prints the version, and the VCS revision and commit time the
// binary was built from when the toolchain recorded them.
func runVersion(_ context.Context, env *Env, _ []string) error {
	fmt.Fprintln(env.Stdout, "herd", buildinfo.Get())
	return nil
}
