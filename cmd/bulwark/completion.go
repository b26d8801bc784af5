package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// commands and their subcommands, for help and completion.
var (
	commandNames = []string{"up", "proxy", "run", "validate", "chaos", "delivery", "ca", "demo", "version", "completion", "help"}
	subcommands  = map[string][]string{"chaos": {"proxy", "run", "monkey"}, "delivery": {"replay", "dead"}, "ca": {"init", "issue", "sign-key"}, "completion": {"bash", "zsh"}}
)

// parentHelp prints the help of a command that only groups subcommands
// (bulwark chaos --help), and reports whether it did.
func parentHelp(cmd string, rest []string, stdout io.Writer) bool {
	subs, ok := subcommands[cmd]
	if !ok || cmd == "completion" || (len(rest) > 0 && slices.Contains(subs, rest[0])) {
		return false
	}
	fmt.Fprintf(stdout, "Usage:\n  bulwark %s <subcommand> [flags]\n\nSubcommands:\n", cmd)
	for _, s := range subs {
		h, ok := helps[cmd+" "+s]
		if !ok {
			fmt.Fprintf(stdout, "  %s\n", s)
			continue
		}
		fmt.Fprintf(stdout, "  %s\n      %s\n", h.usage, strings.ReplaceAll(h.summary, "\n", "\n      "))
	}
	fmt.Fprintf(stdout, "\nRun 'bulwark %s SUBCOMMAND --help' for its flags and examples.\n", cmd)
	return true
}

// runCompletion prints a completion script for bash or zsh: commands,
// subcommands, and each command's flags (read from its flag set).
func runCompletion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("completion", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "bash" && fs.Arg(0) != "zsh") {
		printHelp(stderr, fs)
		return fmt.Errorf("%w: completion needs bash or zsh", errUsage)
	}
	flags := commandFlags()
	var cases strings.Builder
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&cases, "    %q) flags=%q ;;\n", k, strings.Join(flags[k], " "))
	}
	var subs strings.Builder
	for _, c := range []string{"chaos", "delivery", "completion"} {
		fmt.Fprintf(&subs, "    %s) subs=%q ;;\n", c, strings.Join(subcommands[c], " "))
	}
	script := bashCompletion
	if fs.Arg(0) == "zsh" {
		script = zshCompletion
	}
	r := strings.NewReplacer("@COMMANDS@", strings.Join(commandNames, " "), "@FLAGCASES@", cases.String(), "@SUBCASES@", subs.String())
	_, err := io.WriteString(stdout, r.Replace(script))
	return err
}

// commandFlags collects every command's flags by asking each for its
// help with a discarded output: the flag sets stay the one source.
func commandFlags() map[string][]string {
	out := map[string][]string{}
	for name := range helps {
		out[name] = flagNamesOf(name)
	}
	return out
}

// flagNamesOf runs a command with -h into a buffer and reads the flag
// names off its help: commands parse their flags before doing anything.
func flagNamesOf(name string) []string {
	args := append(strings.Fields(name), "-h")
	var buf bytes.Buffer
	dispatch(context.Background(), args[0], args[1:], io.Discard, &buf)
	var names []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, "  -") {
			names = append(names, "-"+strings.Fields(line)[0])
		}
	}
	return names
}

const bashCompletion = `# bash completion for bulwark: source <(bulwark completion bash)
_bulwark() {
  local cur cmd key subs flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  cmd="${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur"))
    return
  fi
  subs=""
  case "$cmd" in
@SUBCASES@  esac
  if [ -n "$subs" ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  key="$cmd"
  [ -n "$subs" ] && key="$cmd ${COMP_WORDS[2]}"
  flags=""
  case "$key" in
@FLAGCASES@  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _bulwark bulwark
`

const zshCompletion = `#compdef bulwark
# zsh completion for bulwark: bulwark completion zsh > "${fpath[1]}/_bulwark"
_bulwark() {
  local cmd key subs flags
  cmd="${words[2]}"
  if (( CURRENT == 2 )); then
    compadd -- @COMMANDS@
    return
  fi
  subs=""
  case "$cmd" in
@SUBCASES@  esac
  if [[ -n "$subs" ]] && (( CURRENT == 3 )); then
    compadd -- ${=subs}
    return
  fi
  key="$cmd"
  [[ -n "$subs" ]] && key="$cmd ${words[3]}"
  flags=""
  case "$key" in
@FLAGCASES@  esac
  if [[ "${words[CURRENT]}" == -* ]]; then
    compadd -- ${=flags} --help
    return
  fi
  _files
}
compdef _bulwark bulwark
`
