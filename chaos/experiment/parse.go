package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseError is one problem in an experiment file, at a line.
type ParseError struct {
	File string // the file's name as given to Load or Parse
	Line int    // 1-based line
	Msg  string // what is wrong and what to write instead
}

// Error formats the problem as file:line: message, as compilers do, so
// editors can jump to it.
func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap makes every ParseError match [ErrInvalid].
func (e *ParseError) Unwrap() error { return ErrInvalid }

// maxFileSize bounds an experiment file.
const maxFileSize = 1 << 20

// Load reads and parses the experiment file at path.
func Load(path string) (*Experiment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, &ParseError{path, 1, "file larger than 1 MiB"}
	}
	return Parse(path, data)
}

// Parse parses an experiment from data; name is used in messages. Unknown
// keys are errors. The returned error joins every problem found, each a
// *ParseError naming name:line and what to write instead.
func Parse(name string, data []byte) (*Experiment, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return nil, &ParseError{name, 1, "empty file: an experiment needs at least target, load and method"}
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return nil, &ParseError{name, root.Content[0].Line, "an experiment is a mapping of keys (title, target, load, hypothesis, method, rollbacks)"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var e Experiment
	if err := dec.Decode(&e); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ParseError{name, extra.Line, "only one YAML document per experiment file"}
	}
	e.File = name
	e.applyDefaults()
	ps := e.validate()
	if len(ps) == 0 {
		return &e, nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = &ParseError{name, lineOf(root.Content[0], p.path), p.msg}
	}
	return nil, errors.Join(errs...)
}

// lineOf finds the line of a path of mapping keys and sequence indexes,
// or of the deepest part of it that exists.
func lineOf(n *yaml.Node, path []string) int {
	line := n.Line
	for _, key := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(key)
			if err != nil || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

var (
	lineRe     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	notFoundRe = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	cannotRe   = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.+)$")
)

// yamlError turns the YAML library's errors into ParseErrors with
// messages that say what to write.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, s := range te.Errors {
			errs = append(errs, lineError(name, s))
		}
		return errors.Join(errs...)
	}
	return lineError(name, err.Error())
}

func lineError(name, s string) *ParseError {
	m := lineRe.FindStringSubmatch(s)
	if m == nil {
		return &ParseError{name, 1, strings.TrimPrefix(s, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	return &ParseError{name, line, friendly(m[2])}
}

// friendly rewrites the YAML library's messages for people.
func friendly(msg string) string {
	if m := notFoundRe.FindStringSubmatch(msg); m != nil {
		section, keys := knownKeys(m[2])
		return fmt.Sprintf("unknown key %q in %s: known keys are %s", m[1], section, strings.Join(keys, ", "))
	}
	if m := cannotRe.FindStringSubmatch(msg); m != nil {
		switch {
		case m[3] == "time.Duration":
			return fmt.Sprintf("%q is not a duration: write e.g. 500ms, 2s or 1m", m[2])
		case strings.HasPrefix(m[3], "float") || strings.HasPrefix(m[3], "int"):
			return fmt.Sprintf("%q is not a number", m[2])
		case m[3] == "bool":
			return fmt.Sprintf("%q is not true or false", m[2])
		case strings.HasPrefix(m[3], "[]"):
			return fmt.Sprintf("expected a list (- item lines or [a, b]), got %s %q", m[1], m[2])
		case strings.HasPrefix(m[3], "map") || strings.HasPrefix(m[3], "experiment."):
			return fmt.Sprintf("expected a mapping of keys, got %s %q", m[1], m[2])
		}
	}
	return msg
}

// knownKeys names the section a struct type is used for and lists its keys.
func knownKeys(typeName string) (string, []string) {
	var v any
	section := typeName
	switch strings.TrimPrefix(typeName, "experiment.") {
	case "Experiment":
		v, section = Experiment{}, "the experiment"
	case "LoadProfile":
		v, section = LoadProfile{}, "load"
	case "Expect":
		v, section = Expect{}, "load.expect"
	case "BodyCheck":
		v, section = BodyCheck{}, "load.expect.body"
	case "Hypothesis":
		v, section = Hypothesis{}, "hypothesis"
	case "Action":
		v, section = Action{}, "an action"
	case "AddToxic":
		v, section = AddToxic{}, "add_toxic"
	case "RemoveToxic":
		v, section = RemoveToxic{}, "remove_toxic"
	case "HTTPCall":
		v, section = HTTPCall{}, "http"
	default:
		return section, nil
	}
	t := reflect.TypeOf(v)
	var keys []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return section, keys
}
