package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment overrides: every key of the file's sections that holds a
// value (not a list of listeners, routes or upstreams) can be set by a
// variable named BULWARK_ and its path in capitals, dots and dashes as
// underscores: admin.address is BULWARK_ADMIN_ADDRESS, registry.node_id
// BULWARK_REGISTRY_NODE_ID, access_log BULWARK_ACCESS_LOG. Lists are
// comma-separated (BULWARK_DELIVERY_NATS=nats://a:4222,nats://b:4222),
// maps are k=v pairs (BULWARK_TRACING_HEADERS=api-key=s3cret). A variable
// wins over the file; setting a key of an absent section (registry,
// delivery) adds the section. Values are parsed as the file's are, and
// the result is validated as a whole.

// envKey is one overridable key.
type envKey struct {
	env   string
	index []int // reflect field path from File
}

// envKeys lists the overridable keys of File, in declaration order.
func envKeys() []envKey {
	var out []envKey
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := strings.Split(sf.Tag.Get("yaml"), ",")
			idx := append(slices.Clone(index), i)
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if slices.Contains(tag[1:], "inline") {
				walk(ft, prefix, idx)
				continue
			}
			if tag[0] == "" || tag[0] == "-" || !sf.IsExported() {
				continue
			}
			name := prefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(tag[0]))
			switch {
			case ft.Kind() == reflect.Struct && !isScalarType(ft):
				walk(ft, name, idx)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				// listeners, routes, upstreams, peers: only in the file
			default:
				out = append(out, envKey{env: name, index: idx})
			}
		}
	}
	walk(reflect.TypeOf(File{}), "BULWARK", nil)
	return out
}

// isScalarType reports struct types that the file writes as one value.
func isScalarType(t reflect.Type) bool {
	_, ok := reflect.New(t).Interface().(interface{ UnmarshalText([]byte) error })
	return ok
}

// EnvNames returns the environment variables that override bulwark.yaml
// keys (for docs and `bulwark run --help`).
func EnvNames() []string {
	var out []string
	for _, k := range envKeys() {
		out = append(out, k.env)
	}
	return out
}

// applyEnv sets f's keys from the environment; each bad value is one
// error naming its variable.
func applyEnv(name string, f *File, lookup func(string) (string, bool)) []error {
	var errs []error
	for _, k := range envKeys() {
		v, ok := lookup(k.env)
		if !ok {
			continue
		}
		field := fieldAt(reflect.ValueOf(f).Elem(), k.index)
		if err := envNode(field.Type(), v).Decode(field.Addr().Interface()); err != nil {
			errs = append(errs, &Error{File: name, Msg: fmt.Sprintf("$%s=%q: %v", k.env, v, strings.TrimPrefix(err.Error(), "yaml: "))})
		}
	}
	return errs
}

// fieldAt walks index from v, allocating nil section pointers on the way.
func fieldAt(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		v = v.Field(x)
		if i < len(index)-1 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
	}
	return v
}

// envNode is a variable's value as the YAML the file would hold.
func envNode(t reflect.Type, v string) *yaml.Node {
	scalar := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(s)} }
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 {
			n := &yaml.Node{Kind: yaml.SequenceNode}
			for _, s := range strings.Split(v, ",") {
				if strings.TrimSpace(s) != "" {
					n.Content = append(n.Content, scalar(s))
				}
			}
			return n
		}
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(kv, "=")
			if strings.TrimSpace(k) != "" {
				n.Content = append(n.Content, scalar(k), scalar(val))
			}
		}
		return n
	}
	return scalar(v)
}

// osLookup is the process environment, for Load.
var osLookup = os.LookupEnv
