package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bulwark-go/bulwark/config"
)

// The command line's conventions (docs/cli.md): every command has --help
// with examples and exits 0 on it; every flag can also be set by an
// environment variable (envName), the command line winning; a wrong
// command line exits 2, a failure 1.

// errHelp is returned by parseFlags for -h/--help: the help was printed
// and the command exits 0.
var errHelp = errors.New("help requested")

// commandHelp is what --help prints above a command's flags.
type commandHelp struct {
	usage, summary, examples string
}

// helps is keyed by the flag set's name ("up", "chaos proxy", ...).
var helps = map[string]commandHelp{
	"up": {"bulwark up [flags]",
		"Runs the whole system on this machine with embedded defaults: a registry node, the gateway,\ndurable delivery, the dashboard, three demo replicas and a gentle traffic generator.",
		"bulwark up\n  bulwark up --tls                       # mutual TLS between the parts, certificates from its own CA\n  bulwark up --listen 127.0.0.1:9080 --dashboard 127.0.0.1:9081 --traffic=false\n  bulwark up --config bulwark.yaml       # your own config, with the dashboard"},
	"proxy": {"bulwark proxy --listen ADDR --to URL [--to URL ...] [flags]",
		"The one-liner gateway, fault-tolerant by default: P2C-EWMA balancing, outlier ejection,\nretries on another endpoint within a retry budget, per-try timeouts, Content-Digest checks.",
		"bulwark proxy --listen :8080 --to http://10.0.0.1:9000 --to http://10.0.0.2:9000\n  bulwark proxy --to http://a:9000 --to http://b:9000 --health /healthz --hedge p95\n  BULWARK_PROXY_LISTEN=:8080 bulwark proxy --to http://a:9000"},
	"run": {"bulwark run [-c bulwark.yaml] [flags]",
		"Runs the components the config file enables (gateway, registry node, delivery, admin).\nSIGHUP or a change of the file reloads the gateway without dropping a request.",
		"bulwark run -c /etc/bulwark/bulwark.yaml\n  BULWARK_CONFIG=/etc/bulwark/bulwark.yaml BULWARK_ADMIN_ADDRESS=0.0.0.0:9100 bulwark run\n  kill -HUP $(pidof bulwark)              # reload"},
	"validate": {"bulwark validate [-c bulwark.yaml]",
		"Checks a config file and prints every problem with its file and line. Exits 1 when invalid.",
		"bulwark validate -c bulwark.yaml"},
	"demo": {"bulwark demo [flags]",
		"Serves one replica of the demo service (what bulwark up runs three of), optionally registered.",
		"bulwark demo --listen 127.0.0.1:9001 --id a\n  bulwark demo --registry 127.0.0.1:8500 --id b"},
	"chaos proxy": {"bulwark chaos proxy [flags]",
		"A toxic proxy server with Toxiproxy's HTTP API: latency, bandwidth, resets, corruption between hops.",
		"bulwark chaos proxy --listen 127.0.0.1:8474\n  toxiproxy-cli create -l 127.0.0.1:9000 -u 127.0.0.1:8080 api"},
	"chaos run": {"bulwark chaos run [--out DIR] EXPERIMENT.yaml",
		"Runs a self-verifying experiment and writes its HTML and JSON report; exits 1 when the hypothesis broke.",
		"bulwark chaos run examples/experiments/replica-crash.yaml\n  bulwark chaos run --out report/ experiment.yaml"},
	"chaos monkey": {"bulwark chaos monkey --service NAME (--registry ADDR | --victim SERVICE/ID=PID|URL ...) [flags]",
		"Kills instances of opted-in services on a schedule, keeping a minimum healthy.",
		"bulwark chaos monkey --service demo --registry 127.0.0.1:8500 --mtbk 10m --dry-run"},
	"delivery replay": {"bulwark delivery replay --admin ADDR [--id ID ...] [--upstream U] [--route R] [--limit N]",
		"Re-enqueues dead-lettered messages through a running node's admin API.",
		"bulwark delivery replay --admin 127.0.0.1:9100 --upstream orders\n  bulwark delivery replay --admin 127.0.0.1:9100 --id 01J9... --id 01J9..."},
	"delivery dead": {"bulwark delivery dead --admin ADDR [--limit N]",
		"Lists dead-lettered messages of a running node, as JSON.",
		"bulwark delivery dead --admin 127.0.0.1:9100 --limit 10"},
	"ca init": {"bulwark ca init [--dir DIR] [--name NAME]",
		"Creates a certificate authority (ECDSA P-256) for mutual TLS between hops: DIR/ca.pem and DIR/ca-key.pem.",
		"bulwark ca init --dir ./pki"},
	"ca issue": {"bulwark ca issue NAME [--dir DIR] [--dns HOST ...] [--ip ADDR ...] [--days N]",
		"Issues a certificate for server and client authentication, signed by the CA in DIR: DIR/NAME.pem, DIR/NAME-key.pem.",
		"bulwark ca issue gateway --dir ./pki --ip 127.0.0.1\n  bulwark ca issue orders-1 --dir ./pki --dns orders-1.internal"},
	"ca sign-key": {"bulwark ca sign-key NAME [--dir DIR]",
		"Creates an Ed25519 key for signed answers (RFC 9421): DIR/NAME-sign-key.pem; prints the public key for signature_key.",
		"bulwark ca sign-key orders-1 --dir ./pki"},
	"version": {"bulwark version [-v]",
		"Prints the version, the commit and the Go version this binary was built with.",
		"bulwark version\n  bulwark version -v"},
	"completion": {"bulwark completion bash|zsh",
		"Prints a shell completion script.",
		"source <(bulwark completion bash)\n  bulwark completion zsh > \"${fpath[1]}/_bulwark\""},
}

// envName is the environment variable behind a flag: BULWARK_CONFIG for
// the bulwark.yaml path (-c, up --config), BULWARK_<COMMAND>_<FLAG>
// otherwise, so that `up`'s children (demo replicas) never pick up a
// variable meant for `up`.
func envName(cmd, flagName string) string {
	if flagName == "c" || (cmd == "up" && flagName == "config") {
		return "BULWARK_CONFIG"
	}
	r := strings.NewReplacer("-", "_", " ", "_", ".", "_")
	return "BULWARK_" + strings.ToUpper(r.Replace(cmd)+"_"+r.Replace(flagName))
}

// newFlagSet is a command's flag set: errors go to stderr, and its usage
// prints the command's help, its flags and their environment variables.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(fs.Output(), fs) }
	return fs
}

func printHelp(w io.Writer, fs *flag.FlagSet) {
	h, ok := helps[fs.Name()]
	if !ok {
		h.usage = "bulwark " + fs.Name() + " [flags]"
	}
	fmt.Fprintf(w, "Usage:\n  %s\n\n", h.usage)
	if h.summary != "" {
		fmt.Fprintf(w, "%s\n\n", h.summary)
	}
	if h.examples != "" {
		fmt.Fprintf(w, "Examples:\n  %s\n\n", h.examples)
	}
	fmt.Fprintln(w, "Flags (each also settable by the environment variable shown; the command line wins):")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n    \t$%s\n", envName(fs.Name(), f.Name))
	})
	if n := fs.Name(); n == "run" || n == "validate" || n == "up" {
		fmt.Fprintf(w, "\nbulwark.yaml keys from the environment (they win over the file; lists comma-separated):\n  %s\n",
			strings.Join(config.EnvNames(), "\n  "))
	}
	fmt.Fprintln(w, "\nExit codes: 0 success, 1 failure, 2 wrong command line (docs/cli.md).")
}

// parseFlags sets fs's flags from the environment, then from args. It
// returns errHelp for -h/--help, and an errUsage error for a bad flag or
// a bad environment value.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(fs.Name(), f.Name)
		v, ok := os.LookupEnv(env)
		if !ok || envErr != nil {
			return
		}
		vals := []string{v}
		if _, multi := f.Value.(*multiFlag); multi {
			vals = strings.Split(v, ",") // a repeatable flag: comma-separated
		}
		for _, v := range vals {
			if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
				envErr = fmt.Errorf("%w: $%s=%q: %v", errUsage, env, v, err)
				return
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// wantsHelp reports whether a command line asks for help, so that run can
// send the help to stdout.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}
