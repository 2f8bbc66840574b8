package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// APIVersion is the plugin protocol version this sdk speaks. It is negotiated in the go-plugin
// handshake: a host and a plugin with no common version refuse each other before any RPC.
const APIVersion = 1

// SupportedAPIVersions lists every protocol version this sdk can serve, newest last.
var SupportedAPIVersions = []int{APIVersion}

// Kind names a plugin kind. One binary may serve several (the onnx plugin is loader and engine).
type Kind string

// The plugin kinds of docs/architecture.md ("Plugin kinds").
const (
	KindLoader     Kind = "loader"
	KindEngine     Kind = "engine"
	KindEnergy     Kind = "energy"
	KindRepository Kind = "repository"
)

// AllKinds lists the kinds in their canonical order.
var AllKinds = []Kind{KindLoader, KindEngine, KindEnergy, KindRepository}

// Info is what a plugin says about itself.
type Info struct {
	Name        string
	Kinds       []Kind
	Version     string
	APIVersions []int
	Description string
	// Capabilities are free-form facts a host may use, e.g. "providers": "cpu,cuda".
	Capabilities map[string]string
	// ConfigSchema lists every key the plugin's Configure accepts.
	ConfigSchema []ConfigKey
}

// Serves reports whether the plugin serves kind k.
func (i Info) Serves(k Kind) bool {
	for _, have := range i.Kinds {
		if have == k {
			return true
		}
	}
	return false
}

// Config key types understood by the sdk's schema validation.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeFloat    = "float"
	TypeBool     = "bool"
	TypeDuration = "duration" // a Go duration string such as "100ms"
	TypeStrings  = "[]string"
	TypeInts     = "[]int"
	TypeTable    = "table" // a nested object, validated by the plugin itself
	TypeAny      = "any"   // anything; validated by the plugin itself
)

// ConfigKey describes one key of a plugin's configuration table.
type ConfigKey struct {
	Key     string
	Type    string // one of the Type* constants
	Default any    // a JSON-encodable value; nil when the key has no default
	Doc     string
	// Enum, when set, lists the only valid values (compared as strings).
	Enum []string
	// Min and Max, when set, bound numeric values and durations (durations in seconds).
	Min, Max *float64
	// SamplingInterval marks, in an energy plugin's schema, the duration key that is the meter's
	// sampling interval: when a user's table sets it, the host starts sessions at that interval
	// instead of [energy].interval (docs/config.md). At most one key, of type duration.
	SamplingInterval bool
}

// Valid describes the valid values of k for an error message.
func (k ConfigKey) Valid() string {
	switch {
	case len(k.Enum) > 0:
		return "one of " + joinQuoted(k.Enum)
	case k.Min != nil && k.Max != nil:
		return fmt.Sprintf("%s in [%g, %g]", k.Type, *k.Min, *k.Max)
	case k.Min != nil:
		return fmt.Sprintf("%s ≥ %g", k.Type, *k.Min)
	case k.Max != nil:
		return fmt.Sprintf("%s ≤ %g", k.Type, *k.Max)
	}
	switch k.Type {
	case TypeStrings:
		return "a list of strings"
	case TypeInts:
		return "a list of integers"
	case TypeAny:
		return "any value"
	case TypeDuration:
		return `a duration such as "100ms"`
	case TypeTable:
		return "a table"
	case TypeInt:
		return "an integer"
	default:
		return "a " + k.Type
	}
}

// Bound returns a pointer to v, for ConfigKey.Min and Max.
func Bound(v float64) *float64 { return &v }

// ConfigError is one problem with one key of a plugin's configuration. The host turns it into
// "file:line: key: message (valid: …)".
type ConfigError struct {
	Key     string
	Message string
	Valid   string
}

func (e ConfigError) Error() string {
	s := e.Key + ": " + e.Message
	if e.Valid != "" {
		s += " (valid: " + e.Valid + ")"
	}
	return s
}

// Config is a plugin's configuration table as decoded from JSON: values are string, float64,
// bool, []any or map[string]any. Use the typed getters after Configure has validated it.
type Config map[string]any

// Plugin is everything Serve needs: identity, configuration schema, and an implementation of at
// least one kind. The kinds a plugin serves are exactly the non-nil implementations, so a plugin
// built with the sdk can never claim a kind it does not serve.
type Plugin struct {
	Name         string
	Version      string
	Description  string
	Capabilities map[string]string
	Schema       []ConfigKey

	// Configure, when set, is called after the sdk has checked the table against Schema (unknown
	// keys, types, enums, bounds) with the table filled with defaults. It returns per-key errors
	// for values that are well-typed but wrong; an error return means the plugin itself failed.
	// A plugin is configured at most once per process, before its kind methods are used; a
	// plugin that is never configured runs on its defaults.
	Configure func(ctx context.Context, cfg Config) ([]ConfigError, error)

	Loader     Loader
	Engine     Engine
	Energy     Meter
	Repository Repository
}

// Kinds lists the kinds p serves.
func (p *Plugin) Kinds() []Kind {
	var ks []Kind
	if p.Loader != nil {
		ks = append(ks, KindLoader)
	}
	if p.Engine != nil {
		ks = append(ks, KindEngine)
	}
	if p.Energy != nil {
		ks = append(ks, KindEnergy)
	}
	if p.Repository != nil {
		ks = append(ks, KindRepository)
	}
	return ks
}

// Info builds the plugin's Info.
func (p *Plugin) Info() Info {
	return Info{
		Name:         p.Name,
		Kinds:        p.Kinds(),
		Version:      p.Version,
		APIVersions:  append([]int(nil), SupportedAPIVersions...),
		Description:  p.Description,
		Capabilities: p.Capabilities,
		ConfigSchema: p.Schema,
	}
}

// Sentinel errors that keep their meaning across the RPC boundary: a plugin returns (or wraps)
// one of them, and the host's client returns an error for which errors.Is reports the same
// sentinel. Any other error arrives as a plain error with the plugin's message.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnimplemented      = errors.New("unimplemented")
)

func joinQuoted(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}
