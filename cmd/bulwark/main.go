// Command bulwark is Bulwark's one binary: the whole system on one machine
// (up), the gateway (proxy, run), config checks (validate) and the chaos
// tools (chaos). It is the only package that wires components together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks errors caused by a wrong command line; they exit with 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "bulwark:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "bulwark:", err)
		os.Exit(1)
	}
}

const usage = `Bulwark keeps a system of networked services correct and available.

Usage:
  bulwark <command> [flags]

Commands:
  up          run the whole system on this machine with embedded defaults
  proxy       the one-liner gateway: bulwark proxy --listen :8080 --to URL --to URL
  run         run the components a config file enables: bulwark run -c bulwark.yaml
  validate    check a config file: bulwark validate -c bulwark.yaml
  chaos       fault injection: chaos proxy | chaos monkey | chaos run EXPERIMENT.yaml
  delivery    durable delivery tools: delivery replay | delivery dead (via a node's admin API)
  ca          certificates for mTLS between hops: ca init | ca issue NAME
  demo        serve one replica of the demo service (used by up and the tests)
  version     print the version and build information (-v: commit, build flags)
  completion  print a shell completion script: completion bash | completion zsh
  help        print this message

Run 'bulwark COMMAND --help' for a command's flags and examples. Every flag can
also be set by an environment variable (BULWARK_CONFIG, BULWARK_<COMMAND>_<FLAG>),
and 'bulwark run' reads BULWARK_<SECTION>_<KEY> over bulwark.yaml (docs/cli.md).
Exit codes: 0 success, 1 failure, 2 wrong command line.
`

// run is the whole program, callable from tests: args excludes the
// program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" && len(rest) > 0 { // bulwark help CMD = bulwark CMD --help
		cmd, rest = rest[0], append(rest[1:], "--help")
	}
	if wantsHelp(rest) {
		stderr = stdout // asked-for help goes to stdout (bulwark proxy --help | less)
		if parentHelp(cmd, rest, stdout) {
			return nil
		}
	}
	err := dispatch(ctx, cmd, rest, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, cmd string, rest []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "version", "--version", "-version":
		return runVersion(rest, stdout, stderr)
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	case "completion":
		return runCompletion(rest, stdout, stderr)
	case "proxy":
		return runProxy(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "run":
		return runRun(ctx, rest, stdout, stderr)
	case "validate":
		return runValidate(ctx, rest, stdout, stderr)
	case "chaos":
		return runChaos(ctx, rest, stdout, stderr)
	case "up":
		return runUp(ctx, rest, stdout, stderr)
	case "ca":
		return runCA(ctx, rest, stdout, stderr)
	case "delivery":
		return runDelivery(ctx, rest, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}
