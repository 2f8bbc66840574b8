package study

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/lemctl/lemctl/host/echo"
)

// Orders of a study's experiments (docs/studies.md, "Order").
const (
	OrderGrouped     = "grouped"     // every cycle of a point, then the next point
	OrderInterleaved = "interleaved" // cycle 1 of every point, then cycle 2, …
	OrderShuffled    = "shuffled"    // every point × cycle in a random order drawn from seed
)

// Defaults of the thermal wait between experiments (docs/studies.md, "Gap and thermal wait").
const (
	DefaultThermalToleranceC = 2.0
	DefaultThermalMaxWaitS   = 300.0
)

// MaxFileBytes is the largest study file sweep reads.
const MaxFileBytes = 1 << 20

// File is a parsed study file (docs/studies.md).
type File struct {
	// Path is the study file as given; Dir the absolute directory the base is relative to.
	Path string `json:"path"`
	Dir  string `json:"dir"`
	Name string `json:"name"`
	// Base is the base experiment file as written, BasePath the file it names.
	Base     string  `json:"base"`
	BasePath string  `json:"base_path"`
	Cycles   int     `json:"cycles"`
	Order    string  `json:"order"`
	Seed     int64   `json:"seed"`
	GapS     float64 `json:"gap_s"`
	// ThermalToleranceC and ThermalMaxWaitS bound the thermal wait after the gap (docs/studies.md,
	// "Gap and thermal wait"); ThermalMaxWaitS 0 disables it.
	ThermalToleranceC float64 `json:"thermal_tolerance_c"`
	ThermalMaxWaitS   float64 `json:"thermal_max_wait_s"`
	Axes              []Axis  `json:"axes"`
	// Points are the explicit points ([[points]]), each its dotted keys in file order.
	Points [][]Setting `json:"points"`
}

// Setting is one dotted key of a point and its value (a TOML value as decoded).
type Setting struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// FileError is one problem of a study file, naming the file and the key.
type FileError struct {
	File, Key, Message, Valid string
}

func (e *FileError) Error() string {
	s := e.File
	if e.Key != "" {
		s += ": " + echo.Value(e.Key)
	}
	s += ": " + e.Message
	if e.Valid != "" {
		s += " (valid: " + e.Valid + ")"
	}
	return s
}

// FileErrors is every problem found in a study file.
type FileErrors []*FileError

func (es FileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// ReadFile reads and parses the study file at path.
func ReadFile(path string) (*File, []byte, error) {
	info, err := os.Stat(path)
	if err == nil && info.Size() > MaxFileBytes {
		return nil, nil, FileErrors{{File: path, Message: fmt.Sprintf("%d bytes, over the limit of %d bytes for a study file", info.Size(), MaxFileBytes)}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		why := err.Error()
		if errors.Is(err, os.ErrNotExist) {
			why = "no such file"
		}
		return nil, nil, FileErrors{{File: path, Message: "cannot read the study file: " + why}}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := Parse(path, filepath.Dir(abs), data)
	return f, data, err
}

var topKeys = []string{"name", "base", "cycles", "order", "seed", "gap_s", "thermal_tolerance_c", "thermal_max_wait_s", "axes", "points"}

// Parse parses a study file's text; name names it in errors and dir is the directory its base is
// relative to. Every problem is returned at once, as FileErrors.
func Parse(name, dir string, data []byte) (*File, error) {
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, FileErrors{{File: fmt.Sprintf("%s:%d", name, pe.Position.Line), Message: "TOML syntax: " + pe.Message}}
		}
		return nil, FileErrors{{File: name, Message: "TOML: " + err.Error()}}
	}
	f := &File{Path: name, Dir: dir, Cycles: 1, Order: OrderInterleaved,
		ThermalToleranceC: DefaultThermalToleranceC, ThermalMaxWaitS: DefaultThermalMaxWaitS}
	var errs FileErrors
	bad := func(key, msg, valid string) {
		errs = append(errs, &FileError{File: name, Key: key, Message: msg, Valid: valid})
	}
	for k := range raw {
		if !contains(topKeys, k) {
			bad(k, "unknown key", strings.Join(topKeys, ", "))
		}
	}
	if v, ok := raw["name"]; ok {
		if s, ok := v.(string); ok && s != "" {
			f.Name = s
		} else {
			bad("name", "must be a non-empty string", "a string")
		}
	}
	if f.Name == "" {
		f.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	switch v := raw["base"].(type) {
	case string:
		if v == "" {
			bad("base", "is empty", "an experiment file, relative to the study file")
			break
		}
		f.Base = v
		f.BasePath = v
		if !filepath.IsAbs(v) {
			f.BasePath = filepath.Join(dir, v)
		}
		if st, err := os.Stat(f.BasePath); err != nil || !st.Mode().IsRegular() {
			bad("base", fmt.Sprintf("%s is not a readable file", echo.Quote(f.BasePath)), "an experiment file, relative to the study file")
		}
	case nil:
		bad("base", "is missing", "an experiment file, relative to the study file")
	default:
		bad("base", fmt.Sprintf("is a %T, not a string", v), "an experiment file, relative to the study file")
	}
	if v, ok := raw["cycles"]; ok {
		if n, ok := v.(int64); ok && n >= 1 && n <= 1000 {
			f.Cycles = int(n)
		} else {
			bad("cycles", fmt.Sprintf("%v", v), "an integer in [1, 1000]")
		}
	}
	if v, ok := raw["order"]; ok {
		s, _ := v.(string)
		if s != OrderGrouped && s != OrderInterleaved && s != OrderShuffled {
			bad("order", fmt.Sprintf("%v", echo.Value(fmt.Sprint(v))), "grouped, interleaved or shuffled")
		} else {
			f.Order = s
		}
	}
	if v, ok := raw["seed"]; ok {
		if n, ok := v.(int64); ok {
			f.Seed = n
		} else {
			bad("seed", fmt.Sprintf("%v", v), "an integer")
		}
	}
	if v, ok := raw["gap_s"]; ok {
		g, ok := number(v)
		if !ok || g < 0 || g > 3600 {
			bad("gap_s", fmt.Sprintf("%v", v), "a number of seconds in [0, 3600]")
		} else {
			f.GapS = g
		}
	}
	if v, ok := raw["thermal_tolerance_c"]; ok {
		t, ok := number(v)
		if !ok || t <= 0 || t > 50 {
			bad("thermal_tolerance_c", fmt.Sprintf("%v", v), "a number of °C in (0, 50]")
		} else {
			f.ThermalToleranceC = t
		}
	}
	if v, ok := raw["thermal_max_wait_s"]; ok {
		t, ok := number(v)
		if !ok || t < 0 || t > 3600 {
			bad("thermal_max_wait_s", fmt.Sprintf("%v", v), "a number of seconds in [0, 3600]; 0 disables the thermal wait")
		} else {
			f.ThermalMaxWaitS = t
		}
	}
	// The axes, in the file's order (md.Keys lists keys as they appear).
	if v, ok := raw["axes"]; ok {
		axes, ok := v.(map[string]any)
		if !ok {
			bad("axes", fmt.Sprintf("is a %T, not a table", v), `a table of dotted keys, e.g. "workload.batch_size" = [1, 4]`)
		}
		for _, k := range md.Keys() {
			if len(k) < 2 || k[0] != "axes" {
				continue
			}
			val := lookup(axes, k[1:])
			if _, table := val.(map[string]any); table {
				continue // a table on the way to a dotted key
			}
			key := joinKey(k[1:])
			vals, ok := val.([]any)
			if !ok || len(vals) == 0 {
				bad("axes."+key, "must be a non-empty array of values", "e.g. [1, 4, 16]")
				continue
			}
			f.Axes = append(f.Axes, Axis{Key: key, Values: vals})
		}
	}
	if v, ok := raw["points"]; ok {
		pts, ok := v.([]map[string]any)
		if !ok {
			bad("points", fmt.Sprintf("is a %T, not an array of tables", v), "[[points]] tables of dotted keys")
		}
		for i, p := range pts {
			var set []Setting
			flatten(nil, p, &set)
			if len(set) == 0 {
				bad(fmt.Sprintf("points[%d]", i), "sets no key", `a dotted key and value, e.g. "workload.batch_size" = 4`)
			}
			f.Points = append(f.Points, set)
		}
	}
	switch {
	case len(f.Axes) > 0 && len(f.Points) > 0:
		bad("points", "a study has either [axes] (a grid) or [[points]], not both", "one of them")
	case len(f.Axes) == 0 && len(f.Points) == 0 && !hasKey(raw, "axes") && !hasKey(raw, "points"):
		bad("axes", "the study sets no point", "[axes] (a grid) or [[points]]")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func lookup(m map[string]any, segs []string) any {
	var cur any = m
	for _, s := range segs {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = t[s]
	}
	return cur
}

var bareSeg = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// joinKey joins TOML key segments into one dotted key. A segment is itself taken as dotted (a
// quoted "workload.batch_size" is the key workload.batch_size); one with other characters is
// quoted.
func joinKey(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		if bareSeg.MatchString(s) {
			out[i] = s
		} else {
			out[i] = fmt.Sprintf("%q", s)
		}
	}
	return strings.Join(out, ".")
}

// flatten lists the leaves of a point's table as dotted keys, in sorted order (a TOML table has
// no order).
func flatten(prefix []string, t map[string]any, out *[]Setting) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		segs := append(append([]string{}, prefix...), k)
		if sub, ok := t[k].(map[string]any); ok {
			flatten(segs, sub, out)
			continue
		}
		*out = append(*out, Setting{Key: joinKey(segs), Value: t[k]})
	}
}
