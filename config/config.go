// Package config reads bulwark.yaml, the file behind `bulwark run` and
// `bulwark validate`. It checks the whole file in one place and reports
// every problem as "file:line: field: what is wrong", so that a bad edit is
// refused with a message that says where and what to write instead, while
// the running config keeps serving.
//
// The file's gateway part is proxy.Config; the registry and delivery
// sections are plain structs here, translated into each component's own
// config by cmd/bulwark, so components stay independent of the file format.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark-go/bulwark/proxy"
	"go.yaml.in/yaml/v3"
)

// File is the content of bulwark.yaml.
type File struct {
	// The gateway: listeners, routes, upstreams.
	proxy.Config `yaml:",inline"`
	// Admin serves /metrics, the admin API and the dashboard.
	Admin Admin `yaml:"admin"`
	// Registry runs a registry node in this process.
	Registry *Registry `yaml:"registry"`
	// Discovery points discovered upstreams at registry nodes.
	Discovery Discovery `yaml:"discovery"`
	// Delivery stores async routes' requests.
	Delivery *Delivery `yaml:"delivery"`
	// Cluster makes this gateway one of a cluster that owns a virtual IP.
	Cluster *Cluster `yaml:"cluster"`
	// Tracing exports OpenTelemetry traces; off by default.
	Tracing Tracing `yaml:"tracing"`
}

// Admin is the admin listener.
type Admin struct {
	// Address is host:port; empty disables the admin listener.
	Address string `yaml:"address"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// the admin listener's write APIs (dead-letter replay, the dashboard's
	// chaos controls); the environment variable BULWARK_ADMIN_TOKEN is
	// used when it is empty. Without either, bulwark run refuses an
	// Address that is not loopback.
	Token string `yaml:"token"`
}

// Error is one problem in a config file.
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

// Error formats the problem as file:line: message.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// ErrInvalid is wrapped by every error Load returns for a file that was
// read but is not a valid config.
var ErrInvalid = errors.New("invalid config")

// Load reads the config file at path, applies the BULWARK_* environment
// overrides (see env.go) and validates the result.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, b, osLookup)
}

// Parse parses and validates a config file's content; name is used in
// error messages. The returned error joins one *Error per problem and
// wraps ErrInvalid. The environment is not read.
func Parse(name string, data []byte) (*File, error) { return parse(name, data, nil) }

func parse(name string, data []byte, lookup func(string) (string, bool)) (*File, error) {
	var f File
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, wrap(yamlErrors(name, err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		errs := yamlErrors(name, err)
		for _, e := range errs {
			locate(&root, e.(*Error))
		}
		return nil, wrap(errs)
	}
	var errs []error
	if lookup != nil {
		if errs = applyEnv(name, &f, lookup); len(errs) > 0 {
			return nil, wrap(errs)
		}
	}
	if err := f.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var fe *proxy.FieldError
			if errors.As(e, &fe) {
				errs = append(errs, &Error{File: name, Line: lineOf(&root, fe.Path), Msg: fe.Error()})
			} else {
				errs = append(errs, &Error{File: name, Msg: e.Error()})
			}
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return a.(*Error).Line - b.(*Error).Line })
		return nil, wrap(errs)
	}
	return &f, nil
}

var quotedRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// locate finds the line of an error the YAML library reported without one
// (errors from UnmarshalText, such as a bad size): the first scalar whose
// value the message quotes.
func locate(root *yaml.Node, e *Error) {
	if e.Line > 0 {
		return
	}
	m := quotedRE.FindStringSubmatch(e.Msg)
	if m == nil {
		return
	}
	want, err := strconv.Unquote(`"` + m[1] + `"`)
	if err != nil {
		return
	}
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if n.Kind == yaml.ScalarNode && n.Value == want {
			return n.Line
		}
		for _, c := range n.Content {
			if l := walk(c); l > 0 {
				return l
			}
		}
		return 0
	}
	e.Line = walk(root)
}

// Validate checks the whole file.
func (f *File) Validate() error {
	var errs []error
	if err := f.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	add := func(path, format string, args ...any) {
		errs = append(errs, &proxy.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if f.Admin.Address != "" && !strings.Contains(f.Admin.Address, ":") {
		add("admin.address", "%q is not host:port", f.Admin.Address)
	}
	f.validateSections(add)
	return errors.Join(errs...)
}

func wrap(errs []error) error {
	return fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns the YAML library's errors ("yaml: line 3: ...", or a
// TypeError listing "line 3: field x not found in type proxy.Route") into
// file:line errors with our own wording.
func yamlErrors(name string, err error) []error {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	out := make([]error, 0, len(lines))
	for _, l := range lines {
		e := &Error{File: name, Msg: strings.TrimPrefix(l, "yaml: ")}
		if m := lineRE.FindStringSubmatch(l); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		e.Msg = friendlier(e.Msg)
		out = append(out, e)
	}
	return out
}

var notFoundRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func friendlier(msg string) string {
	if m := notFoundRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q: check its spelling against the config reference (docs/config.md)", m[1])
	}
	return msg
}

// lineOf finds the line of a field path such as "routes[1].retries.on[0]"
// in the YAML tree: the deepest node of the path that exists, so a missing
// field points at its parent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range strings.Split(path, ".") {
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			name = seg[:i]
			idx, _ = strconv.Atoi(seg[i+1 : len(seg)-1])
		}
		next, keyLine := child(n, name)
		if next == nil {
			return line
		}
		n, line = next, keyLine
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func child(n *yaml.Node, key string) (*yaml.Node, int) {
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}
