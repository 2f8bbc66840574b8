package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// ValidateConfig checks a configuration table against a schema: unknown keys, types, enums and
// bounds. It returns the table with every default filled in, and every problem at once.
func ValidateConfig(schema []ConfigKey, raw map[string]any) (Config, []ConfigError) {
	byKey := make(map[string]ConfigKey, len(schema))
	names := make([]string, 0, len(schema))
	for _, k := range schema {
		byKey[k.Key] = k
		names = append(names, k.Key)
	}
	sort.Strings(names)
	cfg := Config{}
	var errs []ConfigError
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v := raw[key]
		spec, ok := byKey[key]
		if !ok {
			msg := "unknown key"
			if near := Suggest(key, names); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", near)
			}
			valid := "no keys"
			if len(names) > 0 {
				valid = "one of " + joinQuoted(names)
			}
			errs = append(errs, ConfigError{Key: key, Message: msg, Valid: valid})
			continue
		}
		norm, msg := checkValue(spec, v)
		if msg != "" {
			errs = append(errs, ConfigError{Key: key, Message: msg, Valid: spec.Valid()})
			continue
		}
		cfg[key] = norm
	}
	for _, k := range schema {
		if _, set := cfg[k.Key]; !set && k.Default != nil {
			if _, bad := raw[k.Key]; !bad {
				cfg[k.Key] = normalizeDefault(k.Default)
			}
		}
	}
	return cfg, errs
}

// normalizeDefault round-trips a default through JSON so that getters see the same types as for
// a configured value.
func normalizeDefault(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

func checkValue(k ConfigKey, v any) (any, string) {
	typeErr := func() (any, string) { return nil, fmt.Sprintf("wrong type %s", jsonType(v)) }
	var num float64
	isNum := false
	switch k.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return typeErr()
		}
		if len(k.Enum) > 0 && !contains(k.Enum, s) {
			return nil, fmt.Sprintf("%q is not a valid value", s)
		}
		return s, ""
	case TypeBool:
		if _, ok := v.(bool); !ok {
			return typeErr()
		}
		return v, ""
	case TypeInt:
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return typeErr()
		}
		num, isNum = f, true
	case TypeFloat:
		f, ok := v.(float64)
		if !ok {
			return typeErr()
		}
		num, isNum = f, true
	case TypeDuration:
		s, ok := v.(string)
		if !ok {
			return typeErr()
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a duration (write e.g. \"100ms\" or \"2s\")", s)
		}
		num, isNum = d.Seconds(), true
	case TypeStrings:
		list, ok := v.([]any)
		if !ok {
			return typeErr()
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Sprintf("wrong type: list element %s, want strings", jsonType(e))
			}
			if len(k.Enum) > 0 && !contains(k.Enum, s) {
				return nil, fmt.Sprintf("%q is not a valid value", s)
			}
		}
		return v, ""
	case TypeInts:
		list, ok := v.([]any)
		if !ok {
			return typeErr()
		}
		for _, e := range list {
			f, ok := e.(float64)
			if !ok || f != math.Trunc(f) {
				return nil, fmt.Sprintf("wrong type: list element %s, want integers", jsonType(e))
			}
		}
		return v, ""
	case TypeTable:
		if _, ok := v.(map[string]any); !ok {
			return typeErr()
		}
		return v, ""
	default:
		return v, ""
	}
	if isNum {
		if (k.Min != nil && num < *k.Min) || (k.Max != nil && num > *k.Max) {
			return nil, fmt.Sprintf("%v is out of range", v)
		}
		if len(k.Enum) > 0 && !contains(k.Enum, fmt.Sprint(v)) {
			return nil, fmt.Sprintf("%v is not a valid value", v)
		}
	}
	return v, ""
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Suggest returns the name closest to key (a misspelt config key) within edit distance
// max(2, len(key)/3), ignoring case, or "" when none is that close. The host uses it too, so a
// "did you mean" reads the same for host keys and plugin keys.
func Suggest(key string, names []string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		if n == key {
			continue
		}
		d := editDistance(strings.ToLower(key), strings.ToLower(n))
		if d < bestD {
			best, bestD = n, d
		}
	}
	limit := max(2, len(key)/3)
	if bestD <= limit {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// String returns a string value ("" when absent).
func (c Config) String(key string) string { s, _ := c[key].(string); return s }

// Bool returns a boolean value (false when absent).
func (c Config) Bool(key string) bool { b, _ := c[key].(bool); return b }

// Float returns a number (0 when absent).
func (c Config) Float(key string) float64 { f, _ := c[key].(float64); return f }

// Int returns an integer (0 when absent).
func (c Config) Int(key string) int { return int(c.Float(key)) }

// Duration returns a duration value (0 when absent or malformed).
func (c Config) Duration(key string) time.Duration {
	d, _ := time.ParseDuration(c.String(key))
	return d
}

// Strings returns a list of strings (nil when absent).
func (c Config) Strings(key string) []string {
	list, _ := c[key].([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Ints returns a list of integers (nil when absent).
func (c Config) Ints(key string) []int {
	list, _ := c[key].([]any)
	var out []int
	for _, e := range list {
		if f, ok := e.(float64); ok {
			out = append(out, int(f))
		}
	}
	return out
}

// Has reports whether key is set (explicitly or by default).
func (c Config) Has(key string) bool { _, ok := c[key]; return ok }

// configure is what Serve runs for the Configure RPC: schema check, then the plugin's own.
func (p *Plugin) configure(ctx context.Context, raw []byte) ([]ConfigError, error) {
	table := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &table); err != nil {
			return nil, fmt.Errorf("configuration is not a JSON object: %v: %w", err, ErrInvalidArgument)
		}
	}
	cfg, errs := ValidateConfig(p.Schema, table)
	if len(errs) > 0 {
		return errs, nil
	}
	if p.Configure == nil {
		return nil, nil
	}
	return p.Configure(ctx, cfg)
}
